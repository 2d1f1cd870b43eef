"""Bridging client input across eras: InputBridge (legacy upstream → modern client) and
satisfy_for_legacy (modern upstream → legacy client)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import CatalystError, InvalidParams
from catalyst_mcp.protocol import mrtr
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.mrtr import InputBridge, satisfy_for_legacy


def modern_ctx() -> CallContext:
    return CallContext(
        era="modern",
        protocol_version="2026-07-28",
        method="tools/call",
        client_capabilities={"sampling": {}, "elicitation": {}, "roots": {}},
    )


async def asks_once(ctx: CallContext) -> dict[str, Any]:
    assert ctx.ask is not None
    answer = await ctx.ask("elicitation/create", {"message": "name?"})
    return {"content": [{"type": "text", "text": f"hi {answer['content']['name']}"}]}


async def test_work_that_never_asks_completes_directly() -> None:
    bridge = InputBridge()

    async def work(ctx: CallContext) -> dict[str, Any]:
        return {"content": []}

    assert await bridge.run(modern_ctx(), {"name": "t"}, work) == {"content": []}
    assert bridge._parked == {}


async def test_ask_parks_the_call_and_the_retry_resumes_it() -> None:
    bridge = InputBridge()
    first = await bridge.run(modern_ctx(), {"name": "t"}, asks_once)
    assert first["resultType"] == "input_required"
    assert first["inputRequests"] == {
        "input-1": {"method": "elicitation/create", "params": {"message": "name?"}}
    }
    state = first["requestState"]
    assert state.startswith("catalyst-input:")
    assert InputBridge.owns({"requestState": state})
    retry = {
        "name": "t",
        "requestState": state,
        "inputResponses": {"input-1": {"content": {"name": "Ada"}}},
    }
    final = await bridge.run(modern_ctx(), retry, asks_once)
    assert final == {"content": [{"type": "text", "text": "hi Ada"}]}
    assert bridge._parked == {}
    with pytest.raises(InvalidParams, match="unknown or expired"):
        await bridge.run(modern_ctx(), retry, asks_once)  # single use


@pytest.mark.parametrize("state", [None, 5, "", "someone-elses-state", "catalyst-input:forged"])
async def test_owns_and_unknown_states(state: Any) -> None:
    bridge = InputBridge()
    params = {"requestState": state}
    if isinstance(state, str) and state.startswith("catalyst-input:"):
        assert InputBridge.owns(params)
        with pytest.raises(InvalidParams):
            await bridge.run(modern_ctx(), params, asks_once)
    else:
        assert not InputBridge.owns(params)


async def test_concurrent_asks_share_one_round_and_partial_answers_ask_again() -> None:
    bridge = InputBridge()

    async def asks_twice(ctx: CallContext) -> dict[str, Any]:
        assert ctx.ask is not None
        a, b = await asyncio.gather(
            ctx.ask("roots/list", {}), ctx.ask("sampling/createMessage", {"maxTokens": 1})
        )
        return {"got": [a, b]}

    first = await bridge.run(modern_ctx(), {}, asks_twice)
    assert sorted(first["inputRequests"]) == ["input-1", "input-2"]
    partial = {"requestState": first["requestState"], "inputResponses": {"input-1": {"roots": []}}}
    second = await bridge.run(modern_ctx(), partial, asks_twice)
    assert second["resultType"] == "input_required"
    assert list(second["inputRequests"]) == ["input-2"]
    assert second["requestState"] != first["requestState"]
    done = {
        "requestState": second["requestState"],
        "inputResponses": {"input-2": {"m": 1}, "zz": {}},
    }
    assert await bridge.run(modern_ctx(), done, asks_twice) == {"got": [{"roots": []}, {"m": 1}]}


async def test_sequential_asks_take_two_rounds() -> None:
    bridge = InputBridge()

    async def two_rounds(ctx: CallContext) -> dict[str, Any]:
        assert ctx.ask is not None
        one = await ctx.ask("roots/list", {})
        two = await ctx.ask("roots/list", {})
        return {"answers": [one, two]}

    first = await bridge.run(modern_ctx(), {}, two_rounds)
    second = await bridge.run(
        modern_ctx(),
        {"requestState": first["requestState"], "inputResponses": {"input-1": {"n": 1}}},
        two_rounds,
    )
    assert list(second["inputRequests"]) == ["input-2"]
    final = await bridge.run(
        modern_ctx(),
        {"requestState": second["requestState"], "inputResponses": {"input-2": {"n": 2}}},
        two_rounds,
    )
    assert final == {"answers": [{"n": 1}, {"n": 2}]}


async def test_progress_after_resume_goes_to_the_retrying_request() -> None:
    bridge = InputBridge()
    seen: list[tuple[str, Message]] = []

    def emitter(tag: str) -> Any:
        async def emit(message: Message) -> None:
            seen.append((tag, message))

        return emit

    async def work(ctx: CallContext) -> dict[str, Any]:
        assert ctx.ask is not None
        await ctx.emit({"m": "before"})
        await ctx.ask("roots/list", {})
        await ctx.emit({"m": "after"})
        return {}

    first_ctx = modern_ctx()
    first_ctx.emit = emitter("first")
    first = await bridge.run(first_ctx, {}, work)
    retry_ctx = modern_ctx()
    retry_ctx.emit = emitter("retry")
    params = {"requestState": first["requestState"], "inputResponses": {"input-1": {}}}
    await bridge.run(retry_ctx, params, work)
    assert seen == [("first", {"m": "before"}), ("retry", {"m": "after"})]


async def test_errors_of_the_work_reach_the_caller() -> None:
    bridge = InputBridge()

    async def fails_after_answer(ctx: CallContext) -> dict[str, Any]:
        assert ctx.ask is not None
        await ctx.ask("roots/list", {})
        raise CatalystError("upstream broke")

    first = await bridge.run(modern_ctx(), {}, fails_after_answer)
    with pytest.raises(CatalystError, match="upstream broke"):
        await bridge.run(
            modern_ctx(),
            {"requestState": first["requestState"], "inputResponses": {"input-1": {}}},
            fails_after_answer,
        )


async def test_expired_parked_calls_are_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mrtr, "PARK_SECONDS", 0.0)
    bridge = InputBridge()
    cancelled = asyncio.Event()

    async def work(ctx: CallContext) -> dict[str, Any]:
        assert ctx.ask is not None
        try:
            await ctx.ask("roots/list", {})
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    first = await bridge.run(modern_ctx(), {}, work)
    with pytest.raises(InvalidParams):
        await bridge.run(
            modern_ctx(), {"requestState": first["requestState"], "inputResponses": {}}, work
        )
    await asyncio.wait_for(cancelled.wait(), 1)


async def test_client_leaving_cancels_the_work() -> None:
    bridge = InputBridge()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def work(ctx: CallContext) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    runner = asyncio.create_task(bridge.run(modern_ctx(), {}, work))
    await asyncio.wait_for(started.wait(), 1)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    await asyncio.wait_for(cancelled.wait(), 1)


async def test_close_cancels_parked_calls() -> None:
    bridge = InputBridge()
    first = await bridge.run(modern_ctx(), {}, asks_once)
    parked = bridge._parked[first["requestState"]]
    bridge.close()
    assert bridge._parked == {}
    assert parked.task is not None
    with pytest.raises(asyncio.CancelledError):
        await parked.task


# ---- satisfy_for_legacy --------------------------------------------------------------------


Asked = list[tuple[str, dict[str, Any]]]


def legacy_ctx(capabilities: dict[str, Any], asked: Asked | None = None) -> CallContext:
    asked = [] if asked is None else asked

    async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
        asked.append((method, params))
        return {"answer": len(asked)}

    return CallContext(
        era="legacy",
        protocol_version="2025-11-25",
        client_capabilities=capabilities,
        ask=ask,
    )


def input_required(state: str | None = "s1", **requests: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "resultType": "input_required",
        "inputRequests": {k: {"method": m, "params": {"k": k}} for k, m in requests.items()},
    }
    if state is not None:
        result["requestState"] = state
    return result


async def test_complete_result_is_returned_unchanged() -> None:
    result = {"content": []}

    async def retry(params: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("no retry")

    assert await satisfy_for_legacy(result, {}, legacy_ctx({}), retry) is result


async def test_asks_the_client_and_retries_with_answers() -> None:
    asked: Asked = []
    ctx = legacy_ctx({"elicitation": {}, "sampling": {}}, asked)
    retries: list[dict[str, Any]] = []

    async def retry(params: dict[str, Any]) -> dict[str, Any]:
        retries.append(params)
        return {"content": ["done"]}

    first = input_required(a="elicitation/create", b="sampling/createMessage")
    result = await satisfy_for_legacy(first, {"name": "t", "requestState": "old"}, ctx, retry)
    assert result == {"content": ["done"]}
    assert asked == [
        ("elicitation/create", {"k": "a"}),
        ("sampling/createMessage", {"k": "b"}),
    ]
    assert retries == [
        {
            "name": "t",
            "requestState": "s1",
            "inputResponses": {"a": {"answer": 1}, "b": {"answer": 2}},
        }
    ]


async def test_state_only_result_drops_the_old_state() -> None:
    ctx = legacy_ctx({"roots": {}})
    retries: list[dict[str, Any]] = []

    async def retry(params: dict[str, Any]) -> dict[str, Any]:
        retries.append(params)
        return {"ok": True}

    await satisfy_for_legacy(
        input_required(None, r="roots/list"), {"requestState": "stale"}, ctx, retry
    )
    assert "requestState" not in retries[0]


async def test_missing_capability_is_reported() -> None:
    async def retry(params: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("no retry")

    with pytest.raises(CatalystError) as caught:
        await satisfy_for_legacy(
            input_required(a="sampling/createMessage"), {}, legacy_ctx({}), retry
        )
    assert caught.value.data == {"requiredCapabilities": {"sampling": {}}}


async def test_connection_that_cannot_ask_is_reported() -> None:
    ctx = CallContext(
        era="legacy", protocol_version="2025-11-25", client_capabilities={"roots": {}}
    )

    async def retry(params: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("no retry")

    with pytest.raises(CatalystError, match="cannot carry"):
        await satisfy_for_legacy(input_required(r="roots/list"), {}, ctx, retry)


async def test_gives_up_after_max_rounds() -> None:
    ctx = legacy_ctx({"roots": {}})
    rounds = 0

    async def retry(params: dict[str, Any]) -> dict[str, Any]:
        nonlocal rounds
        rounds += 1
        return input_required(r="roots/list")

    with pytest.raises(CatalystError, match="kept asking"):
        await satisfy_for_legacy(input_required(r="roots/list"), {}, ctx, retry)
    assert rounds == mrtr.MAX_ROUNDS


@pytest.mark.parametrize(
    ("who", "name"),
    [(Identity("mallory", "user", via="api_key"), "t"), (None, "other_tool")],
    ids=["another-caller", "another-tool"],
)
async def test_a_parked_call_resumes_only_for_its_own_caller_and_tool(
    who: Identity | None, name: str
) -> None:
    bridge = InputBridge()
    first = await bridge.run(modern_ctx(), {"name": "t"}, asks_once)
    retry_ctx = modern_ctx()
    if who is not None:
        retry_ctx.identity = who
    retry = {
        "name": name,
        "requestState": first["requestState"],
        "inputResponses": {"input-1": {"content": {"name": "Eve"}}},
    }
    with pytest.raises(InvalidParams, match="unknown or expired"):
        await bridge.run(retry_ctx, retry, asks_once)
    # the rightful retry still resumes it
    retry["name"] = "t"
    final = await bridge.run(modern_ctx(), retry, asks_once)
    assert final == {"content": [{"type": "text", "text": "hi Eve"}]}
