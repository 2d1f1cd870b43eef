"""The conformance fixture's shared builders: results, input requests, notifications, and the
MRTR (SEP-2322) helpers every client-input tool and prompt uses (the client's answers, the
signed ``requestState``, the capability check).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import InvalidParams, MissingCapability

PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
STEP_SECONDS = 0.05  # pause between the progress / log notifications of one call
Json = dict[str, Any]

# ---- small builders -------------------------------------------------------------------------


def text(value: str) -> Json:
    return {"content": [{"type": "text", "text": value}]}


def empty_schema() -> Json:
    return {"type": "object", "properties": {}}


def object_schema(properties: Json, required: list[str] | None = None) -> Json:
    return {"type": "object", "properties": properties, "required": required or []}


def elicit(message: str, schema: Json) -> Json:
    return {
        "method": "elicitation/create",
        "params": {"message": message, "requestedSchema": schema},
    }


def sample(prompt: str, max_tokens: int) -> Json:
    message = {"role": "user", "content": {"type": "text", "text": prompt}}
    return {
        "method": "sampling/createMessage",
        "params": {"messages": [message], "maxTokens": max_tokens},
    }


def list_roots() -> Json:
    return {"method": "roots/list", "params": {}}


def input_required(requests: Json, state: str | None = None) -> Json:
    result: Json = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        result["requestState"] = state
    return result


def progress(token: str | int, value: int, total: int, message: str) -> Json:
    params = {"progressToken": token, "progress": value, "total": total, "message": message}
    return {"jsonrpc": "2.0", "method": "notifications/progress", "params": params}


def log_message(level: str, data: str) -> Json:
    params = {"level": level, "logger": "conformance-fixture", "data": data}
    return {"jsonrpc": "2.0", "method": "notifications/message", "params": params}


NAME_SCHEMA = object_schema({"name": {"type": "string"}}, ["name"])
ASK_NAME = elicit("What is your name?", NAME_SCHEMA)


# ---- MRTR: the client's answers and our signed state ----------------------------------------


def input_responses(params: Json) -> Json:
    """The retry's ``inputResponses`` (empty on the first round); malformed ones are an error."""
    if "inputResponses" not in params:
        return {}
    responses = params["inputResponses"]
    if not isinstance(responses, dict):
        raise InvalidParams("inputResponses must be an object")
    for key, value in responses.items():
        if not isinstance(value, dict):
            raise InvalidParams(f"inputResponses.{key} must be an object (the client's result)")
    return responses


def accepted(response: Json | None) -> Json | None:
    """The ``content`` of an accepted elicitation, else None."""
    if response is None or response.get("action") != "accept":
        return None
    content = response.get("content")
    return content if isinstance(content, dict) else {}


def sampled_text(response: Json) -> str:
    content = response.get("content")
    if isinstance(content, list):  # sampling results may carry several blocks
        content = next((c for c in content if isinstance(c, dict)), None)
    return str(content.get("text", "")) if isinstance(content, dict) else ""


def describe_elicitation(response: Json) -> str:
    return f"action={response.get('action')}, content={json.dumps(response.get('content'))}"


class StateSigner:
    """``requestState`` the client cannot forge: a JSON payload plus its HMAC-SHA256."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def sign(self, payload: Json) -> str:
        data = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
        return f"{data}.{self._mac(data)}"

    def verify(self, state: Any) -> Json:
        """The payload of a state we issued; -32602 for anything else."""
        if not isinstance(state, str):
            raise InvalidParams("requestState must be a string")
        data, _, mac = state.rpartition(".")
        if not data or not hmac.compare_digest(mac.encode(), self._mac(data).encode()):
            raise InvalidParams("requestState integrity check failed")
        payload = json.loads(base64.urlsafe_b64decode(data))
        if not isinstance(payload, dict):
            raise InvalidParams("requestState integrity check failed")
        return payload

    def _mac(self, data: str) -> str:
        return hmac.new(self._key, data.encode(), hashlib.sha256).hexdigest()


def need(ctx: CallContext, *capabilities: str) -> None:
    """Refuse (-32021) when the client did not declare a capability the tool needs."""
    missing = [c for c in capabilities if not ctx.can(c)]
    if missing:
        raise MissingCapability(
            "Missing required client capability",
            data={"requiredCapabilities": {c: {} for c in missing}},
        )
