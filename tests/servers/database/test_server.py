"""The database server on SQLite, PostgreSQL and MariaDB: introspection, read-only queries the
database enforces, the time limit, the row cap, writes only when enabled, per-caller secrets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.servers.config import DatabaseOptions
from catalyst_mcp.servers.database import DatabaseServer
from tests.servers.conftest import call, context, text
from tests.servers.database.conftest import COUNT_TO_1000, RUNAWAY, Shop


def server(shop: Shop, **options: Any) -> DatabaseServer:
    opts = DatabaseOptions.model_validate({"url": shop.url, **options})
    return DatabaseServer("shop", "shop", opts, timeout=60)


async def rows(db: DatabaseServer, sql: str, **extra: Any) -> list[list[Any]]:
    result = await call(db, "query", sql=sql, **extra)
    assert not result.get("isError"), text(result)
    found: list[list[Any]] = result["structuredContent"]["rows"]
    return found


async def test_introspection(shop: Shop) -> None:
    db = server(shop)
    try:
        schemas = (await call(db, "list_schemas"))["structuredContent"]
        assert (shop.schema or schemas["default"]) in schemas["schemas"]
        tables = await call(db, "list_tables", **({"schema": shop.schema} if shop.schema else {}))
        assert tables["structuredContent"]["tables"] == [
            {"name": "items", "type": "table"},
            {"name": "orders", "type": "table"},
        ]
        where = {"schema": shop.schema} if shop.schema else {}
        items = (await call(db, "describe_table", table="items", **where))["structuredContent"]
        assert [c["name"] for c in items["columns"]] == ["id", "name", "price"]
        assert items["primary_key"] == ["id"]
        name = items["columns"][1]
        assert (name["nullable"], "VARCHAR" in name["type"].upper()) == (False, True)
        orders = (await call(db, "describe_table", table="orders", **where))["structuredContent"]
        (fk,) = orders["foreign_keys"]
        assert (fk["columns"], fk["references"].rsplit(".", 1)[-1], fk["referred_columns"]) == (
            ["item_id"],
            "items",
            ["id"],
        )
        assert any(ix["columns"] == ["item_id"] for ix in orders["indexes"])
        sample = await call(db, "sample_rows", table="items", limit=2, **where)
        assert sample["structuredContent"]["columns"] == ["id", "name", "price"]
        assert len(sample["structuredContent"]["rows"]) == 2
        assert sample["structuredContent"]["truncated"] is True
        missing = await call(db, "describe_table", table="nope", **where)
        assert "no table or view 'nope'" in text(missing)
        evil = await call(db, "sample_rows", table="items; DROP TABLE items", **where)
        assert "no table or view" in text(evil)
        bad_schema = await call(db, "list_tables", schema="no_such_schema")
        assert "no schema 'no_such_schema'" in text(bad_schema)
    finally:
        await db.stop()


async def test_a_query_binds_its_parameters(shop: Shop) -> None:
    db = server(shop)
    try:
        found = await rows(
            db,
            f"SELECT name, price FROM {shop.table('items')} WHERE price > :p ORDER BY id",
            parameters={"p": 0.6},
        )
        assert found == [["pear", 0.75]]
        injected = await rows(
            db,
            f"SELECT count(*) AS n FROM {shop.table('items')} WHERE name = :n",
            parameters={"n": "x' OR '1'='1"},
        )
        assert injected == [[0]]
        unbound = await call(db, "query", sql=f"SELECT * FROM {shop.table('items')} WHERE id = :id")
        assert "id" in text(unbound) and unbound["isError"] is True
        wrong = await call(db, "query", sql="SELEC 1")
        assert "the database refused the statement" in text(wrong)
        assert "Traceback" not in text(wrong) and shop.url not in text(wrong)
    finally:
        await db.stop()


WRITES = [
    "INSERT INTO {items} VALUES (9, 'fig', 1)",
    "UPDATE {items} SET price = 0",
    "DELETE FROM {items}",
    "DROP TABLE {orders}",
    "CREATE TABLE {new} (x INTEGER)",
]
LOOSEN = {
    "sqlite": "PRAGMA query_only = OFF",
    "postgresql": "SET default_transaction_read_only = off",
    "mariadb": "SET SESSION TRANSACTION READ WRITE",
}


async def test_the_database_refuses_writes_in_read_only_mode(shop: Shop) -> None:
    db = server(shop, pool_size=1)  # one connection: a loosened session would be reused
    try:
        assert "execute" not in db.tools
        names = {"items": shop.table("items"), "orders": shop.table("orders")}
        names["new"] = shop.table("brand_new")
        for write in WRITES:
            await call(db, "query", sql=LOOSEN[shop.backend])  # refused or rolled back
            result = await call(db, "query", sql=write.format(**names))
            assert result["isError"] is True, write
            assert "refused a write in a read-only transaction" in text(result), text(result)
        assert await rows(db, f"SELECT id, price FROM {names['items']} ORDER BY id") == [
            [1, 0.5],
            [2, 0.75],
            [3, None],
        ]
        assert len(await rows(db, f"SELECT * FROM {names['orders']}")) == 2
    finally:
        await db.stop()


async def test_a_runaway_query_is_stopped_by_the_time_limit(shop: Shop) -> None:
    db = server(shop, timeout_seconds=1)
    try:
        started = time.monotonic()
        result = await call(db, "query", sql=RUNAWAY[shop.backend])
        elapsed = time.monotonic() - started
        assert result["isError"] is True
        assert "took longer than 1 s and was stopped" in text(result)
        assert elapsed < 20
        assert await rows(db, "SELECT 1 AS one") == [[1]]  # the server goes on serving
    finally:
        await db.stop()


async def test_the_row_cap_and_the_size_cap(shop: Shop) -> None:
    db = server(shop, max_rows=5)
    try:
        result = (await call(db, "query", sql=COUNT_TO_1000))["structuredContent"]
        assert result["rows"] == [[1], [2], [3], [4], [5]]
        assert result["truncated"] is True
        small = server(shop, max_result_bytes=1024)
        try:
            capped = (await call(small, "query", sql=COUNT_TO_1000))["structuredContent"]
            assert 100 < len(capped["rows"]) < 500 and capped["truncated"] is True
        finally:
            await small.stop()
        cut = server(shop, max_value_chars=16)
        try:
            (value,) = (await rows(cut, "SELECT 'abcdefghijklmnopqrstuvwxyz' AS t"))[0]
            assert value == "abcdefghijklmnop..."
        finally:
            await cut.stop()
    finally:
        await db.stop()


async def test_writes_only_when_enabled_and_committed(shop: Shop) -> None:
    db = server(shop, allow_writes=True)
    try:
        tool = next(t for t in db.items("tools") if t["name"] == "execute")
        assert tool["annotations"]["readOnlyHint"] is False
        assert tool["annotations"]["destructiveHint"] is True
        ctx = context()
        result = await call(
            db,
            "execute",
            ctx,
            sql=f"UPDATE {shop.table('items')} SET name = 'secret-name' WHERE price < :p",
            parameters={"p": 0.6},
        )
        assert result["structuredContent"]["row_count"] == 1
        assert ctx.audit_note == {
            "statement": f"UPDATE {shop.table('items')} SET name = ? WHERE price < :p",
            "row_count": 1,
        }
        assert await rows(db, f"SELECT name FROM {shop.table('items')} WHERE id = 1") == [
            ["secret-name"]
        ]
        still_read_only = await call(db, "query", sql=f"DELETE FROM {shop.table('items')}")
        assert "use the execute tool" in text(still_read_only)
        failed = await call(
            db, "execute", sql=f"INSERT INTO {shop.table('items')} VALUES (1, 'dup', 1)"
        )
        assert "the database refused the statement" in text(failed)
    finally:
        await db.stop()


async def test_an_unreachable_database_says_so_without_its_url() -> None:
    opts = DatabaseOptions(
        url="postgresql://app:hunter2-secret@127.0.0.1:1/shop", timeout_seconds=2
    )
    db = DatabaseServer("shop", "shop", opts, timeout=10)
    try:
        result = await call(db, "list_tables")
        assert result["isError"] is True
        assert "shop: cannot reach the database" in text(result)
        assert "hunter2" not in text(result) and "127.0.0.1" not in text(result)
    finally:
        await db.stop()


async def test_a_read_only_server_never_creates_a_missing_sqlite_file(tmp_path: Path) -> None:
    db = DatabaseServer(
        "shop", "shop", DatabaseOptions(url=f"sqlite:///{tmp_path}/no.db"), timeout=9
    )
    try:
        result = await call(db, "list_tables")
        assert "the SQLite database file does not exist" in text(result)
        assert not (tmp_path / "no.db").exists()
    finally:
        await db.stop()


async def test_secrets_in_the_url_are_filled_in_per_caller(tmp_path: Path) -> None:
    import sqlite3

    for user in ("ann", "bob"):
        with sqlite3.connect(tmp_path / f"{user}.db") as conn:
            conn.execute("CREATE TABLE who (name TEXT)")
            conn.execute("INSERT INTO who VALUES (?)", (user,))
    asked: list[tuple[str, str]] = []

    async def lookup(name: str, ctx: CallContext | None) -> str | None:
        assert ctx is not None
        asked.append((name, ctx.identity.subject))
        return None if ctx.identity.subject == "eve" else f"{tmp_path}/{ctx.identity.subject}.db"

    opts = DatabaseOptions(url="sqlite:///${secret:SHOP_FILE}")
    db = DatabaseServer("shop", "shop", opts, timeout=10, secrets=lookup)
    try:
        for user in ("ann", "bob"):
            ctx = context(identity=Identity(subject=user, kind="user"))
            assert await rows(db, "SELECT name FROM who", ctx=ctx) == [[user]]
        eve = await call(db, "query", context(identity=Identity(subject="eve")), sql="SELECT 1")
        assert "secret SHOP_FILE is not set for this user" in text(eve)
        assert ("SHOP_FILE", "ann") in asked and ("SHOP_FILE", "bob") in asked
    finally:
        await db.stop()


@pytest.mark.parametrize(
    "url",
    ["oracle://u@h/db", "not a url", "mssql+pyodbc://u@h/db"],
)
def test_an_unsupported_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ValueError, match=r"not supported|not a valid SQLAlchemy URL"):
        DatabaseOptions(url=url)
