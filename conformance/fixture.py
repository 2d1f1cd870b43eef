"""The official conformance suite's fixture server, written as a Catalyst :class:`Provider`.

``@modelcontextprotocol/conformance`` tests a server that offers a fixed set of tools, resources,
prompts and a completion (its "everything server"). This module is that set, written from the
suite's description (docs/conformance.md), on Catalyst's own provider interface.

It speaks the modern era (2026-07-28) only, as any provider does: tools that need the client
(sampling, elicitation, roots) return an ``InputRequiredResult`` (SEP-2322, "MRTR") and finish
when the client retries with ``inputResponses``. A legacy (2025-11-25) client reaches the same
tools through the gateway, which turns each input request into a server→client JSON-RPC request
and retries for the client (``catalyst_mcp.protocol.mrtr.satisfy_for_legacy``).

Every tool is one small function; ``TOOLS`` is the table tools/list is built from, in the
reference server's order.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import InvalidParams, MissingCapability, NotFound, ResourceNotFound
from catalyst_mcp.protocol.versions import log_level_allows
from catalyst_mcp.providers import ListKind, Provider

try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_tasks import TASK_TOOLS, TaskFixtures  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from conformance.fixture_tasks import TASK_TOOLS, TaskFixtures

__all__ = ["PNG", "TOOLS", "WAV", "ConformanceFixture"]

PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
STEP_SECONDS = 0.05  # pause between the progress / log notifications of one call
READ_TTL_MS = 300_000  # resource contents never change
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


# ---- the tool table -------------------------------------------------------------------------

Handler = Callable[["ConformanceFixture", Json, Json, CallContext], Awaitable[Json]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    run: Handler
    input_schema: Json | None = None

    def listing(self) -> Json:
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema or empty_schema(),
        }


async def simple_text(fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext) -> Json:
    return text("This is a simple text response for testing.")


async def image_content(fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext) -> Json:
    return {"content": [{"type": "image", "data": PNG, "mimeType": "image/png"}]}


async def audio_content(fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext) -> Json:
    return {"content": [{"type": "audio", "data": WAV, "mimeType": "audio/wav"}]}


async def embedded_resource(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    resource = {
        "uri": "test://embedded-resource",
        "mimeType": "text/plain",
        "text": "This is an embedded resource content.",
    }
    return {"content": [{"type": "resource", "resource": resource}]}


async def multiple_content_types(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    resource = {
        "uri": "test://mixed-content-resource",
        "mimeType": "application/json",
        "text": json.dumps({"test": "data", "value": 123}),
    }
    return {
        "content": [
            {"type": "text", "text": "Multiple content types test:"},
            {"type": "image", "data": PNG, "mimeType": "image/png"},
            {"type": "resource", "resource": resource},
        ]
    }


async def tool_with_logging(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    steps = ["Tool execution started", "Tool processing data", "Tool execution completed"]
    for i, step in enumerate(steps):
        if i:
            await asyncio.sleep(STEP_SECONDS)
        if log_level_allows(ctx.log_level, "info"):
            await ctx.emit(log_message("info", step))
    return text("Tool with logging executed successfully")


async def tool_with_progress(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    token = ctx.progress_token
    for i, value in enumerate((0, 50, 100)):
        if i:
            await asyncio.sleep(STEP_SECONDS)
        if token is not None:
            await ctx.emit(progress(token, value, 100, f"Completed step {value} of 100"))
    return text(str(token))


async def error_handling(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    return {**text("This tool intentionally returns an error for testing"), "isError": True}


async def reconnection(fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext) -> Json:
    # The reference closes its SSE stream mid-call (SEP-1699). Behind the gateway the client's
    # stream is the gateway's, so this just answers after the same pause.
    await asyncio.sleep(0.1)
    return text(
        "Reconnection test completed successfully. If you received this, the client properly "
        "reconnected after stream closure."
    )


async def sampling(fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext) -> Json:
    need(ctx, "sampling")
    reply = input_responses(params).get("sampling")
    if reply is None:
        return input_required({"sampling": sample(str(args.get("prompt", "")), 100)})
    return text(f"LLM response: {sampled_text(reply)}")


async def elicitation(fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext) -> Json:
    need(ctx, "elicitation")
    reply = input_responses(params).get("elicitation")
    if reply is None:
        schema = object_schema(
            {"response": {"type": "string", "description": "User's response"}}, ["response"]
        )
        return input_required({"elicitation": elicit(str(args.get("message", "")), schema)})
    return text(f"User response: {describe_elicitation(reply)}")


SEP1034_SCHEMA = object_schema(
    {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    }
)


def _choices(values: list[str], titles: list[str]) -> list[Json]:
    return [{"const": v, "title": t} for v, t in zip(values, titles, strict=True)]


VALUES = ["value1", "value2", "value3"]
OPTIONS = ["option1", "option2", "option3"]
SEP1330_SCHEMA = object_schema(
    {
        "untitledSingle": {"type": "string", "description": "Select one option", "enum": OPTIONS},
        "titledSingle": {
            "type": "string",
            "description": "Select one option with titles",
            "oneOf": _choices(VALUES, ["First Option", "Second Option", "Third Option"]),
        },
        "legacyEnum": {
            "type": "string",
            "description": "Select one option (legacy)",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "description": "Select multiple options",
            "minItems": 1,
            "maxItems": 3,
            "items": {"type": "string", "enum": OPTIONS},
        },
        "titledMulti": {
            "type": "array",
            "description": "Select multiple options with titles",
            "minItems": 1,
            "maxItems": 3,
            "items": {"anyOf": _choices(VALUES, ["First Choice", "Second Choice", "Third Choice"])},
        },
    }
)


def elicit_form(message: str, schema: Json) -> Handler:
    """A tool that asks the client to fill in one form and reports what came back."""

    async def run(fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext) -> Json:
        need(ctx, "elicitation")
        reply = input_responses(params).get("form")
        if reply is None:
            return input_required({"form": elicit(message, schema)})
        return text(f"Elicitation completed: {describe_elicitation(reply)}")

    return run


async def json_schema_tool(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    return text(f"JSON Schema 2020-12 tool called with: {json.dumps(args)}")


JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


# -- modern-era (2026-07-28) tools --


async def missing_capability(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    need(ctx, "sampling")
    return text("Success")


async def mrtr_elicitation(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    need(ctx, "elicitation")
    reply = input_responses(params).get("user_name")
    if reply is None:  # the first round, or a retry that did not answer
        return input_required({"user_name": ASK_NAME})
    content = accepted(reply)
    if content is None:
        return text(f"No name given ({reply.get('action')})")
    return text(f"Hello, {content.get('name')}!")


async def mrtr_sampling(fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext) -> Json:
    need(ctx, "sampling")
    reply = input_responses(params).get("sample_request")
    if reply is None:
        return input_required({"sample_request": sample("What is the capital of France?", 100)})
    return text(f"Sampling result: {sampled_text(reply)}")


async def mrtr_list_roots(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    need(ctx, "roots")
    reply = input_responses(params).get("roots_request")
    if reply is None:
        return input_required({"roots_request": list_roots()})
    roots = reply.get("roots")
    return text(f"Found {len(roots) if isinstance(roots, list) else 0} root(s)")


CONFIRM = elicit("Please confirm", object_schema({"ok": {"type": "boolean"}}, ["ok"]))


async def mrtr_request_state(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    need(ctx, "elicitation")
    content = accepted(input_responses(params).get("confirm"))
    if "requestState" in params:
        fx.states.verify(params["requestState"])
        if content is not None and content.get("ok") is True:
            return text("state-ok: requestState validated")
    state = fx.states.sign({"kind": "request-state", "nonce": secrets.token_hex(8)})
    return input_required({"confirm": CONFIRM}, state)


async def mrtr_multiple_inputs(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    need(ctx, "elicitation", "sampling", "roots")
    asks = {
        "user_name": ASK_NAME,
        "greeting": sample("Generate a greeting", 50),
        "client_roots": list_roots(),
    }
    answers = input_responses(params)
    if "requestState" in params:
        fx.states.verify(params["requestState"])
    missing = {key: ask for key, ask in asks.items() if key not in answers}
    if missing or "requestState" not in params:
        state = fx.states.sign({"kind": "multiple-inputs", "nonce": secrets.token_hex(8)})
        return input_required(missing or asks, state)
    name = (accepted(answers["user_name"]) or {}).get("name")
    roots = answers["client_roots"].get("roots")
    count = len(roots) if isinstance(roots, list) else 0
    return text(f"Name: {name}; Greeting: {sampled_text(answers['greeting'])}; Roots: {count}")


async def mrtr_multi_round(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    need(ctx, "elicitation")
    answers = input_responses(params)
    state = fx.states.verify(params["requestState"]) if "requestState" in params else {}
    round_ = state.get("round")
    if round_ == 1 and (step1 := accepted(answers.get("step1"))) is not None:
        name = step1.get("name")
        color = object_schema({"color": {"type": "string"}}, ["color"])
        ask = elicit("Step 2: What is your favorite color?", color)
        nonce = secrets.token_hex(8)
        return input_required(
            {"step2": ask}, fx.states.sign({"round": 2, "name": name, "n": nonce})
        )
    if round_ == 2 and (step2 := accepted(answers.get("step2"))) is not None:
        return text(f"Multi-round complete for {state.get('name')} who likes {step2.get('color')}")
    ask = elicit("Step 1: What is your name?", NAME_SCHEMA)
    return input_required({"step1": ask}, fx.states.sign({"round": 1, "n": secrets.token_hex(8)}))


async def mrtr_tampered_state(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    need(ctx, "elicitation")
    content = accepted(input_responses(params).get("confirm"))
    if "requestState" in params:
        fx.states.verify(params["requestState"])  # a tampered state is -32602
        if content is not None:
            return text("integrity-ok: state verified")
    state = fx.states.sign({"kind": "tampered-state", "nonce": secrets.token_hex(8)})
    return input_required({"confirm": CONFIRM}, state)


async def mrtr_capabilities(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    """Asks only for what the client declared it can do."""
    answers = input_responses(params)
    if "requestState" in params:
        fx.states.verify(params["requestState"])
    if answers:
        return text(f"capabilities-ok: received {', '.join(sorted(answers))}")
    asks: Json = {}
    if ctx.can("elicitation"):
        value = object_schema({"value": {"type": "string"}})
        asks["elicit_input"] = elicit("Elicitation input", value)
    if ctx.can("sampling"):
        asks["sample_input"] = sample("Sample request", 50)
    if not asks:
        return text("No supported capabilities declared")
    return input_required(asks, fx.states.sign({"kind": "capabilities-test"}))


async def streaming_elicitation(
    fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext
) -> Json:
    if ctx.progress_token is not None:
        await ctx.emit(progress(ctx.progress_token, 50, 100, "Streaming"))
    return text("Streaming complete")


async def logging_tool(fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext) -> Json:
    if log_level_allows(ctx.log_level, "info"):  # never without a logLevel in _meta
        await ctx.emit(log_message("info", "Logging tool called"))
    return text("Logging evaluated")


def trigger(kind: ListKind) -> Handler:
    """A hook the suite calls to make a list change (subscriptions/listen checks)."""

    async def run(fx: ConformanceFixture, args: Json, params: Json, ctx: CallContext) -> Json:
        fx.on_change(fx, {kind})
        return text("Mutation triggered")

    return run


TOOLS: tuple[Tool, ...] = (
    Tool("test_simple_text", "Tests simple text content response", simple_text),
    Tool("test_image_content", "Tests image content response", image_content),
    Tool("test_audio_content", "Tests audio content response", audio_content),
    Tool("test_embedded_resource", "Tests embedded resource content response", embedded_resource),
    Tool(
        "test_multiple_content_types",
        "Tests response with multiple content types (text, image, resource)",
        multiple_content_types,
    ),
    Tool(
        "test_tool_with_logging",
        "Tests tool that emits log messages during execution",
        tool_with_logging,
    ),
    Tool(
        "test_tool_with_progress",
        "Tests tool that reports progress notifications",
        tool_with_progress,
    ),
    Tool("test_error_handling", "Tests error response handling", error_handling),
    Tool(
        "test_reconnection",
        "Tests SSE stream disconnection and client reconnection (SEP-1699). Server will close "
        "the stream mid-call and send the result after client reconnects.",
        reconnection,
    ),
    Tool(
        "test_sampling",
        "Tests server-initiated sampling (LLM completion request)",
        sampling,
        object_schema(
            {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}},
            ["prompt"],
        ),
    ),
    Tool(
        "test_elicitation",
        "Tests server-initiated elicitation (user input request)",
        elicitation,
        object_schema(
            {"message": {"type": "string", "description": "The message to show the user"}},
            ["message"],
        ),
    ),
    Tool(
        "test_elicitation_sep1034_defaults",
        "Tests elicitation with default values per SEP-1034",
        elicit_form("Please review and update the form fields with defaults", SEP1034_SCHEMA),
    ),
    Tool(
        "test_elicitation_sep1330_enums",
        "Tests elicitation with enum schema improvements per SEP-1330",
        elicit_form("Please select options from the enum fields", SEP1330_SCHEMA),
    ),
    Tool(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
        json_schema_tool,
        JSON_SCHEMA_2020_12,
    ),
    # Tools the suite calls on the modern (2026-07-28) wire only.
    Tool("test_missing_capability", "Test tool requiring sampling", missing_capability),
    Tool(
        "test_input_required_result_elicitation",
        "MRTR: returns InputRequiredResult with elicitation request",
        mrtr_elicitation,
    ),
    Tool(
        "test_input_required_result_sampling",
        "MRTR: returns InputRequiredResult with sampling request",
        mrtr_sampling,
    ),
    Tool(
        "test_input_required_result_list_roots",
        "MRTR: returns InputRequiredResult with roots/list request",
        mrtr_list_roots,
    ),
    Tool(
        "test_input_required_result_request_state",
        "MRTR: returns InputRequiredResult with requestState",
        mrtr_request_state,
    ),
    Tool(
        "test_input_required_result_multiple_inputs",
        "MRTR: returns InputRequiredResult with multiple input requests",
        mrtr_multiple_inputs,
    ),
    Tool(
        "test_input_required_result_multi_round",
        "MRTR: multi-round InputRequiredResult workflow",
        mrtr_multi_round,
    ),
    Tool(
        "test_input_required_result_tampered_state",
        "MRTR: HMAC-signed requestState integrity test",
        mrtr_tampered_state,
    ),
    Tool(
        "test_input_required_result_capabilities",
        "MRTR: respects client capabilities in inputRequests",
        mrtr_capabilities,
    ),
    Tool(
        "test_streaming_elicitation",
        "Diagnostic tool validating response progress streams",
        streaming_elicitation,
    ),
    Tool("test_logging_tool", "Diagnostic logging validator tool", logging_tool),
    # Hooks of the subscriptions/listen checks. The reference leaves them out of tools/list; they
    # are listed here because the gateway only routes tools its upstreams list.
    Tool(
        "test_trigger_tool_change", "Makes the server announce a tool list change", trigger("tools")
    ),
    Tool(
        "test_trigger_prompt_change",
        "Makes the server announce a prompt list change",
        trigger("prompts"),
    ),
)


# ---- resources ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    uri: str
    name: str
    description: str
    mime_type: str
    title: str | None = None
    text: str | None = None
    blob: str | None = None

    def listing(self) -> Json:
        item: Json = {"uri": self.uri, "name": self.name}
        if self.title:
            item["title"] = self.title
        return {**item, "description": self.description, "mimeType": self.mime_type}

    def contents(self) -> Json:
        body = {"text": self.text} if self.blob is None else {"blob": self.blob}
        return {"uri": self.uri, "mimeType": self.mime_type, **body}


RESOURCES: tuple[Resource, ...] = (
    Resource(
        "test://static-text",
        "static-text",
        "A static text resource for testing",
        "text/plain",
        title="Static Text Resource",
        text="This is the content of the static text resource.",
    ),
    Resource(
        "test://static-binary",
        "static-binary",
        "A static binary resource (image) for testing",
        "image/png",
        title="Static Binary Resource",
        blob=PNG,
    ),
    Resource(
        "test://watched-resource",
        "watched-resource",
        "A resource that auto-updates every 3 seconds",
        "text/plain",
        title="Watched Resource",
        text="Watched resource content",
    ),
    Resource(
        "test://stateless-static-text",
        "Stateless Static Text",
        "A static text resource served on the draft path",
        "text/plain",
        text="Static text content from the stateless draft path.",
    ),
)
TEMPLATE = {
    "name": "template",
    "uriTemplate": "test://template/{id}/data",
    "title": "Resource Template",
    "description": "A resource template with parameter substitution",
    "mimeType": "application/json",
}
TEMPLATE_URI = re.compile(r"^test://template/(?P<id>[^/]+)/data$")


def read_template(uri: str) -> Json | None:
    match = TEMPLATE_URI.match(uri)
    if match is None:
        return None
    item_id = match["id"]
    data = {"id": item_id, "templateTest": True, "data": f"Data for ID: {item_id}"}
    return {"uri": uri, "mimeType": "application/json", "text": json.dumps(data)}


# ---- prompts --------------------------------------------------------------------------------


def _argument(name: str, description: str) -> Json:
    return {"name": name, "description": description, "required": True}


PROMPTS: tuple[Json, ...] = (
    {
        "name": "test_simple_prompt",
        "title": "Simple Test Prompt",
        "description": "A simple prompt without arguments",
    },
    {
        "name": "test_prompt_with_arguments",
        "title": "Prompt With Arguments",
        "description": "A prompt with required arguments",
        "arguments": [
            _argument("arg1", "First test argument"),
            _argument("arg2", "Second test argument"),
        ],
    },
    {
        "name": "test_prompt_with_embedded_resource",
        "title": "Prompt With Embedded Resource",
        "description": "A prompt that includes an embedded resource",
        "arguments": [_argument("resourceUri", "URI of the resource to embed")],
    },
    {
        "name": "test_prompt_with_image",
        "title": "Prompt With Image",
        "description": "A prompt that includes image content",
    },
    {
        "name": "test_input_required_result_prompt",
        "description": "MRTR: prompt that requires elicitation input",
    },
)


def user(content: Json) -> Json:
    return {"role": "user", "content": content}


def user_text(value: str) -> Json:
    return user({"type": "text", "text": value})


def get_prompt(name: str, args: Json, params: Json, ctx: CallContext) -> Json:
    if name == "test_simple_prompt":
        return {"messages": [user_text("This is a simple prompt for testing.")]}
    if name == "test_prompt_with_arguments":
        arg1, arg2 = args.get("arg1"), args.get("arg2")
        return {"messages": [user_text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]}
    if name == "test_prompt_with_embedded_resource":
        resource = {
            "uri": str(args.get("resourceUri", "test://example-resource")),
            "mimeType": "text/plain",
            "text": "Embedded resource content for testing.",
        }
        return {
            "messages": [
                user({"type": "resource", "resource": resource}),
                user_text("Please process the embedded resource above."),
            ]
        }
    if name == "test_prompt_with_image":
        return {
            "messages": [
                user({"type": "image", "data": PNG, "mimeType": "image/png"}),
                user_text("Please analyze the image above."),
            ]
        }
    if name == "test_input_required_result_prompt":
        need(ctx, "elicitation")
        content = accepted(input_responses(params).get("user_context"))
        if content is None:
            schema = object_schema({"context": {"type": "string"}}, ["context"])
            ask = elicit("What context should the prompt use?", schema)
            return input_required({"user_context": ask})
        return {"messages": [user_text(f"Prompt with context: {content.get('context')}")]}
    raise NotFound(f"Unknown prompt: {name}")


# ---- the provider ---------------------------------------------------------------------------


class ConformanceFixture(Provider):
    """Everything the conformance suite calls, served in-process by a Catalyst gateway."""

    def __init__(self, name: str = "conformance", namespace: str = "") -> None:
        super().__init__(name, namespace)
        self.tools = {tool.name: tool for tool in TOOLS}
        self.resources = {resource.uri: resource for resource in RESOURCES}
        self.states = StateSigner()
        self.task_fixtures = TaskFixtures()  # the tasks-* scenarios' tools and task methods

    def items(self, kind: ListKind) -> list[Json]:
        if kind == "tools":
            return [*(tool.listing() for tool in TOOLS), *TASK_TOOLS]
        if kind == "resources":
            return [resource.listing() for resource in RESOURCES]
        if kind == "resourceTemplates":
            return [TEMPLATE]
        return list(PROMPTS)

    async def call(self, method: str, params: Json, ctx: CallContext) -> Json:
        if method == "tools/call":
            return await self._call_tool(params, ctx)
        if method == "resources/read":
            return self._read(str(params.get("uri")))
        if method == "prompts/get":
            args = params.get("arguments")
            name = str(params.get("name"))
            return get_prompt(name, args if isinstance(args, dict) else {}, params, ctx)
        if method == "completion/complete":
            return {"completion": {"values": [], "total": 0, "hasMore": False}}
        if method in ("tasks/get", "tasks/update", "tasks/cancel"):
            return await self.task_fixtures.method(method, params, ctx)
        raise InvalidParams(f"{method} is not served by the conformance fixture")

    async def _call_tool(self, params: Json, ctx: CallContext) -> Json:
        name = params.get("name")
        tool = self.tools.get(name) if isinstance(name, str) else None
        args = params.get("arguments")
        if tool is None and isinstance(name, str) and self.task_fixtures.serves(name):
            arguments = args if isinstance(args, dict) else {}
            return await self.task_fixtures.call_tool(name, arguments, params, ctx)
        if tool is None:
            raise NotFound(f"Unknown tool: {name}")
        return await tool.run(self, args if isinstance(args, dict) else {}, params, ctx)

    def _read(self, uri: str) -> Json:
        resource = self.resources.get(uri)
        contents = resource.contents() if resource is not None else read_template(uri)
        if contents is None:
            raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
        return {"contents": [contents], "ttlMs": READ_TTL_MS, "cacheScope": "private"}

    @property
    def capabilities(self) -> Json:
        return {
            "tools": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": True},
            "prompts": {"listChanged": True},
            "completions": {},
            "logging": {},
        }

    def health(self) -> Json:
        return {"name": self.name, "kind": "fixture", "status": "ready", "tools": len(TOOLS)}
