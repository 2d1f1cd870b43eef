"""ASGI helpers shared by the HTTP transports: the Origin/Host policy, body reading, and
responses that turn into an event stream on demand."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest

from catalyst_mcp.settings import GatewaySettings
from catalyst_mcp.transports.asgi import (
    BodyTooLarge,
    ClientGone,
    EventStream,
    OriginPolicy,
    read_body,
)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        (b"http://localhost:3000", True),
        (b"https://127.0.0.1", True),
        (b"http://[::1]:8080/", True),
        (b"https://app.example.com", True),
        (b"https://app.example.com/", True),
        (b"http://app.example.com", False),
        (b"null", False),
        (b"http://evil.example", False),
        (b"http://localhost.evil.example", False),
        (b"http://[::1", False),
    ],
)
def test_origin_policy(origin: bytes | None, allowed: bool) -> None:
    policy = OriginPolicy(["https://app.example.com/"])
    assert policy.allows(origin) is allowed
    assert policy.allows(origin) is allowed  # cached answers agree


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        (None, True),
        (b"127.0.0.1:8765", True),
        (b"localhost", True),
        (b"LOCALHOST:1", True),
        (b"[::1]:9", True),
        (b"mcp.example.com", True),
        (b"MCP.example.com:443", True),
        (b"evil.example", False),
        (b"127.0.0.1.evil.example", False),
        (b"[::1", False),
    ],
)
def test_host_policy_when_bound_to_loopback(host: bytes | None, allowed: bool) -> None:
    settings = GatewaySettings(allowed_hosts=["mcp.example.com"])
    policy = OriginPolicy.for_settings(settings)
    assert policy.allows(None, host) is allowed
    refusal = policy.refusal(None, host)
    assert (refusal is None) is allowed
    if not allowed:
        assert refusal == "Forbidden: Host not allowed"


def test_host_is_not_checked_on_a_public_bind_without_a_list() -> None:
    settings = GatewaySettings(host="0.0.0.0", allow_non_loopback=True)
    assert OriginPolicy.for_settings(settings).allows(None, b"anything.example")
    listed = GatewaySettings(host="0.0.0.0", allow_non_loopback=True, allowed_hosts=["a.example"])
    assert not OriginPolicy.for_settings(listed).allows(None, b"anything.example")


def test_on_a_unix_socket_the_host_is_not_checked_but_the_origin_is() -> None:
    settings = GatewaySettings(uds="/run/catalyst.sock")
    policy = OriginPolicy.for_settings(settings)
    assert policy.allows(None, b"mcp.example.com")  # what a proxy in front sends
    assert not policy.allows(b"https://evil.example", b"localhost")
    listed = GatewaySettings(uds="/run/catalyst.sock", allowed_hosts=["a.example"])
    assert not OriginPolicy.for_settings(listed).allows(None, b"anything.example")


def test_origin_is_checked_before_host() -> None:
    policy = OriginPolicy([], check_host=True)
    assert (
        policy.refusal(b"http://evil.example", b"evil.example") == "Forbidden: Origin not allowed"
    )


def receiver(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


async def test_read_body_joins_chunks() -> None:
    receive = receiver(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"cd"},
    )
    assert await read_body(receive, 10, None) == b"abcd"


async def test_read_body_limits() -> None:
    with pytest.raises(BodyTooLarge):
        await read_body(receiver(), 10, b"11")  # refused before reading
    with pytest.raises(BodyTooLarge):
        await read_body(receiver({"type": "http.request", "body": b"x" * 11}), 10, None)
    chunks = [{"type": "http.request", "body": b"x" * 6, "more_body": True}] * 2
    with pytest.raises(BodyTooLarge):
        await read_body(receiver(*chunks), 10, None)
    assert (
        await read_body(receiver({"type": "http.request", "body": b"x" * 10}), 10, b"10")
        == b"x" * 10
    )
    assert await read_body(receiver({"type": "http.request", "body": b"ok"}), 10, b"junk") == b"ok"


async def test_read_body_client_gone() -> None:
    with pytest.raises(ClientGone):
        await read_body(receiver({"type": "http.disconnect"}), 10, None)
    first = {"type": "http.request", "body": b"a", "more_body": True}
    with pytest.raises(ClientGone):
        await read_body(receiver(first, {"type": "http.disconnect"}), 10, None)


class Sink:
    def __init__(self) -> None:
        self.messages: list[MutableMapping[str, Any]] = []

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        self.messages.append(message)


async def test_event_stream_stays_json_when_nothing_was_streamed() -> None:
    sink = Sink()
    stream = EventStream(sink, [(b"x-extra", b"1")])
    await stream.finish({"jsonrpc": "2.0", "id": 1, "result": {}}, 200)
    start, body = sink.messages
    assert start["status"] == 200
    assert (b"content-type", b"application/json") in start["headers"]
    assert (b"x-extra", b"1") in start["headers"]
    assert body["body"] == b'{"jsonrpc":"2.0","id":1,"result":{}}'
    await stream.finish(None)  # finishing twice sends nothing more
    assert len(sink.messages) == 2


async def test_event_stream_switches_to_sse_at_the_first_event() -> None:
    sink = Sink()
    stream = EventStream(sink)
    await stream.event({"jsonrpc": "2.0", "method": "notifications/progress"})
    await stream.raw(b": keep-alive\n\n")
    await stream.finish({"jsonrpc": "2.0", "id": 1, "result": {}})
    start = sink.messages[0]
    assert start["status"] == 200
    assert (b"content-type", b"text/event-stream") in start["headers"]
    bodies = [m["body"] for m in sink.messages[1:]]
    assert bodies == [
        b'data: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n',
        b": keep-alive\n\n",
        b'data: {"jsonrpc":"2.0","id":1,"result":{}}\n\n',
    ]
    assert [m.get("more_body", False) for m in sink.messages[1:]] == [True, True, False]
    await stream.event({"late": True})  # after the end: dropped
    assert len(sink.messages) == 4


async def test_event_stream_without_answer_is_202() -> None:
    sink = Sink()
    await EventStream(sink).finish(None)
    assert sink.messages[0]["status"] == 202
    assert sink.messages[1]["body"] == b""
