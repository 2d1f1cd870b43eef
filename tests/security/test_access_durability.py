"""``audit.durability`` and ``audit.max_pending`` in the access pipeline, on SQLite and the real
PostgreSQL: in strict mode an answer waits for its record's commit (concurrent calls sharing
commits) and a call whose record cannot be committed is not reported as a success; in either
mode a call waits for room, before it runs, while ``max_pending`` records wait uncommitted.

The database is kept busy by another connection holding the audit chain's write lock
(:func:`~tests.observability.conftest.writes_held`), or made to fail (``Outage``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import AuditUnavailable, Forbidden
from catalyst_mcp.observability.audit import AuditLog
from catalyst_mcp.observability.auditsearch import search
from catalyst_mcp.protocol.server import McpServer
from catalyst_mcp.registry import Registry
from catalyst_mcp.security.access import Access
from catalyst_mcp.settings import Settings
from catalyst_mcp.storage.db import Database
from tests.asgiclient import AsgiClient
from tests.fakes import FakeProvider, modern_headers, modern_request
from tests.live import poll
from tests.observability.conftest import Outage, migrated_place, open_db, rows, writes_held
from tests.storage.conftest import BACKENDS


@pytest_asyncio.fixture(params=BACKENDS)
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated SQLite file or PostgreSQL schema (see tests/observability/conftest.py)."""
    async with migrated_place(request.param, tmp_path) as where:
        yield where


@dataclass
class Pipeline:
    server: McpServer
    access: Access
    provider: FakeProvider
    db: Database

    @property
    def audit(self) -> AuditLog:
        assert self.access.audit is not None
        return self.access.audit

    def call(
        self, n: int, tool: str = "fake__echo", roles: tuple[str, ...] = ("admin",)
    ) -> asyncio.Task[dict[str, Any]]:
        """tools/call ``tool`` with request id ``n`` as a user with ``roles``, as a task."""
        ctx = CallContext(
            era="modern",
            protocol_version="2026-07-28",
            method="tools/call",
            request_id=n,
            identity=Identity(subject="alice", kind="user", roles=roles),
        )
        params = {"name": tool, "arguments": {"text": f"call {n}"}}
        return asyncio.create_task(self.server.handle("tools/call", params, ctx))

    async def request_ids(self) -> list[Any]:
        return [r["detail"].get("request_id") for r in await search(self.db, limit=1000)]


@contextlib.asynccontextmanager
async def pipeline(place: str, **settings: Any) -> AsyncIterator[Pipeline]:
    """Access and McpServer over a FakeProvider, auditing to the database at ``place``."""
    data = {"packs": {"path": None}, **settings}
    data["audit"] = {"max_wait_seconds": 30, **data.get("audit", {})}
    db = open_db(place)
    provider = FakeProvider()
    registry = Registry()
    registry.add(provider)
    access = Access(Settings.model_validate(data), db=db, environ={})
    try:
        await access.start()
        yield Pipeline(McpServer(registry, access=access), access, provider, db)
    finally:
        await access.stop()
        await db.close()


async def writing(audit: AuditLog) -> None:
    """Until the writer is inside a batch's transaction (there it waits for a held lock)."""
    await poll(lambda: audit._writing, what="the writer writing")
    await asyncio.sleep(0.1)  # and waiting for the lock by now


def text_of(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


@pytest.mark.parametrize("durability", ["buffered", "strict"])
async def test_strict_answers_only_once_the_record_is_committed(
    place: str, durability: str
) -> None:
    """Buffered: the answer leaves while the record waits (the write-behind window); strict:
    the answer waits for the commit."""
    async with pipeline(place, audit={"durability": durability}) as p:
        async with writes_held(place):
            answer = p.call(1)
            await writing(p.audit)
            assert p.provider.calls  # the call ran
            assert answer.done() is (durability == "buffered")
            assert await rows(p.db) == []
        assert text_of(await asyncio.wait_for(answer, 10)) == "call 1"
        if durability == "strict":  # committed before the answer, no flush needed
            assert [r.outcome for r in await rows(p.db)] == ["ok"]


async def test_strict_concurrent_calls_share_commits(place: str) -> None:
    async with pipeline(place, audit={"durability": "strict"}) as p:
        async with writes_held(place):
            first = p.call(0)
            await writing(p.audit)
            rest = [p.call(n) for n in range(1, 32)]
            await asyncio.sleep(0.05)
            assert not any(task.done() for task in [first, *rest])
        answers = await asyncio.wait_for(asyncio.gather(first, *rest), 10)
        assert [text_of(a) for a in answers] == [f"call {n}" for n in range(32)]
        assert (p.audit.commits, p.audit.committed) == (2, 32)
        assert sorted(await p.request_ids()) == list(range(32))


async def test_strict_a_call_whose_record_cannot_be_committed_is_not_a_success(
    place: str,
) -> None:
    """The first call runs, but its record is not committed in time: an error instead of its
    result. While the database cannot be written the next call is not run at all. Both
    records are written once the database is back."""
    settings = {"audit": {"durability": "strict", "max_wait_seconds": 0.3}}
    async with pipeline(place, **settings) as p:
        with Outage(p.db) as outage:
            outage.watch(p.audit)
            outage.down = True
            with pytest.raises(AuditUnavailable) as ran:
                await p.call(1)
            assert ran.value.data == {"executed": True, "outcome": "ok"}
            assert ran.value.message.startswith("tools/call 'fake__echo' ran (ok), but its audit")
            assert "result is withheld" in ran.value.message
            assert len(p.provider.calls) == 1
            with pytest.raises(AuditUnavailable) as refused:
                await p.call(2)
            assert refused.value.data == {"executed": False}
            assert "the call was not run" in refused.value.message
            assert len(p.provider.calls) == 1
            outage.down = False
            await asyncio.wait_for(p.audit.flush(), 10)
        found = await search(p.db)
        assert [(r["detail"]["request_id"], r["outcome"]) for r in found] == [
            (1, "ok"),
            (2, "error"),
        ]
        assert "cannot be written" in found[1]["detail"]["reason"]


async def test_strict_a_refusal_waits_for_its_record_and_keeps_its_answer(place: str) -> None:
    settings = {
        "audit": {"durability": "strict", "max_wait_seconds": 0.3},
        "rbac": {"roles": {"guest": {"rules": [{"effect": "deny", "match": ["fake__echo"]}]}}},
    }
    async with pipeline(place, **settings) as p:
        async with writes_held(place):
            refused = p.call(1, roles=("guest",))
            await writing(p.audit)
            assert not refused.done()
            # the record is not committed in time: the refusal is still the answer
            with pytest.raises(Forbidden):
                await asyncio.wait_for(refused, 5)
        await asyncio.wait_for(p.audit.flush(), 10)  # and the record is written after all
        assert [r.outcome for r in await rows(p.db)] == ["denied"]
        assert not p.provider.calls


async def test_strict_a_failed_call_keeps_its_error_answer(place: str) -> None:
    async with pipeline(place, audit={"durability": "strict"}) as p:
        result = await p.call(1, "fake__fail")  # an upstream that is down: a tool error
        assert result["isError"] is True
        assert [r.outcome for r in await rows(p.db)] == ["error"]


@pytest.mark.parametrize("durability", ["buffered", "strict"])
async def test_calls_wait_before_running_while_max_pending_records_wait(
    place: str, durability: str
) -> None:
    async with pipeline(place, audit={"durability": durability, "max_pending": 3}) as p:
        async with writes_held(place):
            if durability == "buffered":
                answered = [await p.call(n) for n in range(3)]  # within the window
                assert len(answered) == 3
            else:
                for n in range(3):
                    p.call(n)
            await writing(p.audit)
            assert p.audit.full
            held = p.call(3)
            await asyncio.sleep(0.1)
            assert not held.done()
            assert len(p.provider.calls) == 3  # the fourth has not run
        await asyncio.wait_for(held, 10)
        assert len(p.provider.calls) == 4
        await p.audit.flush()
        assert sorted(await p.request_ids()) == [0, 1, 2, 3]


async def test_a_call_that_finds_no_room_in_time_is_refused_not_run(place: str) -> None:
    settings = {"audit": {"max_pending": 2, "max_wait_seconds": 0.2}}
    async with pipeline(place, **settings) as p:
        async with writes_held(place):
            await p.call(0)
            await p.call(1)
            await writing(p.audit)
            with pytest.raises(AuditUnavailable) as refused:
                await p.call(2)
            assert refused.value.data == {"executed": False}
            assert "2 audit records still wait for the database after 0.2 s" in (
                refused.value.message
            )
            assert len(p.provider.calls) == 2
        await asyncio.wait_for(p.audit.flush(), 10)
        # the refused call's own record found no room either: dropped, and counted
        assert (sorted(await p.request_ids()), p.audit.dropped) == ([0, 1], 1)


# ---- over HTTP: what a client sees ----------------------------------------------------------


def gateway(tmp_path: Path, *, auth: bool, **audit: Any) -> Gateway:
    data = {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
        "packs": {"path": None},
        "auth": {"enabled": auth},
        "audit": {"durability": "strict", **audit},
    }
    return Gateway(Settings.model_validate(data), [FakeProvider()])


async def test_a_client_is_told_its_call_ran_but_was_not_recorded(tmp_path: Path) -> None:
    gw = gateway(tmp_path, auth=False, max_wait_seconds=0.2)
    await gw.start()
    try:
        message = modern_request("tools/call", {"name": "fake__echo", "arguments": {}})
        async with writes_held(str(tmp_path / "c.db")):
            response = await AsgiClient(gw.asgi).post("/mcp", message, modern_headers(message))
        error = response.message()["error"]
        assert (response.status, error["code"], error["data"]) == (
            200,
            -32603,
            {"executed": True, "outcome": "ok"},
        )
        assert "its audit record could not be committed" in error["message"]
        assert "catalyst audit search" in error["message"]
    finally:
        await gw.stop()


async def test_a_failed_authentication_is_answered_once_recorded(tmp_path: Path) -> None:
    gw = gateway(tmp_path, auth=True)
    await gw.start()
    try:
        assert gw.access.audit is not None and gw.db is not None
        message = modern_request("tools/list", None)
        async with writes_held(str(tmp_path / "c.db")):
            answer = asyncio.create_task(
                AsgiClient(gw.asgi).post("/mcp", message, modern_headers(message))
            )
            await writing(gw.access.audit)
            assert not answer.done()
        assert (await asyncio.wait_for(answer, 10)).status == 401
        (record,) = await search(gw.db)  # committed before the answer
        assert (record["action"], record["outcome"]) == ("authenticate", "unauthenticated")
    finally:
        await gw.stop()
