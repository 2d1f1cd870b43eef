"""Legacy sessions: negotiation, outbox, cancel, server→client requests, the store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import CatalystError, InvalidParams, SessionLimit
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


# ---- caps: eviction order and per-caller accounting ------------------------------------------

ALICE = Identity(subject="alice", kind="user", via="api_key")
BOB = Identity(subject="bob", kind="user", via="api_key")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [0.0]
    monkeypatch.setattr(legacy.time, "monotonic", lambda: now[0])
    return now


def opened(store: SessionStore, identity: Identity, clock: list[float]) -> LegacySession:
    clock[0] += 1
    return store.create("2025-11-25", {}, identity)


def test_a_full_store_evicts_the_least_recently_used_idle_session(clock: list[float]) -> None:
    store = SessionStore(idle_seconds=1e9, limit=4, per_caller=10)
    removed: list[str] = []
    store.on_remove = lambda session: removed.append(session.id)
    oldest, in_flight, streaming, used = (opened(store, ALICE, clock) for _ in range(4))
    in_flight.inflight[1] = None  # type: ignore[assignment]
    streaming.listening = True
    clock[0] += 1
    store.get(oldest.id)  # now the most recently used
    newcomer = opened(store, BOB, clock)
    # in order of last use: in_flight, streaming, used, oldest; the first two are busy
    assert removed == [used.id]
    assert used.closed
    another = opened(store, BOB, clock)
    assert removed == [used.id, oldest.id]
    assert {s.id for s in store} == {in_flight.id, streaming.id, newcomer.id, another.id}


def test_a_caller_at_its_cap_evicts_its_own_sessions_only(clock: list[float]) -> None:
    store = SessionStore(idle_seconds=1e9, limit=100, per_caller=2)
    bobs = opened(store, BOB, clock)  # older than all of alice's
    first, second = opened(store, ALICE, clock), opened(store, ALICE, clock)
    third = opened(store, ALICE, clock)
    assert first.closed and not bobs.closed and not second.closed
    assert (store.count(ALICE), store.count(BOB), len(store)) == (2, 1, 3)
    assert {s.id for s in store} == {bobs.id, second.id, third.id}


def test_the_anonymous_user_is_one_caller(clock: list[float]) -> None:
    store = SessionStore(idle_seconds=1e9, limit=100, per_caller=3)
    for _ in range(10):
        opened(store, legacy.ANONYMOUS, clock)
    assert store.count(legacy.ANONYMOUS) == 3
    assert len(store) == 3


def test_a_caller_is_counted_by_subject_whatever_the_credential(clock: list[float]) -> None:
    store = SessionStore(idle_seconds=1e9, limit=100, per_caller=2)
    by_key = opened(store, ALICE, clock)
    opened(store, Identity(subject="alice", kind="user", via="jwt"), clock)
    opened(store, ALICE, clock)
    assert by_key.closed
    assert store.count(ALICE) == 2


def test_the_per_caller_cap_refuses_when_all_of_the_callers_sessions_are_busy(
    clock: list[float],
) -> None:
    store = SessionStore(idle_seconds=1e9, limit=100, per_caller=2)
    for session in (opened(store, ALICE, clock), opened(store, ALICE, clock)):
        session.listening = True
    idle_bob = opened(store, BOB, clock)
    with pytest.raises(SessionLimit) as caught:
        opened(store, ALICE, clock)
    error = caught.value
    assert error.http_status == 429
    assert error.data == {"cap": "per_caller", "limit": 2}
    assert "'alice' has 2 legacy sessions open" in error.message
    assert "gateway.max_legacy_sessions_per_caller" in error.message
    assert error.to_jsonrpc()["code"] == -32000
    assert not idle_bob.closed  # another caller's session is not taken for alice
    assert (store.count(ALICE), len(store)) == (2, 3)


def test_the_global_cap_refuses_when_every_session_is_busy(clock: list[float]) -> None:
    store = SessionStore(idle_seconds=1e9, limit=2, per_caller=10)
    opened(store, ALICE, clock).inflight[1] = None  # type: ignore[assignment]
    opened(store, BOB, clock).listening = True
    with pytest.raises(SessionLimit) as caught:
        opened(store, Identity(subject="carol"), clock)
    assert caught.value.http_status == 503
    assert caught.value.data == {"cap": "global", "limit": 2}
    assert "gateway.max_legacy_sessions" in caught.value.message
    assert len(store) == 2
    assert store.count(Identity(subject="carol")) == 0  # a refused caller holds nothing


def test_removing_sessions_keeps_the_accounting(clock: list[float]) -> None:
    store = SessionStore(idle_seconds=1e9, limit=10, per_caller=10)
    sessions = [opened(store, ALICE, clock) for _ in range(3)]
    store.remove(sessions[1].id)
    assert store.count(ALICE) == 2
    store.close()
    assert store.count(ALICE) == 0
    assert store._by_caller == {}  # no empty entry per caller that ever came


def test_sweep_keeps_sessions_with_an_open_stream(clock: list[float]) -> None:
    store = SessionStore(idle_seconds=10)
    streaming = opened(store, ALICE, clock)
    streaming.listening = True
    idle = opened(store, ALICE, clock)
    clock[0] += 20
    store.sweep()
    assert not streaming.closed
    assert idle.closed


def test_a_session_costs_little_until_it_is_used() -> None:
    session = make_session()
    assert not hasattr(session, "__dict__")
    assert session.outbox == ()
    assert session.subscriptions is legacy.NO_SUBSCRIPTIONS
    session.subscribe("a://1")
    session.subscribe("a://2")
    session.unsubscribe("a://1")
    assert session.subscriptions == {"a://2"}
    assert session.release_subscriptions() == {"a://2"}
    assert session.subscriptions is legacy.NO_SUBSCRIPTIONS
