"""The options of the built-in servers: one section per kind in a ``servers:`` entry.

A server entry names its built-in by the section it gives, in place of ``command`` or ``url``::

    servers:
      files:
        filesystem:
          roots: [~/notes, {path: ~/projects, writable: true}]
      shop:
        database:
          url: postgresql://app:${secret:SHOP_DB_PASSWORD}@db.internal/shop

Each section is a typed model here, so every option is documented, settable from the
environment by its path (``CATALYST_SERVERS__FILES__FILESYSTEM__MAX_READ_BYTES``) and shown by
``catalyst config show`` like any other setting. This module imports nothing of the gateway:
``settings.py`` builds on it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BUILTIN_KINDS",
    "DATABASE_BACKENDS",
    "DatabaseOptions",
    "FilesystemOptions",
    "RootConfig",
]

BUILTIN_KINDS = ("filesystem", "database")
"""The sections of a server entry that make it a built-in server (one kind per entry)."""

MIB = 1024 * 1024
DATABASE_BACKENDS = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
SECRET_PLACEHOLDER = re.compile(r"\$\{secret:[^}]*\}")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RootConfig(_Options):
    """One folder the filesystem server may reach (a plain string is its ``path``)."""

    path: str = Field(
        description="The folder, absolute or relative to the working directory; '~' is the "
        "home folder. Nothing outside it can be named, even through symlinks."
    )
    writable: bool = Field(
        False,
        description="Allow the write tools (write, edit, move, mkdir, and delete when "
        "allow_delete is on) in this root. Read-only otherwise.",
    )
    name: str | None = Field(
        None, description="A label for the root shown to clients (default: the folder's name)."
    )


class FilesystemOptions(_Options):
    """The built-in filesystem server (docs/servers.md#filesystem)."""

    roots: list[RootConfig] = Field(
        default_factory=list,
        description="The folders served: paths, or {path, writable, name} maps. At least one, "
        "unless client_roots is 'use'.",
    )
    client_roots: Literal["off", "narrow", "use"] = Field(
        "off",
        description="MCP roots sent by the client (asked with roots/list on each call when the "
        "client declares the roots capability): 'off' ignores them; 'narrow' limits the call "
        "to the client's roots that lie inside the configured ones; 'use' serves the client's "
        "roots as given, read-only (only for a gateway that runs for one local user: any "
        "client could name any folder of this machine).",
    )
    follow_symlinks: bool = Field(
        True,
        description="Follow symlinks whose target stays inside the same root (a symlink "
        "pointing outside is always refused). Off: every symlink in a path is refused.",
    )
    binary: Literal["blob", "refuse"] = Field(
        "blob",
        description="What reading a binary file gives: 'blob', its bytes as a base64 "
        "resource blob (with a note saying so); 'refuse', an error.",
    )
    allow_delete: bool = Field(
        False, description="Offer the delete tool (files and empty folders, writable roots only)."
    )
    max_read_bytes: int = Field(
        MIB,
        ge=1,
        description="Largest file read whole; a bigger file must be read in parts "
        "(offset and length) or searched.",
    )
    max_write_bytes: int = Field(
        MIB, ge=1, description="Largest content written by write or produced by edit."
    )
    max_list_entries: int = Field(
        1000, ge=1, description="Most entries one list call returns (the rest are counted)."
    )
    search_max_files: int = Field(
        10_000, ge=1, description="Most files one search call looks at before it stops."
    )
    search_max_matches: int = Field(
        200, ge=1, description="Most matches one search call returns before it stops."
    )
    search_max_file_bytes: int = Field(
        4 * MIB,
        ge=1,
        description="Content search skips files larger than this (they are counted as skipped).",
    )
    search_timeout_seconds: float = Field(
        10.0, gt=0, description="A search stops after this long and returns what it found."
    )

    @field_validator("roots", mode="before")
    @classmethod
    def _plain_paths(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _some_root(self) -> FilesystemOptions:
        if not self.roots and self.client_roots != "use":
            raise ValueError(
                "filesystem: give at least one folder in 'roots' (or client_roots: use)"
            )
        return self


class DatabaseOptions(_Options):
    """The built-in database server (docs/servers.md#database)."""

    url: str = Field(
        description="SQLAlchemy URL of the database: sqlite:///file.db, "
        "postgresql://user@host/db, mysql://user@host/db or mariadb://... (the async driver "
        "is chosen for you). ${secret:NAME} in it is filled in per caller from the secrets "
        "store (their own value, else the shared one).",
        repr=False,
    )
    allow_writes: bool = Field(
        False,
        description="Offer the execute tool, which runs one writing statement (INSERT, "
        "UPDATE, DELETE, DDL) in a read-write transaction. Off: every statement runs in a "
        "read-only transaction the database enforces.",
    )
    max_rows: int = Field(
        500, ge=1, description="Most rows a query or sample returns (truncated is then true)."
    )
    max_result_bytes: int = Field(
        MIB,
        ge=1024,
        description="Largest result, as JSON: rows beyond it are dropped (truncated is true).",
    )
    max_value_chars: int = Field(
        10_000, ge=16, description="Longer text values (and encoded binary) are cut to this."
    )
    timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Statement time limit, enforced by the database where it can "
        "(PostgreSQL statement_timeout, MariaDB max_statement_time, MySQL "
        "max_execution_time, SQLite interrupt) and by the client otherwise.",
    )
    pool_size: int = Field(5, ge=1, description="Connections kept open per set of credentials.")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:  # (the value is never shown: it may carry a password)
            url = make_url(SECRET_PLACEHOLDER.sub("secret", value))
        except ArgumentError:
            raise ValueError(
                "not a valid SQLAlchemy URL (dialect://user@host/database, sqlite:///file.db)"
            ) from None
        if url.get_backend_name() not in DATABASE_BACKENDS:
            raise ValueError(
                f"database {url.get_backend_name()!r} is not supported: use sqlite, postgresql, "
                "mysql or mariadb"
            )
        return value
