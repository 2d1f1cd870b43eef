"""Legacy sessions: negotiation, outbox, cancel, server→client requests, the store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from catalyst_mcp.errors import CatalystError, InvalidParams
from catalyst_mcp.protocol import legacy
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.legacy import (
    ClientRequestFailed,
    LegacySession,
    SessionStore,
    negotiate_version,
)
from catalyst_mcp.protocol.versions import LATEST_LEGACY, LEGACY_VERSIONS


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_negotiate_echoes_supported(version: str) -> None:
    assert negotiate_version(version) == version


@pytest.mark.parametrize("version", ["2026-07-28", "2099-01-01", "", None, 1, ["2025-11-25"]])
def test_negotiate_offers_latest_otherwise(version: Any) -> None:
    assert negotiate_version(version) == LATEST_LEGACY


def make_session(**params: Any) -> LegacySession:
    return LegacySession("s" * 32, "2025-06-18", params)


def test_adopt_takes_client_details() -> None:
    session = make_session(capabilities={"sampling": {}}, clientInfo={"name": "c", "version": "1"})
    assert session.protocol_version == "2025-06-18"
    assert session.client_capabilities == {"sampling": {}}
    assert session.client_info == {"name": "c", "version": "1"}
    odd = make_session(capabilities=["sampling"], clientInfo="me")
    assert odd.client_capabilities == {}
    assert odd.client_info is None
    assert odd.log_level == "debug"


def test_set_level() -> None:
    session = make_session()
    assert session.set_level({"level": "warning"}) == {}
    assert session.log_level == "warning"
    with pytest.raises(InvalidParams) as caught:
        session.set_level({"level": "loud"})
    assert "loud" in caught.value.message
    assert session.log_level == "warning"


async def test_outbox_delivers_in_order_and_times_out() -> None:
    session = make_session()
    assert await session.next_message(0.01) is None
    session.post({"n": 1})
    session.post({"n": 2})
    assert await session.next_message(1) == {"n": 1}
    assert await session.next_message(1) == {"n": 2}
    waiter = asyncio.create_task(session.next_message(5))
    await asyncio.sleep(0)
    session.post({"n": 3})
    assert await asyncio.wait_for(waiter, 1) == {"n": 3}


def test_outbox_drops_the_oldest_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(legacy, "OUTBOX_LIMIT", 3)
    session = make_session()
    for n in range(5):
        session.post({"n": n})
    assert [m["n"] for m in session.outbox] == [2, 3, 4]


async def test_ask_and_answer() -> None:
    session = make_session()
    sent: list[Message] = []

    async def emit(message: Message) -> None:
        sent.append(message)

    asking = asyncio.create_task(session.ask(emit, "roots/list", {}))
    await asyncio.sleep(0)
    assert sent == [{"jsonrpc": "2.0", "id": "catalyst-1", "method": "roots/list", "params": {}}]
    assert session.answer({"jsonrpc": "2.0", "id": "catalyst-2", "result": {}}) is False
    assert session.answer({"jsonrpc": "2.0", "id": "catalyst-1", "result": {"roots": []}}) is True
    assert await asking == {"roots": []}
    assert session.answer({"jsonrpc": "2.0", "id": "catalyst-1", "result": {}}) is False


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        ({"error": {"code": -1, "message": "denied"}}, "denied"),
        ({"error": {"code": -1}}, "the client refused the request"),
        ({"result": "not an object"}, "the client refused the request"),
    ],
)
async def test_ask_answered_with_an_error(reply: dict[str, Any], text: str) -> None:
    session = make_session()

    async def emit(message: Message) -> None:
        return None

    asking = asyncio.create_task(session.ask(emit, "sampling/createMessage", {}))
    await asyncio.sleep(0)
    session.answer({"jsonrpc": "2.0", "id": "catalyst-1", **reply})
    with pytest.raises(ClientRequestFailed) as caught:
        await asking
    assert caught.value.message == text


async def test_ask_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(legacy, "CLIENT_ANSWER_SECONDS", 0.01)
    session = make_session()

    async def emit(message: Message) -> None:
        return None

    with pytest.raises(CatalystError) as caught:
        await session.ask(emit, "elicitation/create", {})
    assert "elicitation/create" in caught.value.message
    assert session._answers == {}


async def test_ask_ids_are_unique_per_session() -> None:
    session = make_session()
    ids: list[Any] = []

    async def emit(message: Message) -> None:
        ids.append(message["id"])

    tasks = [asyncio.create_task(session.ask(emit, "roots/list", {})) for _ in range(3)]
    await asyncio.sleep(0)
    assert ids == ["catalyst-1", "catalyst-2", "catalyst-3"]
    for request_id in ids:
        session.answer({"id": request_id, "result": {"roots": []}})
    await asyncio.gather(*tasks)


async def test_cancel_marks_and_cancels_the_inflight_task() -> None:
    session = make_session()
    task = asyncio.create_task(asyncio.sleep(10))
    session.inflight[7] = task
    session.cancel({"requestId": 99})
    assert not task.cancelled()
    session.cancel({"requestId": 7, "reason": "no"})
    with pytest.raises(asyncio.CancelledError):
        await task
    assert session.cancelled(7) is True
    assert session.cancelled(7) is False  # forgotten once read
    assert session.cancelled(99) is False


async def test_close_cancels_everything_and_wakes_readers() -> None:
    session = make_session()
    task = asyncio.create_task(asyncio.sleep(10))
    session.inflight[1] = task

    async def emit(message: Message) -> None:
        return None

    asking = asyncio.create_task(session.ask(emit, "roots/list", {}))
    reader = asyncio.create_task(session.next_message(10))
    await asyncio.sleep(0)
    session.close()
    assert session.closed
    assert await asyncio.wait_for(reader, 1) is None
    with pytest.raises(CatalystError, match="closed"):
        await asking
    with pytest.raises(asyncio.CancelledError):
        await task


def test_store_create_get_remove() -> None:
    store = SessionStore(idle_seconds=60)
    one = store.create("2025-11-25", {})
    two = store.create("2024-11-05", {})
    assert one.id != two.id
    assert len(store) == 2
    assert store.get(one.id) is one
    assert store.get("nope") is None
    assert set(store) == {one, two}
    assert store.remove(one.id) is True
    assert one.closed
    assert store.remove(one.id) is False
    store.close()
    assert len(store) == 0
    assert two.closed


def test_store_sweeps_idle_sessions_but_not_busy_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(legacy.time, "monotonic", lambda: clock[0])
    store = SessionStore(idle_seconds=10)
    idle = store.create("2025-11-25", {})
    busy = store.create("2025-11-25", {})
    busy.inflight[1] = None  # type: ignore[assignment]
    clock[0] += 5
    fresh = store.create("2025-11-25", {})
    clock[0] += 6  # idle and busy are 11 s old, fresh is 6 s old
    store.sweep()
    assert store.get(idle.id) is None
    assert store.get(busy.id) is busy
    assert store.get(fresh.id) is fresh


def test_store_limit_evicts_the_least_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(legacy.time, "monotonic", lambda: clock[0])
    store = SessionStore(idle_seconds=1e9, limit=2)
    first = store.create("2025-11-25", {})
    clock[0] += 1
    second = store.create("2025-11-25", {})
    clock[0] += 1
    store.get(first.id)  # first is now the most recently used
    clock[0] += 1
    third = store.create("2025-11-25", {})
    assert store.get(second.id) is None
    assert second.closed
    assert {s.id for s in store} == {first.id, third.id}
