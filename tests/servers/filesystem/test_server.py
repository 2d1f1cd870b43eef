"""The filesystem server's tools, resources and limits, called in-process."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError, ResourceNotFound
from catalyst_mcp.servers.config import FilesystemOptions
from catalyst_mcp.servers.filesystem import FilesystemServer
from tests.servers.conftest import call, context, text


def make(tmp_path: Path, **options: Any) -> FilesystemServer:
    roots = options.pop("roots", [{"path": str(tmp_path / "root"), "writable": True}])
    (tmp_path / "root").mkdir(exist_ok=True)
    opts = FilesystemOptions.model_validate({"roots": roots, **options})
    return FilesystemServer("files", "files", opts, timeout=10)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    (folder / "notes.md").write_text("# Notes\nalpha line\nbeta line\n")
    (folder / "src").mkdir()
    (folder / "src" / "main.py").write_text("def main():\n    return 'alpha'\n")
    (folder / "src" / "deep").mkdir()
    (folder / "src" / "deep" / "x.py").write_text("ALPHA = 1\n")
    (folder / ".hidden").write_text("h")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    return folder


def names(result: dict[str, Any], key: str = "entries", field: str = "name") -> list[str]:
    return [e[field] for e in result["structuredContent"][key]]


# ---- reading ---------------------------------------------------------------------------------


async def test_read_a_text_file_whole_and_in_parts(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path)
    whole = await call(server, "read_file", path="notes.md")
    assert whole["structuredContent"]["text"] == "# Notes\nalpha line\nbeta line\n"
    assert text(whole) == "# Notes\nalpha line\nbeta line\n"
    assert whole["structuredContent"]["truncated"] is False
    part = await call(server, "read_file", path=str(root / "notes.md"), offset=8, length=5)
    assert part["structuredContent"] | {"text": part["structuredContent"]["text"]} == {
        "path": str(root / "notes.md"),
        "size": 29,
        "offset": 8,
        "length": 5,
        "truncated": True,
        "binary": False,
        "mimeType": "text/markdown",
        "text": "alpha",
    }
    uri = await call(server, "read_file", path=f"file://{root}/notes.md")
    assert uri["structuredContent"]["text"].startswith("# Notes")


async def test_a_part_cut_inside_a_character_is_trimmed_to_whole_ones(
    tmp_path: Path, root: Path
) -> None:
    (root / "utf8.txt").write_text("héllo wörld")  # é and ö are two bytes each
    server = make(tmp_path)
    result = await call(server, "read_file", path="utf8.txt", offset=2, length=7)
    assert result["structuredContent"]["text"] == "llo w"  # the second byte of é trimmed
    assert result["structuredContent"]["offset"] == 3
    assert result["structuredContent"]["binary"] is False


async def test_a_huge_file_must_be_read_in_parts(tmp_path: Path, root: Path) -> None:
    (root / "big.log").write_bytes(b"x" * 5000)
    server = make(tmp_path, max_read_bytes=1000)
    result = await call(server, "read_file", path="big.log")
    assert result["isError"] is True
    assert "5,000 bytes, over the 1,000-byte read limit (max_read_bytes)" in text(result)
    assert "offset and length" in text(result)
    part = await call(server, "read_file", path="big.log", offset=4500, length=4000)
    assert part["structuredContent"]["length"] == 500  # the rest of the file
    capped = await call(server, "read_file", path="big.log", offset=0, length=4000)
    assert capped["structuredContent"]["length"] == 1000  # never more than the limit
    assert capped["structuredContent"]["truncated"] is True


async def test_a_binary_file_comes_back_as_a_blob_or_is_refused(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path)
    result = await call(server, "read_file", path="image.png")
    assert result["structuredContent"]["binary"] is True
    assert "text" not in result["structuredContent"]
    assert "is a binary file (image/png, 16 bytes)" in text(result)
    blob = result["content"][1]
    assert blob["type"] == "resource"
    assert blob["resource"]["uri"] == f"file://{root}/image.png"
    assert base64.b64decode(blob["resource"]["blob"]) == (root / "image.png").read_bytes()
    refusing = make(tmp_path, binary="refuse")
    refused = await call(refusing, "read_file", path="image.png")
    assert refused["isError"] is True
    assert "does not return binary content" in text(refused)


async def test_special_files_are_refused_without_blocking(tmp_path: Path, root: Path) -> None:
    os.mkfifo(root / "pipe")  # opening a FIFO for reading would block without a writer
    server = make(tmp_path)
    result = await call(server, "read_file", path="pipe")
    assert result["isError"] is True
    assert "is a fifo: only regular files and folders are served" in text(result)
    result = await call(server, "read_file", path="src")
    assert "is a folder, not a file (list it instead)" in text(result)


# ---- listing, stat, search -------------------------------------------------------------------


async def test_list_a_folder_to_a_depth_with_a_pattern(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path)
    top = await call(server, "list_directory")
    assert names(top) == [".hidden", "image.png", "notes.md", "src"]
    assert top["structuredContent"]["path"] == str(root)
    deep = await call(server, "list_directory", path="src", depth=2, pattern="*.py")
    assert names(deep) == ["deep/x.py", "main.py"]
    visible = await call(server, "list_directory", include_hidden=False)
    assert ".hidden" not in names(visible)
    capped = await call(make(tmp_path, max_list_entries=2), "list_directory", depth=3)
    assert len(names(capped)) == 2
    assert capped["structuredContent"]["truncated"] is True
    assert "more entries" in text(capped)


async def test_file_info_describes_a_symlink_itself(tmp_path: Path, root: Path) -> None:
    os.symlink("notes.md", root / "link.md")
    server = make(tmp_path)
    info = (await call(server, "file_info", path="link.md"))["structuredContent"]
    assert info["type"] == "symlink"
    assert info["target"] == "notes.md"
    info = (await call(server, "file_info", path="notes.md"))["structuredContent"]
    assert (info["type"], info["size"], info["writable"]) == ("file", 29, True)
    assert info["mode"] == f"{os.stat(root / 'notes.md').st_mode & 0o7777:04o}"


async def test_search_by_name_and_by_content(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path)
    by_name = await call(server, "search_files", glob="*.py")
    assert names(by_name, "matches", "path") == ["src/deep/x.py", "src/main.py"]
    by_path = await call(server, "search_files", glob="src/*.py")
    assert names(by_path, "matches", "path") == ["src/main.py"]
    by_content = await call(server, "search_files", content="alpha")
    found = by_content["structuredContent"]["matches"]
    assert [(m["path"], m["line"]) for m in found] == [
        ("notes.md", 2),
        ("src/deep/x.py", 1),
        ("src/main.py", 2),
    ]
    assert by_content["structuredContent"]["files_skipped"] == 1  # the binary image
    exact = await call(server, "search_files", content="alpha", case_sensitive=True, glob="*.py")
    assert names(exact, "matches", "path") == ["src/main.py"]
    regex = await call(server, "search_files", content=r"^\s+return", regex=True)
    assert names(regex, "matches", "path") == ["src/main.py"]
    excluded = await call(server, "search_files", content="alpha", exclude=["src"])
    assert names(excluded, "matches", "path") == ["notes.md"]
    bad = await call(server, "search_files", content="(", regex=True)
    assert "not a valid regular expression" in text(bad)
    neither = await call(server, "search_files")
    assert "give glob" in text(neither)


async def test_search_stops_at_its_limits_and_says_which(tmp_path: Path, root: Path) -> None:
    for i in range(30):
        (root / f"f{i:02}.txt").write_text("needle\n" * 3)
    server = make(tmp_path, search_max_files=5)
    result = (await call(server, "search_files", content="needle"))["structuredContent"]
    assert (result["stopped_by"], result["files_scanned"], result["truncated"]) == (
        "max_files",
        5,
        True,
    )
    result = (await call(make(tmp_path), "search_files", content="needle", max_matches=4))[
        "structuredContent"
    ]
    assert (result["stopped_by"], len(result["matches"])) == ("max_matches", 4)
    result = (await call(make(tmp_path, search_timeout_seconds=1e-9), "search_files", glob="*"))[
        "structuredContent"
    ]
    assert result["stopped_by"] == "timeout"
    big = make(tmp_path, search_max_file_bytes=10)
    result = (await call(big, "search_files", content="needle"))["structuredContent"]
    assert result["matches"] == [] and result["files_skipped"] >= 30
    over = await call(make(tmp_path), "search_files", content="x", max_matches=100_000)
    assert "must be at most 200" in text(over)


# ---- writing ---------------------------------------------------------------------------------


async def test_writes_into_a_read_only_root_are_refused(tmp_path: Path, root: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    server = make(tmp_path, roots=[{"path": str(root), "writable": True}, str(other)])
    result = await call(server, "write_file", path=f"{other}/x.txt", content="x")
    assert result["isError"] is True
    assert "is in a read-only folder" in text(result)
    moved = await call(server, "move", source="notes.md", destination=f"{other}/notes.md")
    assert "read-only folder" in text(moved)
    assert (root / "notes.md").exists() and not (other / "notes.md").exists()


async def test_write_creates_replaces_and_keeps_the_mode(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path, max_write_bytes=100)
    (root / "notes.md").chmod(0o640)
    replaced = await call(server, "write_file", path="notes.md", content="new")
    assert replaced["structuredContent"]["created"] is False
    assert (root / "notes.md").read_text() == "new"
    assert (root / "notes.md").stat().st_mode & 0o777 == 0o640
    refused = await call(server, "write_file", path="notes.md", content="x", overwrite=False)
    assert "exists already (pass overwrite: true)" in text(refused)
    missing = await call(server, "write_file", path="a/b/c.txt", content="x")
    assert "no such folder" in text(missing)
    made = await call(server, "write_file", path="a/b/c.txt", content="x", create_directories=True)
    assert made["structuredContent"] == {"path": f"{root}/a/b/c.txt", "bytes": 1, "created": True}
    big = await call(server, "write_file", path="big.txt", content="x" * 101)
    assert "over the 100-byte write limit (max_write_bytes)" in text(big)
    assert not [p for p in root.iterdir() if p.name.endswith(".catalyst-tmp")]


async def test_a_write_through_a_symlink_lands_on_its_target(tmp_path: Path, root: Path) -> None:
    os.symlink("src/main.py", root / "main-link.py")
    server = make(tmp_path)
    await call(server, "write_file", path="main-link.py", content="print(1)\n")
    assert (root / "src" / "main.py").read_text() == "print(1)\n"
    assert (root / "main-link.py").is_symlink()


async def test_edit_with_a_dry_run_then_for_real(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path)
    edits = [{"old_text": "alpha line", "new_text": "ALPHA LINE"}]
    dry = await call(server, "edit_file", path="notes.md", edits=edits, dry_run=True)
    assert dry["structuredContent"]["applied"] is False
    assert "-alpha line\n+ALPHA LINE\n" in dry["structuredContent"]["diff"]
    assert "dry run, nothing written" in text(dry)
    assert "alpha line" in (root / "notes.md").read_text()
    done = await call(server, "edit_file", path="notes.md", edits=edits)
    assert done["structuredContent"]["applied"] is True
    assert (root / "notes.md").read_text() == "# Notes\nALPHA LINE\nbeta line\n"
    twice = await call(
        server, "edit_file", path="notes.md", edits=[{"old_text": "e", "new_text": "E"}]
    )
    assert "occurs 3 times" in text(twice)
    every = await call(
        server,
        "edit_file",
        path="notes.md",
        edits=[{"old_text": "e", "new_text": "E", "replace_all": True}],
    )
    assert every["structuredContent"]["replacements"] == 3
    gone = await call(
        server, "edit_file", path="notes.md", edits=[{"old_text": "zzz", "new_text": ""}]
    )
    assert "does not occur" in text(gone)
    binary = await call(
        server, "edit_file", path="image.png", edits=[{"old_text": "P", "new_text": "Q"}]
    )
    assert "binary file: it cannot be edited" in text(binary)


async def test_move_mkdir_and_delete(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path, allow_delete=True)
    made = await call(server, "create_directory", path="new/deeper")
    assert made["structuredContent"]["created"] is True
    again = await call(server, "create_directory", path="new/deeper")
    assert again["structuredContent"]["created"] is False
    await call(server, "move", source="notes.md", destination="new/deeper/notes.md")
    assert (root / "new" / "deeper" / "notes.md").exists()
    taken = await call(server, "move", source="src/main.py", destination="new/deeper/notes.md")
    assert "exists already (pass overwrite: true)" in text(taken)
    not_empty = await call(server, "delete", path="new")
    assert "is a folder that is not empty" in text(not_empty)
    the_root = await call(server, "delete", path=str(root))
    assert "is a served folder: it cannot be deleted" in text(the_root)
    deleted = await call(server, "delete", path="new/deeper/notes.md")
    assert deleted["structuredContent"]["type"] == "file"
    assert not (root / "new" / "deeper" / "notes.md").exists()


# ---- errors, resources, roots ----------------------------------------------------------------


async def test_bad_arguments_and_failures_are_tool_errors(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make(tmp_path)
    missing = await call(server, "read_file")
    assert text(missing) == "missing required argument(s): path"
    wrong = await call(server, "read_file", path=3)
    assert text(wrong) == "argument 'path' must be of type string"
    negative = await call(server, "read_file", path="notes.md", offset=-1)
    assert text(negative) == "argument 'offset' must be at least 0"

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("internal detail /secret/path")

    monkeypatch.setattr("catalyst_mcp.servers.filesystem.reading.read_file", explode)
    crashed = await call(server, "read_file", path="notes.md")
    assert crashed["isError"] is True
    assert text(crashed) == "files: read_file failed unexpectedly (the gateway log has the details)"


async def test_files_are_resources(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path)
    assert server.items("resources") == [
        {
            "uri": f"file://{root}/",
            "name": "root",
            "description": f"Served folder {root} (writable)",
            "mimeType": "text/plain",
        }
    ]
    assert server.items("resourceTemplates")[0]["uriTemplate"] == "file:///{+path}"
    ctx = context(method="resources/read")
    read = await server.call("resources/read", {"uri": f"file://{root}/notes.md"}, ctx)
    assert read["contents"][0]["text"].startswith("# Notes")
    folder = await server.call("resources/read", {"uri": f"file://{root}/"}, ctx)
    assert folder["contents"][0]["text"].splitlines() == [
        ".hidden",
        "image.png",
        "notes.md",
        "src/",
    ]
    blob = await server.call("resources/read", {"uri": f"file://{root}/image.png"}, ctx)
    assert blob["contents"][0]["mimeType"] == "image/png"
    assert "blob" in blob["contents"][0]
    with pytest.raises(ResourceNotFound):
        await server.call("resources/read", {"uri": f"file://{root}/none.txt"}, ctx)
    with pytest.raises(BuiltinError, match="outside the served folders"):
        await server.call("resources/read", {"uri": "file:///etc/passwd"}, ctx)


def _client(roots: list[str]) -> CallContext:
    async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert method == "roots/list"
        return {"roots": [{"uri": f"file://{r}", "name": Path(r).name} for r in roots]}

    return context(client_capabilities={"roots": {}}, ask=ask)


async def test_client_roots_narrow_the_configured_ones(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path, client_roots="narrow")
    assert server.may_ask is True
    ctx = _client([str(root / "src"), "/etc"])  # /etc is outside: ignored
    listed = await call(server, "list_roots", ctx)
    assert [r["path"] for r in listed["structuredContent"]["roots"]] == [str(root / "src")]
    inside = await call(server, "read_file", ctx, path=str(root / "src" / "main.py"))
    assert not inside.get("isError")
    outside = await call(server, "read_file", ctx, path=str(root / "notes.md"))
    assert "outside the served folders" in text(outside)
    escape = await call(server, "read_file", ctx, path=str(root / "src" / ".." / "notes.md"))
    assert "leads outside the served folder" in text(escape)
    plain = await call(server, "read_file", path="notes.md")  # no roots capability: configured
    assert not plain.get("isError")


async def test_client_roots_used_as_given_are_read_only(tmp_path: Path, root: Path) -> None:
    server = make(tmp_path, roots=[], client_roots="use")
    ctx = _client([str(root)])
    read = await call(server, "read_file", ctx, path=str(root / "notes.md"))
    assert not read.get("isError")
    assert "write_file" not in server.tools
    none = await call(server, "read_file", context(), path="notes.md")
    assert "no folder is served to this client" in text(none)


def test_health_reports_a_missing_root(tmp_path: Path) -> None:
    server = make(tmp_path, roots=[str(tmp_path / "gone")])
    report = server.health()
    assert report["status"] == "failed"
    assert "served folder(s) missing" in report["error"]
    assert make(tmp_path).health()["status"] == "ready"
