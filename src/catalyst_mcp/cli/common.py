"""What every CLI command shares: finding the config, output format, errors and exit codes.

Exit codes (one place; docs/cli.md lists them per command):

====  ==========================================================================================
0     success
1     the operation failed: a server is down or not ready, a tool call returned ``isError``,
      a server answered with a JSON-RPC error, a file exists and ``--force`` was not given
2     usage error: a bad option or argument (click's own code), e.g. ``--args`` that is not JSON
3     configuration error: the config file (or a file to import) is invalid
4     could not connect: the server or gateway is unreachable, or the MCP handshake failed;
      a package registry (the MCP Registry, npm, PyPI) is unreachable
====  ==========================================================================================

Errors are raised as :class:`CliError` with one of these codes and shown as one ``error:`` line
on stderr (never a stack trace). Catalyst errors from the layers below are mapped by
:func:`run_async`. Tables go to stdout for people; ``--json`` gives scripts the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from catalyst_mcp.errors import (
    CatalystError,
    ConfigError,
    ProtocolError,
    RegistryUnreachable,
    UpstreamRejected,
)
from catalyst_mcp.observability.logs import QUIET_LOGGERS
from catalyst_mcp.settings import Settings, load_settings

__all__ = [
    "EXIT_CONFIG",
    "EXIT_CONNECT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "QUIET_LOGGERS",
    "CliError",
    "cli_logging",
    "config_option",
    "describe_error",
    "find_config",
    "json_option",
    "load_config",
    "print_json",
    "print_table",
    "run_async",
    "setup_logging",
    "truncate",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_CONNECT = 4
DEFAULT_CONFIG = "catalyst.yaml"

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


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


def config_option(func: F) -> F:
    """``--config PATH``, passed to the command as ``config_path``."""
    option = click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="catalyst.yaml to use (default: $CATALYST_CONFIG, else ./catalyst.yaml if present).",
    )
    return option(func)


def json_option(func: F) -> F:
    """``--json``, passed to the command as ``json_output``."""
    option = click.option(
        "--json", "json_output", is_flag=True, help="Print JSON for scripts instead of a table."
    )
    return option(func)


def setup_logging(level: str, fmt: str = "auto") -> None:
    """The gateway's log on stderr (structlog: console lines on a terminal, else JSON lines;
    ``fmt`` as ``log.format``); libraries in :data:`QUIET_LOGGERS` never below INFO."""
    from catalyst_mcp.observability.logs import setup_logging as setup

    setup(level, fmt)


@contextlib.contextmanager
def cli_logging(verbose: bool) -> Iterator[None]:
    """While a command runs, show the gateway's log on stderr (``verbose``) or nothing at all.

    Without this, Python's last-resort handler would print warnings (and tracebacks of
    unexpected upstream failures) that the command already reports as one clear line.
    """
    logger = logging.getLogger("catalyst")
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)-7s %(name)s: %(message)s"))
    else:
        handler = logging.NullHandler()
    level = logger.level
    if verbose:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def describe_error(exc: CatalystError) -> str:
    """One line for a Catalyst error; JSON-RPC errors keep their code."""
    if isinstance(exc, UpstreamRejected | ProtocolError):
        return f"{exc.message} (JSON-RPC error {exc.code})"
    return exc.message


def run_async(main: Coroutine[Any, Any, T], *, verbose: bool = False) -> T:
    """Run a command's coroutine; Catalyst errors become :class:`CliError` (exit 1).

    Anything unexpected is reported as one line too: a user never sees a stack trace (run with
    ``--verbose`` to see the log of what happened).
    """
    with cli_logging(verbose):
        try:
            return asyncio.run(main)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ConfigError as exc:
            raise CliError(f"invalid configuration:\n{exc}", EXIT_CONFIG) from exc
        except RegistryUnreachable as exc:
            raise CliError(describe_error(exc), EXIT_CONNECT) from exc
        except CatalystError as exc:
            raise CliError(describe_error(exc)) from exc
        except Exception as exc:
            logging.getLogger("catalyst.cli").warning("unexpected failure", exc_info=True)
            raise CliError(f"internal error: {type(exc).__name__}: {exc}") from exc


def print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in ``...`` when cut."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 3)].rstrip() + "..."


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
