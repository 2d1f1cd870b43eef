"""``catalyst run-server KIND``: one built-in server over stdio, for desktop clients.

The server runs in a :class:`~catalyst_mcp.app.Gateway` that serves only it (no config file, no
packs, no audit, no database), through the same stdio transport as ``catalyst serve --stdio``:
the tools are the same code the gateway serves, named without a namespace prefix. Logs go to
stderr; stdout carries protocol messages only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from catalyst_mcp.cli.common import EXIT_CONFIG, CliError, setup_logging
from catalyst_mcp.settings import Settings

__all__ = ["run_server", "standalone_settings"]

log = logging.getLogger("catalyst")


def standalone_settings(kind: str, options: dict[str, Any], *, log_level: str) -> Settings:
    """Settings that serve one built-in server of ``kind`` (unprefixed) and nothing else."""
    try:
        return Settings.model_validate(
            {
                "gateway": {"log_level": log_level, "watch_config": False},
                "servers": {kind: {kind: options, "namespace": ""}},
                "packs": {"path": None},
                "audit": {"enabled": False},
            },
            context={"environ": os.environ},  # ${NAME} in values reads the environment
        )
    except ValidationError as exc:
        reasons = "; ".join(
            ".".join(str(p) for p in e["loc"][3:]) + ": " + e["msg"].removeprefix("Value error, ")
            if len(e["loc"]) > 3
            else e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise CliError(f"cannot run the {kind} server: {reasons}", EXIT_CONFIG) from exc


def _serve(settings: Settings) -> None:
    from catalyst_mcp.cli.serve import _run
    from catalyst_mcp.transports.stdio import serve_stdio

    setup_logging(settings.gateway.log_level)
    _run(serve_stdio(settings))


@click.group("run-server")
def run_server() -> None:
    """Run one built-in server over stdin/stdout (for desktop MCP clients).

    \b
    Examples (a desktop client's mcpServers entry runs the same command):
      catalyst run-server filesystem --root ~/notes --root ~/projects --writable
      catalyst run-server database --url sqlite:///shop.db
    """


log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Log level on stderr.",
)


@run_server.command("filesystem")
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder to serve (repeatable). Nothing outside the roots can be reached.",
)
@click.option("--writable", is_flag=True, help="Allow writes (write, edit, move, mkdir).")
@click.option("--allow-delete", is_flag=True, help="Also offer delete (with --writable).")
@click.option(
    "--client-roots",
    type=click.Choice(["off", "narrow", "use"]),
    default="off",
    show_default=True,
    help="Use the MCP roots the client sends: narrow the --root folders to them, or use "
    "them as they are (read-only; then --root may be left out).",
)
@click.option("--max-read-bytes", type=int, help="Largest file read whole (default 1 MiB).")
@log_level_option
def filesystem(
    roots: tuple[Path, ...],
    writable: bool,
    allow_delete: bool,
    client_roots: str,
    max_read_bytes: int | None,
    log_level: str,
) -> None:
    """Serve folders of this machine: read, list, search, stat; write with --writable."""
    if allow_delete and not writable:
        raise click.UsageError("--allow-delete needs --writable")
    missing = [str(root) for root in roots if not root.expanduser().is_dir()]
    if missing:
        raise CliError(f"not a folder: {', '.join(missing)}", EXIT_CONFIG)
    options: dict[str, Any] = {
        "roots": [{"path": str(root), "writable": writable} for root in roots],
        "allow_delete": allow_delete,
        "client_roots": client_roots,
    }
    if max_read_bytes is not None:
        options["max_read_bytes"] = max_read_bytes
    _serve(standalone_settings("filesystem", options, log_level=log_level))


@run_server.command("database")
@click.option(
    "--url",
    required=True,
    help="SQLAlchemy URL: sqlite:///file.db, postgresql://user@host/db, mysql://... or "
    "mariadb://... ('${NAME}' reads the environment variable NAME: keep passwords out of "
    "the command line).",
)
@click.option("--allow-writes", is_flag=True, help="Offer the execute tool (writes).")
@click.option("--max-rows", type=int, help="Most rows a query returns (default 500).")
@click.option("--timeout", type=float, help="Statement time limit in seconds (default 10).")
@log_level_option
def database(
    url: str, allow_writes: bool, max_rows: int | None, timeout: float | None, log_level: str
) -> None:
    """Serve a SQL database: schemas, tables, samples, read-only queries; writes if allowed."""
    options: dict[str, Any] = {"url": url, "allow_writes": allow_writes}
    if max_rows is not None:
        options["max_rows"] = max_rows
    if timeout is not None:
        options["timeout_seconds"] = timeout
    _serve(standalone_settings("database", options, log_level=log_level))
