"""The conformance fixture's tools that the suite calls on the modern (2026-07-28) wire only: the
MRTR tools (SEP-2322), which ask the client for input with an ``InputRequiredResult`` and finish
on its retry (a signed ``requestState`` carries what a multi-round call remembers), the
capability check, and two diagnostic tools.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from catalyst_mcp.context import CallContext
from catalyst_mcp.protocol.versions import log_level_allows

try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_builders import (  # type: ignore[import-not-found,unused-ignore]
        ASK_NAME,
        NAME_SCHEMA,
        Json,
        accepted,
        elicit,
        input_required,
        input_responses,
        list_roots,
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
        ASK_NAME,
        NAME_SCHEMA,
        Json,
        accepted,
        elicit,
        input_required,
        input_responses,
        list_roots,
        log_message,
        need,
        object_schema,
        progress,
        sample,
        sampled_text,
        text,
    )

if TYPE_CHECKING:
    from conformance.fixture import ConformanceFixture


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
