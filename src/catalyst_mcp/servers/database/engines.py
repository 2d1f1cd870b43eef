"""The database server's connections: per-caller engines and transactions the database enforces.

Every call runs in its own transaction on a pooled connection, set up by the database itself:

==========  ===============================================  ==================================
backend     read-only                                        time limit
==========  ===============================================  ==================================
PostgreSQL  ``SET TRANSACTION READ ONLY`` (and, on a          ``SET LOCAL statement_timeout``
            server without writes, every session defaults
            to read-only)
MariaDB,    ``SET SESSION TRANSACTION READ ONLY`` (DDL too)   MariaDB ``max_statement_time``,
MySQL       then ``START TRANSACTION READ ONLY``             MySQL ``max_execution_time``
SQLite      ``PRAGMA query_only``; an authorizer refuses      the connection is interrupted
            ATTACH, DETACH and PRAGMAs that change things
==========  ===============================================  ==================================

A read ends in ``ROLLBACK``: whatever a statement changed in its session (a ``SET``) goes with
it, and the next call sets its own mode again, so one statement cannot loosen the next one's
limits. Past the limit plus a margin the client gives up too and the connection is discarded.
Results are streamed (server-side cursors) and only ``max_rows + 1`` rows are fetched.

A URL with ``${secret:NAME}`` is filled in per caller (their own value, else the shared one)
and gets an engine per distinct URL; the least recently used beyond :data:`MAX_ENGINES` are
disposed. Driver errors become :class:`~catalyst_mcp.errors.BuiltinError`: the database's own
message for a statement it refused (the caller wrote the statement and needs the reason), never
a URL or a stack trace; connection failures say only that the database cannot be reached.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import sqlite3
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import text
from sqlalchemy.util import await_only

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.security.references import fill, names_in
from catalyst_mcp.servers.config import DatabaseOptions

__all__ = ["ASYNC_DRIVERS", "Connections", "async_url"]

log = logging.getLogger("catalyst.servers.database")

SecretLookup = Callable[[str, CallContext | None], Awaitable[str | None]]
T = TypeVar("T")

# backend (as URLs spell it) -> (SQLAlchemy dialect, async driver used)
ASYNC_DRIVERS = {
    "sqlite": ("sqlite", "aiosqlite"),
    "postgresql": ("postgresql", "asyncpg"),
    "postgres": ("postgresql", "asyncpg"),
    "mysql": ("mysql", "asyncmy"),
    "mariadb": ("mariadb", "asyncmy"),
}
MAX_ENGINES = 32
CLIENT_MARGIN = 2.0  # seconds past the database's own limit before the client gives up
READ_ONLY_CODES = {"25006"}  # PostgreSQL read_only_sql_transaction
MYSQL_READ_ONLY = 1792  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
TIMEOUT_CODES = {"57014"}  # PostgreSQL query_canceled
MYSQL_TIMEOUTS = {1969, 3024, 1317}  # MariaDB max_statement_time, MySQL, query interrupted
# PRAGMAs that only read (with an argument naming a table or an index)
SQLITE_READ_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "database_list",
        "collation_list",
        "function_list",
        "compile_options",
    }
)
_INTERRUPTS: set[asyncio.Future[None]] = set()  # interrupts on their way (kept referenced)
_DRIVER_PREFIX = re.compile(r"^<class '[\w.]+'>:\s*")


def async_url(raw: str) -> URL:
    """``raw`` with the async driver of its backend; ValueError says what is wrong."""
    try:
        url = make_url(fill(raw, {}, missing="secret"))
    except exc.ArgumentError as error:
        raise ValueError(
            "not a valid SQLAlchemy URL (dialect://user@host/database, sqlite:///file.db)"
        ) from error
    backend = url.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise ValueError(f"database {backend!r} is not supported: use {', '.join(ASYNC_DRIVERS)}")
    dialect, driver = ASYNC_DRIVERS[backend]
    return url.set(drivername=f"{dialect}+{driver}")


class Connections:
    """The engines of one database server and the transactions its calls run in."""

    def __init__(
        self, server: str, options: DatabaseOptions, secrets: SecretLookup | None = None
    ) -> None:
        self.server = server
        self.options = options
        self.secret_names = sorted(names_in(options.url))
        self.secrets = secrets
        self.url = async_url(options.url)
        self.backend = ASYNC_DRIVERS[self.url.get_backend_name()][0]
        self._engines: OrderedDict[str, AsyncEngine] = OrderedDict()

    @property
    def mysql(self) -> bool:
        return self.backend in ("mysql", "mariadb")

    # ---- engines -----------------------------------------------------------------------------

    async def engine_for(self, ctx: CallContext | None) -> AsyncEngine:
        """The engine for this caller: the one engine, or theirs when the URL names secrets."""
        raw = self.options.url
        if self.secret_names:
            values = {}
            for secret in self.secret_names:
                value = await self.secrets(secret, ctx) if self.secrets is not None else None
                if value is None:
                    raise BuiltinError(
                        f"{self.server}: secret {secret} is not set for this user "
                        f"(`catalyst secrets set {secret}`)"
                    )
                values[secret] = value
            raw = fill(raw, values, encode=_url_quote)
        key = hashlib.sha256(raw.encode()).hexdigest()
        engine = self._engines.get(key)
        if engine is not None:
            self._engines.move_to_end(key)
            return engine
        url = async_url(raw) if self.secret_names else self.url
        if self.backend == "sqlite" and not self.options.allow_writes:
            _check_sqlite_file(self.server, url)
        engine = self._create(url)
        self._engines[key] = engine
        if len(self._engines) > MAX_ENGINES:
            _, oldest = self._engines.popitem(last=False)
            await oldest.dispose()
        return engine

    def _create(self, url: URL) -> AsyncEngine:
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        connect_args: dict[str, Any] = {}
        if self.backend == "postgresql":
            connect_args["timeout"] = self.options.timeout_seconds
            if not self.options.allow_writes:  # a session nobody set up is read-only too
                connect_args["server_settings"] = {"default_transaction_read_only": "on"}
        elif self.mysql:
            connect_args["connect_timeout"] = max(1, int(self.options.timeout_seconds))
        if self.backend != "sqlite":
            kwargs["pool_size"] = self.options.pool_size
        engine = create_async_engine(url, connect_args=connect_args, **kwargs)
        if self.backend == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_guard)
        return engine

    async def close(self) -> None:
        engines, self._engines = list(self._engines.values()), OrderedDict()
        for engine in engines:
            await engine.dispose()

    # ---- transactions ------------------------------------------------------------------------

    async def run(
        self,
        ctx: CallContext | None,
        work: Callable[[AsyncConnection], Awaitable[T]],
        *,
        write: bool = False,
    ) -> T:
        """``work`` on a connection in a read-only (or, with ``write``, a read-write)
        transaction, within the time limit; committed only when writing."""
        limit = self.options.timeout_seconds
        interrupted = False
        try:
            engine = await self.engine_for(ctx)
            async with engine.connect() as conn:
                stop: asyncio.TimerHandle | None = None
                if self.backend == "sqlite":
                    raw = (await conn.get_raw_connection()).driver_connection
                    assert raw is not None

                    def interrupt() -> None:
                        nonlocal interrupted
                        interrupted = True
                        task = asyncio.ensure_future(raw.interrupt())
                        _INTERRUPTS.add(task)
                        task.add_done_callback(_INTERRUPTS.discard)

                    stop = asyncio.get_running_loop().call_later(limit, interrupt)
                try:
                    async with asyncio.timeout(limit + CLIENT_MARGIN):
                        await self._begin(conn, write=write)
                        result = await work(conn)
                        if write:
                            await conn.commit()
                        else:
                            await conn.rollback()
                        return result
                except TimeoutError:
                    await conn.invalidate()  # its state is unknown: never back to the pool
                    raise
                finally:
                    if stop is not None:
                        stop.cancel()
        except TimeoutError:
            raise self._too_long() from None
        except exc.SQLAlchemyError as error:
            if interrupted:
                raise self._too_long() from None
            raise self._map(error, getattr(error, "orig", None), write=write) from None
        except OSError as error:
            log.debug("%s: %s", self.server, type(error).__name__)
            raise self._unreachable(error) from None
        except Exception as error:
            # a server-side cursor lets the driver's own errors through unwrapped
            if not _from_driver(error):
                raise
            if interrupted:
                raise self._too_long() from None
            raise self._map(None, error, write=write) from None

    async def _begin(self, conn: AsyncConnection, *, write: bool) -> None:
        limit = self.options.timeout_seconds
        if self.backend == "postgresql":
            mode = "READ WRITE" if write else "READ ONLY"
            await conn.execute(text(f"SET TRANSACTION {mode}"))
            await conn.execute(text(f"SET LOCAL statement_timeout = {int(limit * 1000)}"))
        elif self.mysql:
            mode = "READ WRITE" if write else "READ ONLY"
            await conn.execute(text(f"SET SESSION TRANSACTION {mode}"))
            if getattr(conn.dialect, "is_mariadb", False):
                await conn.execute(text(f"SET SESSION max_statement_time = {limit:.3f}"))
            else:
                await conn.execute(text(f"SET SESSION max_execution_time = {int(limit * 1000)}"))
            await conn.execute(text(f"START TRANSACTION {mode}"))
        else:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            trusted = _SQLITE_TRUSTED.setdefault(raw, [False])
            trusted[0] = True
            try:
                await conn.exec_driver_sql(f"PRAGMA query_only = {'OFF' if write else 'ON'}")
            finally:
                trusted[0] = False

    def _too_long(self) -> BuiltinError:
        return BuiltinError(
            f"{self.server}: the statement took longer than {self.options.timeout_seconds:g} s "
            "and was stopped (timeout_seconds); narrow it or add a LIMIT"
        )

    def _unreachable(self, error: BaseException) -> BuiltinError:
        return BuiltinError(
            f"{self.server}: cannot reach the database ({type(error).__name__}); check that it "
            "runs and that the server's url and credentials are right"
        )

    def _map(
        self, error: exc.SQLAlchemyError | None, orig: BaseException | None, *, write: bool
    ) -> BuiltinError:
        """A database error as a message for the caller (``error`` is SQLAlchemy's, ``orig``
        the driver's)."""
        log.debug("%s: %s (%s)", self.server, type(error).__name__, type(orig).__name__)
        code = _sqlstate(orig)
        number = _mysql_errno(orig)
        message = _driver_message(orig) if orig is not None else ""
        if code in TIMEOUT_CODES or number in MYSQL_TIMEOUTS or "interrupted" in message.lower():
            return self._too_long()
        if not write and (
            code in READ_ONLY_CODES
            or number == MYSQL_READ_ONLY
            or "readonly database" in message.lower()
        ):
            hint = "use the execute tool" if self.options.allow_writes else "it is read-only"
            return BuiltinError(
                f"{self.server}: the database refused a write in a read-only transaction ({hint})"
            )
        if "not authorized" in message.lower() and self.backend == "sqlite":
            return BuiltinError(
                f"{self.server}: statement not allowed (ATTACH, DETACH and PRAGMAs that change "
                "settings are refused)"
            )
        if isinstance(error, exc.InterfaceError) or _is_connect_failure(message):
            return self._unreachable(orig or error or Exception())
        if isinstance(error, exc.ArgumentError | exc.InvalidRequestError) and orig is None:
            text_ = str(error).split("\n")[0]
            if "bind parameter" in text_:
                return BuiltinError(
                    f"{self.server}: {text_[:300]} (give it in parameters; write \\:name for a "
                    "literal colon)"
                )
        if not message:
            message = type(orig or error).__name__
        return BuiltinError(f"{self.server}: the database refused the statement: {message[:500]}")


# ---- SQLite guard ----------------------------------------------------------------------------

# driver connection -> [the server's own statement is running]
_SQLITE_TRUSTED: weakref.WeakKeyDictionary[Any, list[bool]] = weakref.WeakKeyDictionary()


def _sqlite_guard(dbapi_connection: Any, record: Any) -> None:
    """On every new SQLite connection: an authorizer that refuses ATTACH and DETACH (they
    would reach other files of this machine) and PRAGMAs that change settings (query_only
    among them), except the server's own."""
    raw = dbapi_connection.driver_connection
    trusted = _SQLITE_TRUSTED.setdefault(raw, [False])

    def authorize(action: int, arg1: Any, arg2: Any, db: Any, trigger: Any) -> int:
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA and not trusted[0]:
            name = str(arg1 or "").lower()
            if arg2 is not None and name not in SQLITE_READ_PRAGMAS:
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    await_only(raw.set_authorizer(authorize))
    cursor = dbapi_connection.cursor()
    trusted[0] = True
    try:
        cursor.execute("PRAGMA query_only=ON")
    finally:
        trusted[0] = False
        cursor.close()


def _check_sqlite_file(server: str, url: URL) -> None:
    """A read-only server must not create the file it was pointed at (SQLite would)."""
    name = url.database or ""
    if name and name != ":memory:" and not name.startswith("file:") and not os.path.exists(name):
        raise BuiltinError(
            f"{server}: the SQLite database file does not exist (check the server's url)"
        )


def _from_driver(error: BaseException) -> bool:
    module = type(error).__module__.split(".")[0]
    return module in ("asyncpg", "asyncmy", "aiosqlite", "sqlite3") or isinstance(
        error, sqlite3.Error
    )


def _url_quote(value: str) -> str:
    return quote(value, safe="")


def _sqlstate(orig: Any) -> str | None:
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _mysql_errno(orig: Any) -> int | None:
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _driver_message(orig: Any) -> str:
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int) and isinstance(args[1], str):
        return args[1]  # MySQL: (errno, message)
    return _DRIVER_PREFIX.sub("", str(orig)).strip()


def _is_connect_failure(message: str) -> bool:
    lowered = message.lower()
    return any(
        word in lowered
        for word in ("unable to open", "can't connect", "connection refused", "could not connect")
    )
