"""The built-in database server: one SQL database (SQLite, PostgreSQL, MariaDB/MySQL) as tools.

Read tools — ``list_schemas``, ``list_tables``, ``describe_table``, ``sample_rows``, ``query`` —
run in read-only transactions the database enforces (:mod:`.engines`); ``execute`` is offered
only when the server's ``allow_writes`` is on, runs one statement in a read-write transaction,
and adds the statement with its literals masked (:mod:`.sqlmask`) and the row count to the
call's audit record. Values come back as JSON (numbers, text, booleans, null; dates as ISO text;
bytes as base64), long ones cut; at most ``max_rows`` rows and ``max_result_bytes`` of them.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import uuid
from typing import Any

import orjson
from sqlalchemy import exc, inspect, literal_column, select, table
from sqlalchemy.engine import Connection, Inspector
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import text

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.servers.base import BuiltinServer, Json, Result, Tool, obj
from catalyst_mcp.servers.config import DatabaseOptions
from catalyst_mcp.servers.database.engines import Connections, SecretLookup
from catalyst_mcp.servers.database.sqlmask import mask_literals

__all__ = ["DatabaseServer"]

MAX_SQL_CHARS = 100_000
MAX_TEXT_ROWS = 50
NAME: Json = {"type": "string", "minLength": 1, "maxLength": 256}
SCHEMA: Json = {
    **NAME,
    "description": "Schema (PostgreSQL) or database (MariaDB/MySQL); default: the "
    "connection's own.",
}
SQL: Json = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_SQL_CHARS,
    "description": "One SQL statement. Values go in parameters as :name placeholders "
    "(write \\:name for a literal colon).",
}
PARAMETERS: Json = {
    "type": "object",
    "description": "Values of the statement's :name placeholders, bound by the driver.",
    "additionalProperties": {"type": ["string", "number", "integer", "boolean", "null"]},
}
ROWS: Json = {
    "columns": {"type": "array", "items": {"type": "string"}},
    "rows": {
        "type": "array",
        "items": {"type": "array"},
        "description": "One array per row, in the order of columns.",
    },
    "truncated": {
        "type": "boolean",
        "description": "More rows exist than were returned (max_rows or max_result_bytes).",
    },
}


class DatabaseServer(BuiltinServer):
    kind = "database"

    def __init__(
        self,
        name: str,
        namespace: str,
        options: DatabaseOptions,
        *,
        timeout: float,
        secrets: SecretLookup | None = None,
    ) -> None:
        super().__init__(name, namespace, timeout=timeout)
        self.options = options
        self.connections = Connections(name, options, secrets)
        self.declare(self._tools_of())

    @property
    def instructions(self) -> str:
        mode = "read-write (execute)" if self.options.allow_writes else "read-only"
        return f"A {self.connections.backend} database, {mode}; describe tables before querying."

    def health(self) -> Json:
        report = super().health()
        report["backend"] = self.connections.backend
        report["writes"] = self.options.allow_writes
        return report

    async def stop(self) -> None:
        await self.connections.close()

    # ---- tools -------------------------------------------------------------------------------

    def _tools_of(self) -> list[Tool]:
        opts = self.options
        rows_out = obj({**ROWS, "row_count": {"type": "integer"}}, ["columns", "rows", "truncated"])
        tools = [
            Tool(
                "list_schemas",
                "List schemas",
                "The schemas (PostgreSQL) or databases (MariaDB/MySQL) of the connection, and "
                "the default one.",
                obj({}),
                obj(
                    {
                        "schemas": {"type": "array", "items": {"type": "string"}},
                        "default": {"type": ["string", "null"]},
                    },
                    ["schemas", "default"],
                ),
                self._list_schemas,
            ),
            Tool(
                "list_tables",
                "List tables",
                "Tables and views of a schema.",
                obj({"schema": SCHEMA}),
                obj(
                    {
                        "schema": {"type": ["string", "null"]},
                        "tables": {
                            "type": "array",
                            "items": obj(
                                {"name": {"type": "string"}, "type": {"enum": ["table", "view"]}},
                                ["name", "type"],
                            ),
                        },
                    },
                    ["schema", "tables"],
                ),
                self._list_tables,
            ),
            Tool(
                "describe_table",
                "Describe a table",
                "Columns (name, type, nullable, default), primary key, foreign keys and "
                "indexes of a table or view.",
                obj({"table": NAME, "schema": SCHEMA}, ["table"]),
                obj(
                    {
                        "schema": {"type": ["string", "null"]},
                        "table": {"type": "string"},
                        "columns": {
                            "type": "array",
                            "items": obj(
                                {
                                    "name": {"type": "string"},
                                    "type": {"type": "string"},
                                    "nullable": {"type": "boolean"},
                                    "default": {"type": ["string", "null"]},
                                    "primary_key": {"type": "boolean"},
                                },
                                ["name", "type", "nullable", "default", "primary_key"],
                            ),
                        },
                        "primary_key": {"type": "array", "items": {"type": "string"}},
                        "foreign_keys": {
                            "type": "array",
                            "items": obj(
                                {
                                    "columns": {"type": "array", "items": {"type": "string"}},
                                    "references": {"type": "string"},
                                    "referred_columns": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                    },
                                },
                                ["columns", "references", "referred_columns"],
                            ),
                        },
                        "indexes": {
                            "type": "array",
                            "items": obj(
                                {
                                    "name": {"type": ["string", "null"]},
                                    "columns": {
                                        "type": "array",
                                        "items": {"type": ["string", "null"]},
                                    },
                                    "unique": {"type": "boolean"},
                                },
                                ["name", "columns", "unique"],
                            ),
                        },
                    },
                    ["schema", "table", "columns", "primary_key", "foreign_keys", "indexes"],
                ),
                self._describe_table,
            ),
            Tool(
                "sample_rows",
                "Sample rows",
                "The first rows of a table or view (no particular order).",
                obj(
                    {
                        "table": NAME,
                        "schema": SCHEMA,
                        "limit": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": opts.max_rows,
                            "default": min(10, opts.max_rows),
                        },
                    },
                    ["table"],
                ),
                rows_out,
                self._sample_rows,
            ),
            Tool(
                "query",
                "Run a read-only query",
                "Run one SQL statement in a read-only transaction (the database refuses "
                f"writes). At most {opts.max_rows:,} rows come back; the statement is stopped "
                f"after {opts.timeout_seconds:g} s.",
                obj({"sql": SQL, "parameters": PARAMETERS}, ["sql"]),
                rows_out,
                self._query,
            ),
        ]
        if opts.allow_writes:
            tools.append(
                Tool(
                    "execute",
                    "Run a writing statement",
                    "Run one statement that changes data or schema (INSERT, UPDATE, DELETE, "
                    "CREATE, ...) in a read-write transaction, committed if it succeeds. Give "
                    "values as :name parameters: the audit trail records the statement with "
                    "literals masked, and the row count.",
                    obj({"sql": SQL, "parameters": PARAMETERS}, ["sql"]),
                    obj(
                        {
                            **ROWS,
                            "row_count": {
                                "type": ["integer", "null"],
                                "description": "Rows the statement changed (null: unknown).",
                            },
                        },
                        ["row_count"],
                    ),
                    self._execute,
                    read_only=False,
                    destructive=True,
                    idempotent=False,
                )
            )
        return tools

    # ---- handlers ----------------------------------------------------------------------------

    async def _inspect(self, ctx: CallContext, work: Any) -> Any:
        async def run(conn: AsyncConnection) -> Any:
            return await conn.run_sync(lambda sync: work(inspect(sync), sync))

        return await self.connections.run(ctx, run)

    async def _list_schemas(self, args: Json, ctx: CallContext) -> Result:
        def work(inspector: Inspector, conn: Connection) -> tuple[list[str], str | None]:
            return list(inspector.get_schema_names()), inspector.default_schema_name

        schemas, default = await self._inspect(ctx, work)
        text_ = "\n".join(s + ("  (default)" if s == default else "") for s in schemas)
        return Result({"schemas": schemas, "default": default}, text_ or "No schemas.")

    async def _list_tables(self, args: Json, ctx: CallContext) -> Result:
        schema = args.get("schema")

        def work(inspector: Inspector, conn: Connection) -> list[Json]:
            self._check_schema(inspector, schema)
            tables = [{"name": n, "type": "table"} for n in inspector.get_table_names(schema)]
            views = [{"name": n, "type": "view"} for n in inspector.get_view_names(schema)]
            return sorted(tables + views, key=lambda t: str(t["name"]))

        tables = await self._inspect(ctx, work)
        shown = schema or "the default schema"
        lines = [f"{t['name']} ({t['type']})" for t in tables]
        return Result(
            {"schema": schema, "tables": tables},
            "\n".join(lines) if lines else f"No tables in {shown}.",
        )

    def _check_schema(self, inspector: Inspector, schema: str | None) -> None:
        if schema is not None and schema not in inspector.get_schema_names():
            raise BuiltinError(f"{self.name}: no schema {schema!r} (list_schemas lists them)")

    def _check_table(self, inspector: Inspector, name: str, schema: str | None) -> None:
        self._check_schema(inspector, schema)
        if not inspector.has_table(name, schema):
            where = f" in schema {schema!r}" if schema else ""
            raise BuiltinError(f"{self.name}: no table or view {name!r}{where} (list_tables)")

    async def _describe_table(self, args: Json, ctx: CallContext) -> Result:
        name, schema = args["table"], args.get("schema")

        def work(inspector: Inspector, conn: Connection) -> Json:
            self._check_table(inspector, name, schema)
            pk = list(inspector.get_pk_constraint(name, schema).get("constrained_columns") or [])
            columns = [
                {
                    "name": c["name"],
                    "type": str(c["type"]),
                    "nullable": bool(c.get("nullable", True)),
                    "default": None if c.get("default") is None else str(c.get("default")),
                    "primary_key": c["name"] in pk,
                }
                for c in inspector.get_columns(name, schema)
            ]
            foreign = [
                {
                    "columns": list(fk["constrained_columns"]),
                    "references": ".".join(
                        p for p in (fk.get("referred_schema"), fk["referred_table"]) if p
                    ),
                    "referred_columns": list(fk["referred_columns"]),
                }
                for fk in inspector.get_foreign_keys(name, schema)
            ]
            indexes = [
                {
                    "name": ix.get("name"),
                    "columns": list(ix.get("column_names") or []),
                    "unique": bool(ix.get("unique")),
                }
                for ix in inspector.get_indexes(name, schema)
            ]
            return {
                "schema": schema,
                "table": name,
                "columns": columns,
                "primary_key": pk,
                "foreign_keys": foreign,
                "indexes": indexes,
            }

        found = await self._inspect(ctx, work)
        lines = [
            f"{c['name']} {c['type']}"
            + ("" if c["nullable"] else " NOT NULL")
            + (f" DEFAULT {c['default']}" if c["default"] is not None else "")
            + (" PRIMARY KEY" if c["primary_key"] else "")
            for c in found["columns"]
        ]
        lines += [
            f"FOREIGN KEY ({', '.join(fk['columns'])}) REFERENCES {fk['references']} "
            f"({', '.join(fk['referred_columns'])})"
            for fk in found["foreign_keys"]
        ]
        return Result(found, "\n".join(lines))

    async def _sample_rows(self, args: Json, ctx: CallContext) -> Result:
        name, schema = args["table"], args.get("schema")
        limit = args.get("limit", min(10, self.options.max_rows))

        async def run(conn: AsyncConnection) -> Json:
            await conn.run_sync(lambda sync: self._check_table(inspect(sync), name, schema))
            statement: Any = select(literal_column("*")).select_from(table(name, schema=schema))
            return await self._rows(conn, statement.limit(limit + 1), {}, limit)

        found = await self.connections.run(ctx, run)
        return Result(found, rows_text(found))

    async def _query(self, args: Json, ctx: CallContext) -> Result:
        async def run(conn: AsyncConnection) -> Json:
            return await self._rows(
                conn, text(args["sql"]), args.get("parameters") or {}, self.options.max_rows
            )

        found = await self.connections.run(ctx, run)
        return Result(found, rows_text(found))

    async def _execute(self, args: Json, ctx: CallContext) -> Result:
        sql = args["sql"]
        note: Json = {"statement": mask_literals(sql)}
        ctx.audit_note = note

        async def run(conn: AsyncConnection) -> Json:
            result = await conn.execute(text(sql), args.get("parameters") or {})
            count = (
                result.rowcount if result.rowcount is not None and result.rowcount >= 0 else None
            )
            found: Json = {"row_count": count}
            if result.returns_rows:
                found.update(
                    self._shape(list(result.keys()), result.fetchmany(self.options.max_rows + 1))
                )
            return found

        found = await self.connections.run(ctx, run, write=True)
        note["row_count"] = found["row_count"]
        changed = found["row_count"]
        head = "Done" + (f": {changed} row(s) changed." if changed is not None else ".")
        return Result(found, head + ("\n" + rows_text(found) if "rows" in found else ""))

    # ---- rows --------------------------------------------------------------------------------

    async def _rows(
        self, conn: AsyncConnection, statement: Any, parameters: Json, max_rows: int
    ) -> Json:
        result = await conn.stream(statement, parameters)
        try:
            try:
                keys = list(result.keys())
            except exc.ResourceClosedError:  # a statement without rows (SET, EXPLAIN on some)
                return {"columns": [], "rows": [], "truncated": False, "row_count": 0}
            fetched = await result.fetchmany(max_rows + 1)
        finally:
            await result.close()
        return self._shape(keys, fetched, max_rows)

    def _shape(self, keys: list[str], fetched: Any, max_rows: int | None = None) -> Json:
        limit = self.options.max_rows if max_rows is None else max_rows
        budget = self.options.max_result_bytes
        rows: list[list[Any]] = []
        truncated = len(fetched) > limit
        for raw in fetched[:limit]:
            row = [self._value(v) for v in raw]
            budget -= len(orjson.dumps(row))
            if budget < 0:
                truncated = True
                break
            rows.append(row)
        return {
            "columns": [str(k) for k in keys],
            "rows": rows,
            "truncated": truncated,
            "row_count": len(rows),
        }

    def _value(self, value: Any) -> Any:
        cut = self.options.max_value_chars
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            return value if value == value and abs(value) != float("inf") else str(value)
        if isinstance(value, str):
            return value if len(value) <= cut else value[:cut] + "..."
        if isinstance(value, decimal.Decimal):  # a number when JSON can carry it exactly
            if value == value.to_integral_value() and abs(value) < 2**53:
                return int(value)
            approx = float(value)
            return approx if decimal.Decimal(repr(approx)) == value else str(value)
        if isinstance(value, datetime.date | datetime.time | datetime.timedelta):
            return value.isoformat() if not isinstance(value, datetime.timedelta) else str(value)
        if isinstance(value, bytes | bytearray | memoryview):
            encoded = base64.b64encode(bytes(value)).decode()
            return encoded if len(encoded) <= cut else encoded[:cut] + "..."
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, list | tuple):
            return [self._value(v) for v in value]
        if isinstance(value, dict):
            return {str(k): self._value(v) for k, v in value.items()}
        shown = str(value)
        return shown if len(shown) <= cut else shown[:cut] + "..."


def rows_text(found: Json) -> str:
    """Rows as a small table for models that read text (structuredContent has them all)."""
    columns, rows = found.get("columns", []), found.get("rows", [])
    if not rows:
        return "No rows." if columns else "The statement returned no rows."
    count = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
    if found.get("truncated"):
        count += " (more rows exist: the result was truncated)"
    lines = [count + ":", " | ".join(columns)]
    lines += [
        " | ".join("NULL" if v is None else str(v) for v in row) for row in rows[:MAX_TEXT_ROWS]
    ]
    if len(rows) > MAX_TEXT_ROWS:
        lines.append(f"... {len(rows) - MAX_TEXT_ROWS} more in structuredContent")
    return "\n".join(lines)
