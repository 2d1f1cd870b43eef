"""PackProvider features over SQLite: output schemas, file resources, limits, listings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import ResourceNotFound
from catalyst_mcp.packs.loader import load_pack
from catalyst_mcp.packs.provider import OUTPUT_SCHEMA, PackProvider
from tests.packs.conftest import people_pack, write_pack

CTX = CallContext(era="modern", protocol_version="2026-07-28")


def make(tmp_path: Path, data: dict[str, Any]) -> PackProvider:
    return PackProvider(load_pack(write_pack(tmp_path, "p.yaml", data)))


async def call(provider: PackProvider, tool: str, /, **arguments: Any) -> dict[str, Any]:
    return await provider.call("tools/call", {"name": tool, "arguments": arguments}, CTX)


def pack_with_schema(db: Path, schema: dict[str, Any]) -> dict[str, Any]:
    data = people_pack(f"sqlite:///{db}")
    data["tools"] = [{**data["tools"][0], "output_schema": schema}]
    return data


async def test_a_declared_output_schema_is_listed_and_checked(
    tmp_path: Path, sqlite_db: Path
) -> None:
    good = {
        "type": "object",
        "properties": {
            "rows": {
                "type": "array",
                "items": {"type": "object", "required": ["id", "name"]},
            },
            "truncated": {"type": "boolean"},
        },
    }
    provider = make(tmp_path, pack_with_schema(sqlite_db, good))
    try:
        assert provider.items("tools")[0]["outputSchema"] == good
        assert "isError" not in await call(provider, "find", name="Ada")
    finally:
        await provider.stop()
    bad = {**good, "properties": {"rows": {"type": "array", "items": {"required": ["age"]}}}}
    provider = make(tmp_path, pack_with_schema(sqlite_db, bad))
    try:
        result = await call(provider, "find", name="Ada")
    finally:
        await provider.stop()
    assert result["isError"] is True
    assert result["content"][0]["text"] == (
        "the result does not match the tool's output schema at rows/0: 'age' is a required "
        "property (the pack's output_schema or projection needs fixing)"
    )


async def test_sql_tools_default_to_the_rows_output_schema(tmp_path: Path, sqlite_db: Path) -> None:
    provider = make(tmp_path, people_pack(f"sqlite:///{sqlite_db}"))
    assert all(t["outputSchema"] == OUTPUT_SCHEMA for t in provider.items("tools"))


async def test_the_size_limit_turns_a_large_result_into_a_tool_error(
    tmp_path: Path, sqlite_db: Path
) -> None:
    data = people_pack(f"sqlite:///{sqlite_db}")
    data["limits"] = {"max_response_bytes": 60}
    provider = make(tmp_path, data)
    try:
        small = await call(provider, "count")
        large = await call(provider, "find", name="", limit=100)
    finally:
        await provider.stop()
    assert "isError" not in small
    assert large["isError"] is True
    assert "more than the pack's limit of 60: ask for less" in large["content"][0]["text"]


def file_pack(tmp_path: Path) -> PackProvider:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "intro.md").write_text("# Hello\n", encoding="utf-8")
    (docs / "logo.bin").write_bytes(b"\x89PNG\x00\xff")
    (tmp_path / "secret.txt").write_text("not for you", encoding="utf-8")
    return make(
        tmp_path,
        {
            "pack": "files",
            "resources": [
                {"uri": "files://intro", "name": "intro", "file": "docs/intro.md"},
                {"uri_template": "files://docs/{name}", "name": "doc", "file": "docs/{name}"},
            ],
        },
    )


async def test_file_resources_are_read_from_the_pack_folder(tmp_path: Path) -> None:
    provider = file_pack(tmp_path)
    fixed = await provider.call("resources/read", {"uri": "files://intro"}, CTX)
    assert fixed["contents"] == [
        {"uri": "files://intro", "mimeType": "text/markdown", "text": "# Hello\n"}
    ]
    binary = await provider.call("resources/read", {"uri": "files://docs/logo.bin"}, CTX)
    assert binary["contents"][0]["blob"] == "iVBORwD/"
    via_template = await provider.call("resources/read", {"uri": "files://docs/intro.md"}, CTX)
    assert via_template["contents"][0]["text"] == "# Hello\n"


@pytest.mark.parametrize(
    "name", ["..%2Fsecret.txt", "%2E%2E%2Fsecret.txt", "..%2F..%2Fetc%2Fpasswd", "missing.md"]
)
async def test_a_file_template_cannot_leave_its_folder(tmp_path: Path, name: str) -> None:
    provider = file_pack(tmp_path)
    with pytest.raises(ResourceNotFound):
        await provider.call("resources/read", {"uri": f"files://docs/{name}"}, CTX)


async def test_drain_returns_at_once_when_idle(tmp_path: Path, sqlite_db: Path) -> None:
    provider = make(tmp_path, people_pack(f"sqlite:///{sqlite_db}"))
    await provider.drain(5)
    await call(provider, "count")
    await provider.drain(5)
    assert provider.limiter.in_flight == 0
    await provider.stop()


@pytest.mark.parametrize(
    ("value", "message"),
    [(2**70, "out of range (a 64-bit integer)"), (1e300, "out of range (a 64-bit integer)")],
)
async def test_values_a_database_cannot_hold_are_clear_tool_errors(
    tmp_path: Path, sqlite_db: Path, value: Any, message: str
) -> None:
    data = people_pack(f"sqlite:///{sqlite_db}")
    provider = make(tmp_path, data)
    try:
        result = await call(provider, "find", name="a", limit=value)
    finally:
        await provider.stop()
    assert result["isError"] is True
    assert message in result["content"][0]["text"]


async def test_a_runaway_sqlite_statement_is_interrupted_at_the_time_limit(
    tmp_path: Path, sqlite_db: Path
) -> None:
    data = people_pack(f"sqlite:///{sqlite_db}")
    data["connections"]["db"]["timeout_seconds"] = 0.3
    data["tools"] = [
        {
            "name": "forever",
            "description": "Counts without end",
            "sql": {
                "connection": "db",
                "statement": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                "SELECT max(i) AS top FROM n",
            },
        }
    ]
    provider = make(tmp_path, data)
    try:
        # Were the statement only abandoned, this would never return (the test's timeout).
        result = await call(provider, "forever")
        again = await call(provider, "forever")  # the connection is usable afterwards
    finally:
        await provider.stop()
    assert result["content"][0]["text"] == "the query on connection 'db' took longer than 0.3 s"
    assert again["isError"] is True


async def test_a_file_name_with_a_nul_byte_is_not_found(tmp_path: Path) -> None:
    provider = file_pack(tmp_path)
    with pytest.raises(ResourceNotFound):
        await provider.call("resources/read", {"uri": "files://docs/intro.md%00"}, CTX)
