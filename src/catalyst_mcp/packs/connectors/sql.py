"""The ``sql`` connector: SQLAlchemy 2 async engines, read-only enforced by the database.

* Values are always bound parameters (``text(statement)`` with ``:name`` binds; an array
  parameter is an *expanding* bind, ``IN :ids``); nothing a caller sends is ever formatted into
  SQL text. The one exception is an identifier (table or column name) the pack declares under
  ``identifiers``: ``{name}`` becomes one of the names of its allow-list, quoted by the
  dialect, and any other value is refused before SQL is built.
* ``read_only`` is enforced by the connection, not by parsing SQL: SQLite connections run
  ``PRAGMA query_only=ON`` when opened; PostgreSQL sessions start with
  ``default_transaction_read_only=on`` (every transaction is READ ONLY).
* Driver errors become :class:`PackError` with a message written for the client: no statement,
  no bound values, no URL, no driver text. The details go to the gateway log at debug level.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import decimal
import hashlib
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import bindparam, event, exc, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import BindParameter, TextClause

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.schema import TEMPLATE_VARIABLE, SqlAction, SqlConnection
from catalyst_mcp.security.references import fill, names_in

if TYPE_CHECKING:
    from catalyst_mcp.packs.connectors.restauth import SecretLookup

__all__ = [
    "ASYNC_DRIVERS",
    "QueryResult",
    "SqlConnector",
    "SqlStatement",
    "async_url",
    "fill_secrets",
]

MAX_ENGINES = 32  # per connection: one per distinct caller's credentials
PLACEHOLDER = "secret"


def fill_secrets(url: str, values: dict[str, str]) -> str:
    """``url`` with each ``${secret:NAME}`` replaced by its value, percent-encoded for a URL
    (a placeholder where ``values`` has none: enough to check the URL's form)."""
    return fill(url, values, missing=PLACEHOLDER, encode=lambda v: quote(v, safe=""))


log = logging.getLogger("catalyst.packs.sql")

# backend -> the async driver used when a URL names none (or a sync one)
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
READ_ONLY_SQLSTATE = "25006"  # PostgreSQL: read_only_sql_transaction


@dataclass(frozen=True, slots=True)
class QueryResult:
    rows: list[dict[str, Any]]
    truncated: bool


class SqlStatement:
    """One action's statement, compiled once per choice of identifiers.

    ``arrays`` names the parameters bound as lists (expanding binds).
    """

    def __init__(self, action: SqlAction, arrays: set[str]) -> None:
        self.action = action
        self.arrays = frozenset(arrays)
        self._clauses: dict[tuple[str, ...], TextClause] = {}

    def clause(self, values: dict[str, Any], dialect: Dialect) -> TextClause:
        identifiers = self.action.identifiers
        chosen: list[str] = []
        for name, allowed in identifiers.items():
            value = values.get(name)
            if value not in allowed:
                raise PackError(f"argument '{name}' must be one of {allowed}")
            chosen.append(value)
        key = tuple(chosen)
        clause = self._clauses.get(key)
        if clause is None:
            statement = self.action.statement
            if identifiers:
                quoted = dict(zip(identifiers, (_quote(v, dialect) for v in chosen), strict=True))
                statement = TEMPLATE_VARIABLE.sub(lambda m: quoted.get(m[1], m[0]), statement)
            clause = text(statement)
            binds = clause.compile().params
            expanding: list[BindParameter[Any]] = [
                bindparam(n, expanding=True) for n in self.arrays if n in binds
            ]
            if expanding:
                clause = clause.bindparams(*expanding)
            self._clauses[key] = clause
        return clause


def _quote(identifier: str, dialect: Dialect) -> str:
    return ".".join(dialect.identifier_preparer.quote(part) for part in identifier.split("."))


def async_url(raw: str) -> URL:
    """``raw`` as a SQLAlchemy URL with an async driver; ValueError says what is wrong."""
    try:
        url = make_url(raw)
    except exc.ArgumentError as error:
        raise ValueError("not a valid SQLAlchemy URL (dialect://user@host/database)") from error
    backend = "postgresql" if url.get_backend_name() == "postgres" else url.get_backend_name()
    driver = ASYNC_DRIVERS.get(backend)
    if driver is None:
        raise ValueError(f"database {backend!r} is not supported yet: use sqlite or postgresql")
    return url.set(drivername=f"{backend}+{driver}")


class SqlConnector:
    """One declared ``sql`` connection: a lazily connecting async engine.

    A URL with ``${secret:NAME}`` (a password, say) is filled in for each caller from the
    secrets store (their own value, else the shared one) and gets one engine per distinct
    filled-in URL, the least recently used of which are disposed beyond ``MAX_ENGINES``.
    """

    def __init__(
        self, name: str, config: SqlConnection, *, secrets: SecretLookup | None = None
    ) -> None:
        self.name = name
        self.config = config
        self.secret_names = sorted(names_in(config.url))
        self.secrets = secrets
        self.url = async_url(fill_secrets(config.url, {}))  # placeholders: dialect and driver
        self.backend = self.url.get_backend_name()
        self._engine: AsyncEngine | None = None
        self._engines: OrderedDict[str, AsyncEngine] = OrderedDict()  # by filled-in URL
        self._interrupts: set[asyncio.Future[None]] = set()

    async def engine_for(self, ctx: CallContext | None) -> AsyncEngine:
        """The engine for this caller: the one engine, or theirs when the URL names secrets."""
        if not self.secret_names:
            return self.engine
        values = {}
        for secret in self.secret_names:
            value = await self.secrets(secret, ctx) if self.secrets is not None else None
            if value is None:
                raise PackError(
                    f"connection '{self.name}': secret {secret} is not set for this user"
                    if self.secrets is not None
                    else f"connection '{self.name}': ${{secret:{secret}}} needs the secrets store"
                )
            values[secret] = value
        url = fill_secrets(self.config.url, values)
        key = hashlib.sha256(url.encode()).hexdigest()
        engine = self._engines.get(key)
        if engine is not None:
            self._engines.move_to_end(key)
            return engine
        engine = self._create(async_url(url))
        self._engines[key] = engine
        if len(self._engines) > MAX_ENGINES:
            _, oldest = self._engines.popitem(last=False)
            await oldest.dispose()
        return engine

    def _create(self, url: URL | None = None) -> AsyncEngine:
        kwargs: dict[str, Any] = {}
        connect_args: dict[str, Any] = {}
        if self.backend == "postgresql":
            kwargs["pool_size"] = self.config.pool_size
            connect_args["timeout"] = self.config.timeout_seconds
            settings = {"statement_timeout": str(int(self.config.timeout_seconds * 1000))}
            if self.config.read_only:
                settings["default_transaction_read_only"] = "on"
            connect_args["server_settings"] = settings
        engine = create_async_engine(url or self.url, connect_args=connect_args, **kwargs)
        if self.backend == "sqlite" and self.config.read_only:
            event.listen(engine.sync_engine, "connect", _sqlite_query_only)
        return engine

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = self._create()
        return self._engine

    async def query(
        self,
        statement: str | SqlStatement,
        values: dict[str, Any],
        max_rows: int,
        ctx: CallContext | None = None,
    ) -> QueryResult:
        """Run ``statement`` with ``values`` bound; at most ``max_rows`` rows come back.

        At the time limit the statement itself is stopped (SQLite: interrupted; PostgreSQL:
        ``statement_timeout``), not just abandoned. (The driver still buffers a statement's
        whole result: bound it in SQL with ``LIMIT`` as the examples do.)
        """
        timeout = self.config.timeout_seconds
        interrupted = False
        try:
            engine = await self.engine_for(ctx)
            if isinstance(statement, str):
                clause = text(statement)
            else:
                clause = statement.clause(values, engine.dialect)
            async with engine.connect() as conn:
                stop = None
                if self.backend == "sqlite":
                    raw = (await conn.get_raw_connection()).driver_connection
                    assert raw is not None  # an open connection has its driver's

                    def interrupt() -> None:
                        nonlocal interrupted
                        interrupted = True
                        task = asyncio.ensure_future(raw.interrupt())  # thread-safe in sqlite3
                        self._interrupts.add(task)
                        task.add_done_callback(self._interrupts.discard)

                    stop = asyncio.get_running_loop().call_later(timeout, interrupt)
                try:
                    async with asyncio.timeout(timeout + 1.0 if stop else timeout):
                        result = await conn.execute(clause, values)
                        keys = list(result.keys()) if result.returns_rows else []
                        fetched = result.fetchmany(max_rows + 1) if keys else []
                        await conn.commit()
                finally:
                    if stop is not None:
                        stop.cancel()
        except TimeoutError as error:
            raise self._too_long() from error
        except exc.SQLAlchemyError as error:
            if interrupted:
                raise self._too_long() from error
            raise self._map(error) from error
        except OSError as error:
            log.debug("connection %s: %s", self.name, type(error).__name__)
            raise PackError(f"cannot reach the database of connection '{self.name}'") from error
        except (OverflowError, ValueError) as error:  # a value the driver cannot bind
            log.debug("connection %s: %s", self.name, type(error).__name__)
            raise PackError(
                f"a value is out of range for the database of connection '{self.name}'"
            ) from error
        rows = [{k: _json(v) for k, v in zip(keys, row, strict=True)} for row in fetched]
        return QueryResult(rows[:max_rows], len(rows) > max_rows)

    def _too_long(self) -> PackError:
        return PackError(
            f"the query on connection '{self.name}' took longer than "
            f"{self.config.timeout_seconds:g} s"
        )

    def _map(self, error: exc.SQLAlchemyError) -> PackError:
        orig = getattr(error, "orig", None)
        log.debug("connection %s: %s (%s)", self.name, type(error).__name__, type(orig).__name__)
        if self.config.read_only and _is_read_only_violation(orig):
            return PackError(f"connection '{self.name}' is read-only: the statement tried to write")
        if isinstance(error, exc.InterfaceError) or (
            isinstance(error, exc.OperationalError) and _is_connect_failure(orig)
        ):
            return PackError(f"cannot reach the database of connection '{self.name}'")
        return PackError(f"the query on connection '{self.name}' failed (database error)")

    async def close(self) -> None:
        engines, self._engines = list(self._engines.values()), OrderedDict()
        if self._engine is not None:
            engines.append(self._engine)
            self._engine = None
        for engine in engines:
            await engine.dispose()


def _sqlite_query_only(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _is_read_only_violation(orig: Any) -> bool:
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) == READ_ONLY_SQLSTATE:
        return True
    pgcode = getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    message = str(orig).lower()
    return pgcode == READ_ONLY_SQLSTATE or "readonly" in message or "read-only" in message


def _is_connect_failure(orig: Any) -> bool:
    message = str(orig).lower()
    return "unable to open" in message or "connect" in message


def _json(value: Any) -> Any:
    """A database value as JSON: numbers, text, booleans and null as they are; others as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return str(value)
