"""JSON-RPC 2.0 framing: decode once, check the shape, build replies.

Messages stay plain ``dict`` objects from the wire to the upstream and back: the gateway checks
the envelope (this module) and the few fields it routes on, and relays the rest untouched.
"""

from __future__ import annotations

from typing import Any

import orjson

from catalyst_mcp.errors import CatalystError, InvalidRequest, ParseError

__all__ = [
    "Message",
    "RequestId",
    "decode",
    "dumps",
    "error_response",
    "is_notification",
    "is_request",
    "is_response",
    "notification",
    "request",
    "result_response",
    "validate",
]

Message = dict[str, Any]
RequestId = str | int

dumps = orjson.dumps


def decode(body: bytes | str) -> Any:
    """Parse a JSON body, mapping failures to :class:`ParseError`."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError("Parse error: the body is not valid JSON") from exc


def _valid_id(value: Any) -> bool:
    return (isinstance(value, (str, int))) and not isinstance(value, bool)


def validate(message: Any) -> Message:
    """Check a decoded value is one JSON-RPC 2.0 message; return it unchanged.

    Raises :class:`InvalidRequest` with a message naming the first thing wrong.
    """
    if not isinstance(message, dict):
        raise InvalidRequest("Invalid Request: a JSON-RPC message must be a JSON object")
    if message.get("jsonrpc") != "2.0":
        raise InvalidRequest('Invalid Request: "jsonrpc" must be "2.0"')
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            raise InvalidRequest('Invalid Request: "method" must be a non-empty string')
        if "id" in message and not _valid_id(message["id"]):
            raise InvalidRequest('Invalid Request: "id" must be a string or an integer')
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            raise InvalidRequest('Invalid Request: "params" must be an object')
        return message
    if "id" in message and ("result" in message or "error" in message):
        if "result" in message and "error" in message:
            raise InvalidRequest('Invalid Request: a response has "result" or "error", not both')
        if "error" in message and not isinstance(message["error"], dict):
            raise InvalidRequest('Invalid Request: "error" must be an object')
        return message
    raise InvalidRequest('Invalid Request: a message needs "method", or "id" with "result"/"error"')


def is_request(message: Message) -> bool:
    return "method" in message and "id" in message


def is_notification(message: Message) -> bool:
    return "method" in message and "id" not in message


def is_response(message: Message) -> bool:
    return "method" not in message


def request(request_id: RequestId, method: str, params: dict[str, Any] | None = None) -> Message:
    message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: dict[str, Any] | None = None) -> Message:
    message: Message = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def result_response(request_id: RequestId | None, result: dict[str, Any]) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_response(request_id: RequestId | None, error: CatalystError | dict[str, Any]) -> Message:
    body = error.to_jsonrpc() if isinstance(error, CatalystError) else error
    return {"jsonrpc": "2.0", "id": request_id, "error": body}
