"""JSON-RPC 2.0 framing: decode, validate, builders."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.errors import InvalidRequest, ParseError
from catalyst_mcp.protocol import jsonrpc
from catalyst_mcp.protocol.jsonrpc import (
    decode,
    error_response,
    is_notification,
    is_request,
    is_response,
    notification,
    request,
    result_response,
    validate,
)


def test_decode_parses_bytes_and_text() -> None:
    assert decode(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert decode('"x"') == "x"


@pytest.mark.parametrize("body", [b"", b"{", b"nul", b"\xff", b'{"a":1}x', b"NaN"])
def test_decode_maps_failures_to_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        decode(body)
    assert caught.value.code == -32700
    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": "abc", "method": "tools/list", "params": {}},
        {"jsonrpc": "2.0", "id": 0, "method": "x", "params": None},
        {"jsonrpc": "2.0", "id": -5, "method": "x"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "id": "x", "result": []},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "m"}},
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "m"}},
    ],
)
def test_validate_accepts_and_returns_the_same_object(message: dict[str, Any]) -> None:
    assert validate(message) is message


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ([], "JSON object"),
        ("x", "JSON object"),
        (None, "JSON object"),
        ({}, '"jsonrpc"'),
        ({"jsonrpc": "2", "method": "x"}, '"jsonrpc"'),
        ({"jsonrpc": "2.0", "method": None}, '"method"'),
        ({"jsonrpc": "2.0", "method": ""}, '"method"'),
        ({"jsonrpc": "2.0", "method": ["x"]}, '"method"'),
        ({"jsonrpc": "2.0", "method": "x", "id": False}, '"id"'),
        ({"jsonrpc": "2.0", "method": "x", "id": 2.5}, '"id"'),
        ({"jsonrpc": "2.0", "method": "x", "id": None}, '"id"'),
        ({"jsonrpc": "2.0", "method": "x", "params": [1]}, '"params"'),
        ({"jsonrpc": "2.0", "method": "x", "params": 3}, '"params"'),
        ({"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}}, "not both"),
        ({"jsonrpc": "2.0", "id": 1, "error": 5}, '"error"'),
        ({"jsonrpc": "2.0", "id": 1}, '"method"'),
        ({"jsonrpc": "2.0", "result": {}}, '"method"'),
    ],
)
def test_validate_names_the_first_problem(message: Any, words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(message)
    assert caught.value.code == -32600
    assert words in caught.value.message


def test_kind_predicates() -> None:
    req = request(1, "tools/list")
    note = notification("notifications/initialized")
    resp = result_response(1, {})
    assert (is_request(req), is_notification(req), is_response(req)) == (True, False, False)
    assert (is_request(note), is_notification(note), is_response(note)) == (False, True, False)
    assert (is_request(resp), is_notification(resp), is_response(resp)) == (False, False, True)


def test_builders() -> None:
    assert request("a", "m") == {"jsonrpc": "2.0", "id": "a", "method": "m"}
    assert request(2, "m", {"x": 1})["params"] == {"x": 1}
    assert notification("n") == {"jsonrpc": "2.0", "method": "n"}
    assert notification("n", {})["params"] == {}
    assert result_response(None, {"k": 1}) == {"jsonrpc": "2.0", "id": None, "result": {"k": 1}}
    assert error_response(3, InvalidRequest("bad", data={"d": 1})) == {
        "jsonrpc": "2.0",
        "id": 3,
        "error": {"code": -32600, "message": "bad", "data": {"d": 1}},
    }
    raw = {"code": -1, "message": "m"}
    assert error_response(4, raw)["error"] is raw


def test_dumps_is_compact_bytes() -> None:
    assert jsonrpc.dumps({"a": 1}) == b'{"a":1}'
