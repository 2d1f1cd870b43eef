"""The filesystem server's tools as declared: which are offered, their annotations, schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.servers.config import FilesystemOptions
from catalyst_mcp.servers.filesystem import FilesystemServer


def make(tmp_path: Path, **options: Any) -> FilesystemServer:
    roots = options.pop("roots", [{"path": str(tmp_path / "root"), "writable": True}])
    opts = FilesystemOptions.model_validate({"roots": roots, **options})
    return FilesystemServer("files", "files", opts, timeout=10)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


async def test_write_tools_exist_only_for_writable_roots(tmp_path: Path, root: Path) -> None:
    read_only = make(tmp_path, roots=[str(root)])
    assert sorted(read_only.tools) == [
        "file_info",
        "list_directory",
        "list_roots",
        "read_file",
        "search_files",
    ]
    writable = make(tmp_path)
    assert "write_file" in writable.tools and "delete" not in writable.tools
    assert "delete" in make(tmp_path, allow_delete=True).tools


def test_annotations_say_what_each_tool_does(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path, allow_delete=True)
    listed = {t["name"]: t["annotations"] for t in server.items("tools")}
    for name in ("list_roots", "read_file", "list_directory", "search_files", "file_info"):
        assert listed[name]["readOnlyHint"] is True
        assert listed[name]["destructiveHint"] is False
        assert listed[name]["openWorldHint"] is False
    assert listed["create_directory"] | {"title": ""} == {
        "title": "",
        "readOnlyHint": False,
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": False,
    }
    for name in ("write_file", "edit_file", "move", "delete"):
        assert listed[name]["readOnlyHint"] is False
        assert listed[name]["destructiveHint"] is True
    assert listed["edit_file"]["idempotentHint"] is False
    for tool in server.items("tools"):
        assert tool["inputSchema"]["type"] == "object"
        assert tool["outputSchema"]["type"] == "object"
