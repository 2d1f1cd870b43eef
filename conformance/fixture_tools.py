"""The conformance fixture's tools: the ``TOOLS`` table tools/list is built from, in the
reference server's order, and the tools every era calls (content, notifications, sampling and
elicitation forms, a JSON Schema 2020-12 input schema, the list-change hooks). The tools called
on the modern wire only are in ``fixture_mrtr``.

Every tool is one small function, run as ``(fixture, arguments, params, ctx)``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from catalyst_mcp.context import CallContext
from catalyst_mcp.protocol.versions import log_level_allows
from catalyst_mcp.providers import ListKind

try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_builders import (  # type: ignore[import-not-found,unused-ignore]
        PNG,
        STEP_SECONDS,
        WAV,
        Json,
        describe_elicitation,
        elicit,
        empty_schema,
        input_required,
        input_responses,
        log_message,
        need,
        object_schema,
        progress,
        sample,
        sampled_text,
        text,
    )
except ImportError:
    from conformance.fixture_builders import (
        PNG,
        STEP_SECONDS,
        WAV,
        Json,
        describe_elicitation,
        elicit,
        empty_schema,
        input_required,
        input_responses,
        log_message,
        need,
        object_schema,
        progress,
        sample,
        sampled_text,
        text,
    )
try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_mrtr import (  # type: ignore[import-not-found,unused-ignore]
        logging_tool,
        missing_capability,
        mrtr_capabilities,
        mrtr_elicitation,
        mrtr_list_roots,
        mrtr_multi_round,
        mrtr_multiple_inputs,
        mrtr_request_state,
        mrtr_sampling,
        mrtr_tampered_state,
        streaming_elicitation,
    )
except ImportError:
    from conformance.fixture_mrtr import (
        logging_tool,
        missing_capability,
        mrtr_capabilities,
        mrtr_elicitation,
        mrtr_list_roots,
        mrtr_multi_round,
        mrtr_multiple_inputs,
        mrtr_request_state,
        mrtr_sampling,
        mrtr_tampered_state,
        streaming_elicitation,
    )

if TYPE_CHECKING:
    from conformance.fixture import ConformanceFixture

__all__ = ["TOOLS", "Tool"]

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
