"""One log setup: JSON lines (or console lines), every logger routed through it, and the fields
of the request being served on each line logged while it is."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext
from catalyst_mcp.observability.logs import QUIET_LOGGERS, setup_logging
from catalyst_mcp.settings import Settings
from tests.asgiclient import AsgiClient
from tests.fakes import FakeProvider, modern_headers, modern_request


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_json_lines_carry_the_request(restore_root: None) -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream)

    async def noisy(method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        logging.getLogger("catalyst.upstream").warning("upstream %s is slow", "fake")
        logging.getLogger("some.library").info("a library speaks")
        return {"content": []}

    settings = Settings.model_validate({"packs": {"path": None}, "audit": {"enabled": False}})
    gateway = Gateway(settings, [FakeProvider(handler=noisy)])
    await gateway.start()
    try:
        message = modern_request("tools/call", {"name": "fake__echo", "arguments": {}})
        await AsgiClient(gateway.asgi).post("/mcp", message, modern_headers(message))
        logging.getLogger("catalyst").info("after the request")
    finally:
        await gateway.stop()
    found = lines(stream)
    slow = next(line for line in found if line["event"] == "upstream fake is slow")
    assert slow["level"] == "warning" and slow["logger"] == "catalyst.upstream"
    assert slow["request_id"] == message["id"]
    assert slow["user"] == "anonymous"
    assert slow["method"] == "tools/call" and slow["tool"] == "fake__echo"
    assert slow["transport"] == "streamable-http"
    assert "timestamp" in slow and "trace_id" not in slow  # tracing is off
    library = next(line for line in found if line["event"] == "a library speaks")
    assert library["logger"] == "some.library" and library["tool"] == "fake__echo"
    after = next(line for line in found if line["event"] == "after the request")
    assert "request_id" not in after and "tool" not in after


def test_console_lines_for_people(restore_root: None) -> None:
    stream = io.StringIO()
    setup_logging("debug", "console", stream)
    logging.getLogger("catalyst.test").info("hello %s", "there")
    text = stream.getvalue()
    assert "hello there" in text and "catalyst.test" in text and "info" in text
    assert not text.lstrip().startswith("{")


def test_auto_is_json_when_not_a_terminal_and_setup_twice_keeps_one_handler(
    restore_root: None,
) -> None:
    stream = io.StringIO()
    setup_logging("info", "auto", stream)
    setup_logging("info", "auto", stream)
    logging.getLogger("catalyst.test").info("once")
    assert [line["event"] for line in lines(stream)] == ["once"]


def test_errors_keep_their_traceback_in_one_json_line(restore_root: None) -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("catalyst").exception("it failed")
    (line,) = lines(stream)
    assert line["event"] == "it failed" and "ValueError: broken" in line["exception"]


def test_database_parameters_stay_below_the_level(restore_root: None) -> None:
    setup_logging("debug", "json", io.StringIO())
    for name in QUIET_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
