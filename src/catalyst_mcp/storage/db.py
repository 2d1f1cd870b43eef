"""The gateway's database: one async SQLAlchemy engine over SQLite or PostgreSQL.

* URLs name an async driver (``sqlite+aiosqlite://``, ``postgresql+asyncpg://``); plain
  ``sqlite://`` and ``postgresql://`` (or ``postgres://``) are mapped to them.
* SQLite: the file's folder is created; every connection runs with ``foreign_keys=ON`` (so
  ``ON DELETE CASCADE`` works), WAL journaling, ``synchronous=FULL`` and a busy timeout;
  transactions start with an explicit ``BEGIN`` (so DDL, and with it a migration, is
  transactional too), or ``BEGIN IMMEDIATE`` for a session that says it will write.
* Failures become :class:`StorageError`. A connection failure names the database and host (or
  file) and a short reason, never the password, a statement or a bound value: the engine runs
  with ``hide_parameters`` and the raw URL is never logged (see :attr:`Database.redacted_url`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
from sqlalchemy import event, exc, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from catalyst_mcp.errors import CatalystError, StorageError
from catalyst_mcp.storage.base import Base

__all__ = ["ASYNC_DRIVERS", "Database", "database_url", "sqlite_file"]

log = logging.getLogger("catalyst.storage")

# backend -> the async driver used whatever driver (or none) a URL names
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
CONNECT_TIMEOUT_SECONDS = 10.0
SQLITE_BUSY_TIMEOUT_MS = 5000
_WRITE_OPTION = "catalyst_write"  # execution option: this transaction will write
# asyncpg errors a connection attempt raises, in words
_PG_REASONS = {
    "InvalidPasswordError": "authentication failed",
    "InvalidAuthorizationSpecificationError": "the role may not connect",
    "InvalidCatalogNameError": "no such database",
    "TooManyConnectionsError": "too many connections",
    "CannotConnectNowError": "the server is starting or shutting down",
}


def database_url(raw: str) -> URL:
    """``raw`` as a URL with the async driver of its backend; StorageError if it is not one.

    The message never repeats the URL: it may carry a password.
    """
    try:
        url = make_url(raw)
    except exc.ArgumentError as error:
        raise StorageError(
            "the database URL is not valid (expected e.g. sqlite+aiosqlite:///path/to.db or "
            "postgresql+asyncpg://user@host/db)"
        ) from error
    backend = url.get_backend_name()
    backend = "postgresql" if backend == "postgres" else backend
    driver = ASYNC_DRIVERS.get(backend)
    if driver is None:
        raise StorageError(f"database {backend!r} is not supported: use sqlite or postgresql")
    return url.set(drivername=f"{backend}+{driver}")


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite ``url`` names; None when it is not a plain file: in memory
    (``:memory:``, no name) or a SQLite URI (``file:...``, as with ``mode=memory`` or a shared
    cache), which other connections, such as another thread's, may not reach the same way."""
    name = url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


class Database:
    """An async engine and its session factory. Create one per process; :meth:`close` it.

    ``connect_args`` are passed to the driver (e.g. asyncpg ``server_settings``).
    """

    def __init__(
        self,
        url: str,
        *,
        connect_args: Mapping[str, Any] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self.url = database_url(url)
        args: dict[str, Any] = {}
        kwargs: dict[str, Any] = {
            "hide_parameters": True,
            # JSON columns (audit details, role rules, scopes) through orjson: the audit
            # writer stores one per record, and the json module is its costliest step
            "json_serializer": _json_text,
            "json_deserializer": orjson.loads,
        }
        if self.dialect == "sqlite":
            args["timeout"] = SQLITE_BUSY_TIMEOUT_MS / 1000
            if self._sqlite_file() is None:
                # one in-memory database shared by every session
                kwargs["poolclass"] = StaticPool
                args["check_same_thread"] = False
        else:
            args["timeout"] = connect_timeout
        args.update(connect_args or {})
        self._make_folder()
        self.engine: AsyncEngine = create_async_engine(self.url, connect_args=args, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "do_connect", _sqlite_do_connect)
            event.listen(self.engine.sync_engine, "connect", _sqlite_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.get_backend_name()

    @property
    def redacted_url(self) -> str:
        """The URL with its password hidden: the only form of it that may be shown or logged."""
        return self.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Database({self.redacted_url!r})"

    def _sqlite_file(self) -> Path | None:
        return sqlite_file(self.url)

    def _make_folder(self) -> None:
        path = self._sqlite_file() if self.dialect == "sqlite" else None
        if path is None:
            return
        try:
            if not path.parent.exists():
                # it holds key hashes, sealed secrets and the audit trail: the owner's only
                path.parent.mkdir(mode=0o700, parents=True)
        except OSError as error:
            raise StorageError(
                f"cannot create the folder of the SQLite database {path}: {error.strerror}"
            ) from error

    @asynccontextmanager
    async def session(self, *, write: bool = False) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends, rolled back if it
        raises. Objects stay readable after the commit (``expire_on_commit=False``).

        Pass ``write`` when the transaction writes: on SQLite it then takes the write lock at
        once (``BEGIN IMMEDIATE``, waiting up to the busy timeout), so reading before writing
        cannot fail with "database is locked" when another writer got in between.
        """
        async with self._sessions() as session:
            try:
                await session.connection(execution_options=_write_options(write))
            except (exc.SQLAlchemyError, OSError) as error:
                raise self._unreachable(error) from error
            try:
                yield session
                await session.commit()
            except CatalystError:
                raise
            except exc.SQLAlchemyError as error:
                raise self._failed(error) from error

    @asynccontextmanager
    async def begin(
        self, *, write: bool = False, foreign_keys: bool = True
    ) -> AsyncIterator[AsyncConnection]:
        """A connection in one transaction (as ``engine.begin()``), with failures mapped to
        :class:`StorageError`; ``write`` as for :meth:`session`. Migrations run on it through
        ``run_sync``.

        ``foreign_keys=False`` (SQLite; migrations): the connection runs the transaction with
        ``PRAGMA foreign_keys=OFF``, set before it begins (SQLite ignores it inside one), and
        ``ON`` again once it ended. A table a migration recreates (Alembic's batch mode) is
        then not emptied of its references by ``ON DELETE CASCADE``; check them with ``PRAGMA
        foreign_key_check`` before the block ends.
        """
        relaxed = not foreign_keys and self.dialect == "sqlite"
        try:
            conn = await self.engine.connect()
        except (exc.SQLAlchemyError, OSError) as error:
            raise self._unreachable(error) from error
        try:
            if write:
                await conn.execution_options(**_write_options(write))
            if relaxed:
                await _sqlite_pragma(conn, "PRAGMA foreign_keys=OFF")
        except (exc.SQLAlchemyError, OSError, sqlite3.Error) as error:
            await conn.close()
            raise self._unreachable(error) from error
        try:
            async with conn.begin():
                yield conn
        except CatalystError:
            raise
        except exc.SQLAlchemyError as error:
            raise self._failed(error) from error
        finally:
            if relaxed:
                await _restore_foreign_keys(conn)
            await conn.close()

    async def ping(self) -> None:
        """Check that the database answers; StorageError (naming it) if it does not."""
        async with self.begin() as conn:
            await conn.execute(text("SELECT 1"))

    def insert(self, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
        """An INSERT of this dialect, which offers ``on_conflict_do_update`` (an upsert)."""
        if self.dialect == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    @property
    def location(self) -> str:
        """The database in words, for messages: ``db on host:port`` or the SQLite file."""
        if self.dialect == "sqlite":
            path = self._sqlite_file()
            return f"the SQLite database {path}" if path else "the in-memory SQLite database"
        host = self.url.host or "localhost"
        port = self.url.port or 5432
        return f"the PostgreSQL database {self.url.database or '(default)'} on {host}:{port}"

    def _unreachable(self, error: BaseException) -> StorageError:
        reason = _reason(error)
        log.debug("cannot connect to %s: %s", self.redacted_url, reason)
        return StorageError(f"cannot connect to {self.location}: {reason}")

    def _failed(self, error: exc.SQLAlchemyError) -> StorageError:
        reason = _reason(error)
        log.debug("database error on %s: %s", self.redacted_url, reason)
        return StorageError(f"a statement on {self.location} failed: {reason}")


def _reason(error: BaseException) -> str:
    """A short, safe reason: the kind of failure. PostgreSQL's texts are never used (they may
    quote values); SQLite's are (they name tables and constraints, never a bound value)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 8:
        chain.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    for item in reversed(chain):
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, TimeoutError):
            return "timed out"
        if isinstance(item, socket.gaierror):
            return "unknown host"
        if isinstance(item, OSError):
            return f"network error ({type(item).__name__})"
        if isinstance(item, sqlite3.Error):
            return str(item)  # SQLite's messages name no bound value
        reason = _PG_REASONS.get(type(item).__name__)
        if reason:
            return reason
    return type(chain[-1]).__name__


def _sqlite_do_connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
    cparams["async_creator_fn"] = _open_aiosqlite  # SQLAlchemy then connects through it


async def _open_aiosqlite(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
    """``aiosqlite.connect``, but a failed open waits for the connection's worker thread.

    aiosqlite stops that thread without waiting for it; if the event loop closed before the
    thread finished (a CLI command that failed at once), the thread would call back into the
    closed loop and die with a traceback.
    """
    connection = aiosqlite.connect(*args, **kwargs)
    # aiosqlite 0.22 keeps its thread in _thread; older versions are the thread
    worker = connection if isinstance(connection, threading.Thread) else connection._thread
    worker.daemon = True  # never keeps the process alive (as SQLAlchemy sets it)
    try:
        return await connection
    except Exception:
        await asyncio.to_thread(worker.join, 5.0)
        raise


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    # The driver must not BEGIN on its own (it would not for DDL): _sqlite_begin does.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit is synced, so an admin write (a key revoked, a user disabled) survives
    # a power loss too. Only the audit writer's own connections run with NORMAL (see
    # observability/audit.py), where an fsync per batch is the costliest step.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


async def _sqlite_pragma(conn: AsyncConnection, pragma: str) -> None:
    """Run ``pragma`` on the driver's connection itself: through SQLAlchemy, the statement
    would first begin a transaction (see :func:`_sqlite_begin`)."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if not isinstance(driver, aiosqlite.Connection):
        raise TypeError("not an aiosqlite connection")
    cursor = await driver.execute(pragma)
    await cursor.close()


async def _restore_foreign_keys(conn: AsyncConnection) -> None:
    """``PRAGMA foreign_keys=ON`` again on a connection going back to the pool; if that fails,
    the connection is discarded rather than reused without foreign keys."""
    try:
        await _sqlite_pragma(conn, "PRAGMA foreign_keys=ON")
    except (exc.SQLAlchemyError, OSError, sqlite3.Error) as error:
        log.debug("discarding a connection whose foreign keys could not be restored: %s", error)
        await conn.invalidate()


def _write_options(write: bool) -> dict[str, Any]:
    return {_WRITE_OPTION: True} if write else {}


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
