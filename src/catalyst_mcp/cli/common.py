"""What every CLI command shares: finding the config, output format, errors and exit codes.

Exit codes (one place, documented in docs/cli.md):

====  ==========================================================
0     success
1     the operation failed (a server is down, a tool call errored)
2     usage error (bad option or argument; click's own code)
3     configuration error (the config file is invalid)
4     could not connect to the server or gateway
====  ==========================================================
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from catalyst_mcp.errors import ConfigError
from catalyst_mcp.settings import Settings, load_settings

__all__ = [
    "EXIT_CONFIG",
    "EXIT_CONNECT",
    "EXIT_FAILED",
    "CliError",
    "find_config",
    "load_config",
    "print_json",
    "print_table",
    "setup_logging",
]

EXIT_FAILED = 1
EXIT_CONFIG = 3
EXIT_CONNECT = 4
DEFAULT_CONFIG = "catalyst.yaml"


class CliError(click.ClickException):
    """A failure shown as one clear line on stderr, with a meaningful exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        vars(self)["exit_code"] = exit_code  # click reads it to pick the process exit status

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def find_config(path: Path | None) -> Path | None:
    """The config file to use: the option, then $CATALYST_CONFIG, then ./catalyst.yaml."""
    if path is not None:
        return path
    env = os.environ.get("CATALYST_CONFIG")
    if env:
        return Path(env)
    default = Path(DEFAULT_CONFIG)
    return default if default.exists() else None


def load_config(path: Path | None) -> Settings:
    try:
        return load_settings(find_config(path))
    except ConfigError as exc:
        raise CliError(f"invalid configuration:\n{exc}", EXIT_CONFIG) from exc


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table (no colours: output is often piped)."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
