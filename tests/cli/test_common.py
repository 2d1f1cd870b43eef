"""Shared CLI pieces: error mapping to exit codes, tables, logging."""

from __future__ import annotations

import logging

import click
import pytest

from catalyst_mcp.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    CliError,
    cli_logging,
    print_table,
    run_async,
    truncate,
)
from catalyst_mcp.errors import (
    CatalystError,
    ConfigError,
    ConfigProblem,
    NotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)


async def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (NotFound("Unknown tool: x"), EXIT_FAILED, "Unknown tool: x (JSON-RPC error -32602)"),
        (
            UpstreamRejected("s", {"code": -32000, "message": "nope"}),
            EXIT_FAILED,
            "nope (JSON-RPC error -32000)",
        ),
        (UpstreamUnavailable("s", "s is down"), EXIT_FAILED, "s is down"),
        (
            ConfigError([ConfigProblem("f.yaml", 3, "bad")]),
            EXIT_CONFIG,
            "invalid configuration:\nf.yaml:3: bad",
        ),
        (RuntimeError("boom"), EXIT_FAILED, "internal error: RuntimeError: boom"),
        (CliError("as is", 4), 4, "as is"),
    ],
    ids=["not-found", "rejected", "unavailable", "config", "unexpected", "cli-error"],
)
def test_run_async_maps_errors_to_exit_codes(exc: Exception, code: int, message: str) -> None:
    with pytest.raises(CliError) as caught:
        run_async(_raise(exc))
    assert caught.value.exit_code == code
    assert caught.value.format_message() == message


def test_run_async_lets_usage_errors_through() -> None:
    with pytest.raises(click.UsageError):
        run_async(_raise(click.UsageError("bad")))


def test_run_async_returns_the_result() -> None:
    async def answer() -> int:
        return 42

    assert run_async(answer()) == 42


def test_catalyst_errors_are_a_family() -> None:
    assert issubclass(UpstreamUnavailable, CatalystError)


def test_cli_logging_is_silent_unless_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("catalyst.test")
    before = list(logging.getLogger("catalyst").handlers)
    with cli_logging(verbose=False):
        log.warning("quiet please")
    with cli_logging(verbose=True):
        log.info("loud info")
    assert logging.getLogger("catalyst").handlers == before
    err = capsys.readouterr().err
    assert "quiet please" not in err
    assert "loud info" in err


def test_print_table(capsys: pytest.CaptureFixture[str]) -> None:
    print_table([{"name": "a", "n": 1}, {"name": "long-name"}], ["name", "n"])
    assert capsys.readouterr().out == "NAME       N\na          1\nlong-name\n"
    print_table([], ["name"])
    assert capsys.readouterr().out == "(none)\n"


@pytest.mark.parametrize(
    ("text", "width", "out"),
    [("short", 10, "short"), ("exactly10!", 10, "exactly10!"), ("a" * 20, 10, "aaaaaaa...")],
)
def test_truncate(text: str, width: int, out: str) -> None:
    assert truncate(text, width) == out


def test_debug_logging_never_shows_database_parameters() -> None:
    import logging

    from catalyst_mcp.cli.common import QUIET_LOGGERS, setup_logging

    setup_logging("debug")
    for name in QUIET_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
