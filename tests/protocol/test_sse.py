"""Server-Sent Events encoder and incremental decoder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from catalyst_mcp.protocol.sse import SseDecoder, SseEvent, encode_event, iter_events


def feed_all(chunks: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events


def test_encode_event() -> None:
    assert encode_event(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert (
        encode_event(b"x", event="endpoint", event_id="7") == b"id: 7\nevent: endpoint\ndata: x\n\n"
    )


def test_round_trip() -> None:
    raw = encode_event(b'{"k":"v"}', event_id="1") + encode_event(b"[]", event="other")
    events = SseDecoder().feed(raw)
    assert [(e.event, e.data, e.id) for e in events] == [
        ("message", '{"k":"v"}', "1"),
        ("other", "[]", None),
    ]


STREAM = (
    b'event: message\ndata: {"a": 1}\n\n: keep-alive\n\nid: 9\ndata: line one\ndata: line two\n\n'
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_split_anywhere_gives_the_same_events(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    events = feed_all(chunks)
    assert [(e.event, e.data, e.id) for e in events] == [
        ("message", '{"a": 1}', None),
        ("message", "line one\nline two", "9"),
    ]


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_every_line_ending(newline: bytes) -> None:
    text = STREAM.replace(b"\n", newline) + b": next\n"  # more bytes follow the last event
    for size in (1, 2, len(text)):
        events = feed_all([text[i : i + size] for i in range(0, len(text), size)])
        assert [e.data for e in events] == ['{"a": 1}', "line one\nline two"], (newline, size)


def test_event_ending_in_bare_cr_is_dispatched_at_once() -> None:
    assert [e.data for e in SseDecoder().feed(b"data: x\r\r")] == ["x"]


def test_crlf_split_between_cr_and_lf() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: x\r") == []
    # the LF completing the first CRLF is dropped; the bare CR ends the event at once
    assert [e.data for e in decoder.feed(b"\n\r")] == ["x"]
    events = decoder.feed(b"\ndata: y\r\n\r\n")
    assert [e.data for e in events] == ["y"]


def test_comments_and_unknown_fields_are_ignored() -> None:
    events = SseDecoder().feed(b": comment\nfoo: bar\ndata: d\n:another\n\n")
    assert [e.data for e in events] == ["d"]


def test_field_without_space_and_without_colon() -> None:
    events = SseDecoder().feed(b"data:nospace\ndata\ndata:  two spaces\n\n")
    assert events[0].data == "nospace\n\n two spaces"


def test_retry_and_empty_event_name() -> None:
    events = SseDecoder().feed(b"retry: 1500\nevent:\ndata: d\n\nretry: soon\ndata: e\n\n")
    assert (events[0].retry, events[0].event) == (1500, "message")
    assert events[1].retry is None


def test_blank_lines_alone_dispatch_nothing() -> None:
    assert SseDecoder().feed(b"\n\n\n\r\n") == []


def test_priming_event_with_id_and_no_data() -> None:
    events = SseDecoder().feed(b"id: prime-1\ndata:\n\n")
    assert len(events) == 1
    assert (events[0].id, events[0].data) == ("prime-1", "")


def test_incomplete_event_waits_for_the_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: partial\n") == []
    assert [e.data for e in decoder.feed(b"\n")] == ["partial"]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    events = SseDecoder().feed(b"data: \xff\xfe\n\n")
    assert events[0].data == "\ufffd\ufffd"


async def test_iter_events() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"data: a\n", b"\ndata: ", b"b\n\n"):
            yield part

    assert [e.data async for e in iter_events(chunks())] == ["a", "b"]
