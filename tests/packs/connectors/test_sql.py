"""SQL tools on SQLite and the real PostgreSQL: bound values, read-only, limits, clean errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from catalyst_mcp.context import CallContext
from catalyst_mcp.packs.loader import load_pack
from catalyst_mcp.packs.provider import PackProvider
from tests.packs.conftest import PG_URL, ROWS, people_pack, pg_people_table, write_pack

CTX = CallContext(era="modern", protocol_version="2026-07-28")
INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE people; --",
    "%' UNION SELECT 99, 'injected' --",
    "x' ; UPDATE people SET name = 'pwned'; --",
    "\\'; DELETE FROM people; --",
    "Ada'--",
    "' || (SELECT email FROM people LIMIT 1) || '",
    "1); DROP TABLE people; --",
    "%",
    "_",
    "\x00",
    'Ada"; DROP TABLE people; --',
]


def with_more_tools(data: dict[str, Any], table: str) -> dict[str, Any]:
    """``people_pack`` plus a tool binding an array and one choosing a column to sort by."""
    data["tools"] += [
        {
            "name": "by_ids",
            "description": "People by id",
            "parameters": {
                "ids": {"type": "array", "items": {"type": "integer"}, "required": True}
            },
            "sql": {
                "connection": "db",
                "statement": f"SELECT id, name FROM {table} WHERE id IN :ids ORDER BY id",
            },
        },
        {
            "name": "sorted",
            "description": "Everyone, sorted by a column",
            "parameters": {"by": {"type": "string", "default": "id"}},
            "sql": {
                "connection": "db",
                "statement": f"SELECT id FROM {table} ORDER BY {{by}}, id",
                "identifiers": {"by": ["id", "name", "email"]},
            },
        },
    ]
    return data


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def provider(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PackProvider]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            db = request.getfixturevalue("sqlite_db")
            data = with_more_tools(people_pack(f"sqlite:///{db}"), "people")
        else:
            table = await stack.enter_async_context(pg_people_table())
            data = with_more_tools(people_pack(PG_URL, table), table)
        provider = PackProvider(load_pack(write_pack(tmp_path, "p.yaml", data)))
        stack.push_async_callback(provider.stop)
        yield provider


async def call(provider: PackProvider, tool: str, /, **arguments: Any) -> dict[str, Any]:
    return await provider.call("tools/call", {"name": tool, "arguments": arguments}, CTX)


async def everyone(provider: PackProvider) -> list[dict[str, Any]]:
    result = await call(provider, "find", name="", limit=100)
    rows: list[dict[str, Any]] = result["structuredContent"]["rows"]
    return rows


async def test_rows_come_back_structured_and_as_text(provider: PackProvider) -> None:
    result = await call(provider, "find", name="a", limit=2)
    assert result["structuredContent"] == {
        "rows": [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}],
        "truncated": False,
    }
    assert result["content"][0]["text"] == "2 rows:\nid: 1, name: Ada\nid: 2, name: Grace"
    assert "isError" not in result


async def test_max_rows_truncates(provider: PackProvider) -> None:
    result = await call(provider, "all")
    assert result["structuredContent"] == {"rows": [{"id": 1}, {"id": 2}], "truncated": True}
    assert "truncated" in result["content"][0]["text"]


async def test_bad_arguments_are_tool_errors(provider: PackProvider) -> None:
    result = await call(provider, "find", name="a", limit=1000)
    assert result["isError"] is True
    assert result["content"][0]["text"] == "invalid arguments: argument 'limit' must be <= 100"


@pytest.mark.parametrize("attack", INJECTIONS)
async def test_injection_corpus_has_no_effect(provider: PackProvider, attack: str) -> None:
    before = await everyone(provider)
    result = await call(provider, "find", name=attack, limit=100)
    if "isError" in result:  # a NUL byte may be refused by the driver: cleanly
        assert result["content"][0]["text"].startswith("the query on connection 'db' failed")
    else:
        rows = result["structuredContent"]["rows"]
        # Only rows whose name really contains the text, as a literal (LIKE wildcards aside).
        assert all(row in before for row in rows)
        if attack not in ("%", "_", "\x00"):  # wildcards; SQLite ends LIKE text at NUL
            assert rows == [r for r in before if attack in r["name"]]
    assert await everyone(provider) == before
    assert (await call(provider, "count"))["structuredContent"]["rows"] == [{"n": len(ROWS)}]


async def test_a_write_on_a_read_only_connection_fails(provider: PackProvider) -> None:
    result = await call(provider, "rename", id=1)
    assert result["isError"] is True
    assert result["content"][0]["text"] == (
        "connection 'db' is read-only: the statement tried to write"
    )
    assert (await everyone(provider))[0]["name"] == "Ada"


async def test_a_writable_connection_writes(sqlite_db: Path, tmp_path: Path) -> None:
    data = people_pack(f"sqlite:///{sqlite_db}", read_only=False)
    provider = PackProvider(load_pack(write_pack(tmp_path, "p.yaml", data)))
    try:
        assert "isError" not in await call(provider, "rename", id=1)
        assert (await everyone(provider))[0]["name"] == "changed"
    finally:
        await provider.stop()


async def test_database_errors_do_not_leak_details(tmp_path: Path, sqlite_db: Path) -> None:
    data = people_pack(f"sqlite:///{sqlite_db}", table="no_such_table")
    provider = PackProvider(load_pack(write_pack(tmp_path, "p.yaml", data)))
    try:
        result = await call(provider, "find", name="a")
    finally:
        await provider.stop()
    text = result["content"][0]["text"]
    assert result["isError"] is True
    assert text == "the query on connection 'db' failed (database error)"


async def test_an_unreachable_database_is_a_clean_tool_error(tmp_path: Path) -> None:
    url = "postgresql://postgres:s3cret@127.0.0.1:9/test"
    provider = PackProvider(load_pack(write_pack(tmp_path, "p.yaml", people_pack(url))))
    try:
        result = await call(provider, "count")
    finally:
        await provider.stop()
    assert result["isError"] is True
    assert result["content"][0]["text"] == "cannot reach the database of connection 'db'"
    assert "s3cret" not in str(result)


async def test_an_array_parameter_binds_as_a_list(provider: PackProvider) -> None:
    result = await call(provider, "by_ids", ids=[3, 1, 99])
    assert result["structuredContent"]["rows"] == [
        {"id": 1, "name": "Ada"},
        {"id": 3, "name": "Alan"},
    ]
    wrong = await call(provider, "by_ids", ids=[1, "2; DROP TABLE people"])
    assert wrong["isError"] is True
    assert "argument 'ids[1]' must be of type integer, got string" in wrong["content"][0]["text"]


async def test_identifiers_come_only_from_the_allow_list(provider: PackProvider) -> None:
    by_name = await call(provider, "sorted", by="name")
    assert [r["id"] for r in by_name["structuredContent"]["rows"]] == [1, 3, 2]  # Ada, Alan, Grace
    by_email = await call(provider, "sorted", by="email")
    assert [r["id"] for r in by_email["structuredContent"]["rows"]] == [3, 1, 2]
    assert [r["id"] for r in (await call(provider, "sorted"))["structuredContent"]["rows"]] == [
        1,
        2,
        3,
    ]
    listing = next(t for t in provider.items("tools") if t["name"] == "sorted")
    assert listing["inputSchema"]["properties"]["by"]["enum"] == ["id", "name", "email"]


@pytest.mark.parametrize(
    "attack", ["id; DROP TABLE people", "name DESC", '"name"', "1", *INJECTIONS]
)
async def test_an_identifier_outside_the_allow_list_is_refused(
    provider: PackProvider, attack: str
) -> None:
    before = await everyone(provider)
    result = await call(provider, "sorted", by=attack)
    assert result["isError"] is True
    assert result["content"][0]["text"] == "argument 'by' must be one of ['id', 'name', 'email']"
    assert await everyone(provider) == before


async def test_a_url_with_secrets_gets_each_callers_own_database(tmp_path: Path) -> None:
    import sqlite3

    from catalyst_mcp.context import Identity
    from catalyst_mcp.errors import PackError
    from catalyst_mcp.packs.connectors.sql import SqlConnector
    from catalyst_mcp.packs.schema import SqlConnection

    for who in ("alice", "shared"):
        folder = tmp_path / who
        folder.mkdir()
        with sqlite3.connect(folder / "db.sqlite") as db:
            db.execute("CREATE TABLE t (owner TEXT)")
            db.execute("INSERT INTO t VALUES (?)", (who,))
    values = {("alice", "DIR"): str(tmp_path / "alice"), ("*", "DIR"): str(tmp_path / "shared")}

    async def lookup(name: str, ctx: CallContext | None) -> str | None:
        subject = ctx.identity.subject if ctx is not None else "*"
        return values.get((subject, name)) or values.get(("*", name))

    config = SqlConnection(type="sql", url="sqlite:///${secret:DIR}/db.sqlite")
    connector = SqlConnector("db", config, secrets=lookup)
    try:

        def ctx_of(user: str) -> CallContext:
            return CallContext("modern", "2026-07-28", identity=Identity(user, "user"))

        for user, expected in (("alice", "alice"), ("bob", "shared"), ("alice", "alice")):
            result = await connector.query("SELECT owner FROM t", {}, 10, ctx_of(user))
            assert result.rows == [{"owner": expected}]
        assert len(connector._engines) == 2  # one per distinct filled-in URL
        del values[("*", "DIR")]
        with pytest.raises(PackError, match="secret DIR is not set for this user"):
            await connector.query("SELECT owner FROM t", {}, 10, ctx_of("carol"))
    finally:
        await connector.close()
