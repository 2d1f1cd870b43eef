"""Where events come from, through a running gateway where it matters: calls and refusals,
upstream states, pack reloads, tool definition changes, rules, workflow steps and runs."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import Identity
from catalyst_mcp.errors import AccessError, ApprovalRequired, Forbidden, RateLimited, ToolHeldBack
from catalyst_mcp.observability.auditevent import AuditEvent
from catalyst_mcp.orchestration.events.sources import (
    RuleEvents,
    UpstreamWatch,
    pin_events,
    refusal_reason,
)
from catalyst_mcp.orchestration.events.types import Envelope, Event
from catalyst_mcp.orchestration.rules.events import RuleEvent
from catalyst_mcp.packs.packset import PackSet
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.registry import Registry
from catalyst_mcp.settings import Settings
from tests.fakes import FakeProvider, tool
from tests.orchestration.workflows.support import ToolBox, running_gateway, write

ALICE = Identity(subject="alice", kind="user", roles=("admin",), via="api_key")


def settings(tmp_path: Path, **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "packs": {"path": None},
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"},
        **extra,
    }
    return Settings.model_validate(data)


async def events_of(
    gateway: Gateway, kind: str, count: int = 1, timeout: float = 10.0
) -> list[Envelope]:
    """The events of type ``kind`` the gateway's bus has handed on, oldest first, once there
    are ``count`` of them (or ``timeout`` passed)."""
    assert gateway.events is not None
    bus = gateway.events.bus
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = list(reversed(await bus.recent(1000, [kind])))
        if len(found) >= count or loop.time() > deadline:
            return found
        await asyncio.sleep(0.01)


# ---- calls -----------------------------------------------------------------------------------


async def test_calls_finished_and_refused(tmp_path: Path) -> None:
    config = settings(
        tmp_path,
        rate_limits={"per_tool": {"rate_per_second": 0.001, "burst": 2}},
        rbac={"roles": {"reader": {"rules": [{"effect": "allow", "match": ["fake__echo"]}]}}},
    )
    gateway = Gateway(config, [FakeProvider("fake", tools=[tool("echo"), tool("secret")])])
    await gateway.start()
    try:
        call = gateway.dispatcher.direct
        bob = Identity(subject="bob", kind="user", roles=("reader",), via="api_key")
        await call("tools/call", {"name": "fake__echo", "arguments": {"text": "x"}}, bob)
        with pytest.raises(Forbidden):
            await call("tools/call", {"name": "fake__secret", "arguments": {}}, bob)
        await call("tools/call", {"name": "fake__echo", "arguments": {"text": "y"}}, bob)
        with pytest.raises(RateLimited):
            await call("tools/call", {"name": "fake__echo", "arguments": {"text": "z"}}, bob)
        [done, again] = await events_of(gateway, "call.finished", 2)
        assert done.data["server"] == "fake" and done.data["tool"] == "fake__echo"
        assert done.data["outcome"] == "ok" and done.data["subject"] == "bob"
        assert done.data["subject_kind"] == "user" and done.data["channel"] == "rest"
        assert done.data["duration_ms"] >= 0 and again.data["tool"] == "fake__echo"
        refused = await events_of(gateway, "call.refused", 2)
        assert [(e.data["tool"], e.data["reason"]) for e in refused] == [
            ("fake__secret", "denied"),
            ("fake__echo", "limited"),
        ]
        assert "rate limit" in refused[1].data["message"]
        # no argument value anywhere
        everything = await gateway.events.bus.recent(100) if gateway.events else []
        assert not any('"z"' in str(e.to_json()) or "'y'" in str(e.data) for e in everything)
    finally:
        await gateway.stop()


async def test_a_tool_error_is_a_finished_call(tmp_path: Path) -> None:
    box = ToolBox()
    gateway = Gateway(settings(tmp_path), [box])
    await gateway.start()
    try:
        await gateway.dispatcher.direct("tools/call", {"name": "box__broken"}, ALICE)
        [event] = await events_of(gateway, "call.finished")
        assert event.data["outcome"] == "tool_error"
    finally:
        await gateway.stop()


def test_refusal_reasons() -> None:
    assert refusal_reason(Forbidden("no")) == "denied"
    assert refusal_reason(ApprovalRequired("wait", "ap_1", "pending")) == "approval"
    assert refusal_reason(ToolHeldBack("s", "t", "changed", "held")) == "held"
    assert refusal_reason(RateLimited("slow", 1.0)) == "limited"
    assert refusal_reason(AccessError("other")) == "denied"


async def test_call_events_cost_nothing_when_not_published(tmp_path: Path) -> None:
    gateway = Gateway(settings(tmp_path, events={"types": ["upstream.*"]}), [FakeProvider("fake")])
    assert gateway.server.events is not None
    assert not gateway.server.events.finished and not gateway.server.events.refused


# ---- upstream states -------------------------------------------------------------------------


class Flaky(Provider):
    def __init__(self, name: str) -> None:
        super().__init__(name, name)
        self.report: dict[str, Any] = {"status": "starting", "restarts": 0}

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return []

    async def call(self, method: str, params: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {}

    def health(self) -> dict[str, Any]:
        return {"name": self.name, **self.report}


def test_upstream_states_changes_restarts_and_removals() -> None:
    got: list[Event] = []
    a, b = Flaky("a"), Flaky("b")
    servers: dict[str, Provider] = {"a": a, "b": b}
    watch = UpstreamWatch(lambda: dict(servers), got.append, 1.0)
    assert watch.look() == 2  # first sight: each server's state
    assert watch.look() == 0
    a.report = {"status": "failed", "restarts": 0, "error": "cannot connect to x:1: refused"}
    b.report = {"status": "starting", "restarts": 1}  # restarted between two looks
    assert watch.look() == 2
    del servers["a"]
    assert watch.look() == 1
    data = [e for e in got if getattr(e, "server", "") == "a"]
    assert [(e.state, e.previous, e.error) for e in data] == [  # type: ignore[attr-defined]
        ("starting", None, None),
        ("failed", "starting", "cannot connect to x:1: refused"),
        ("removed", "failed", None),
    ]
    restarted = [e for e in got if getattr(e, "server", "") == "b"][-1]
    assert restarted.restarts == 1 and restarted.previous == "starting"  # type: ignore[attr-defined]


@pytest.mark.network
@pytest.mark.subprocess
async def test_upstream_states_from_a_running_gateway(tmp_path: Path, upstream_http: str) -> None:
    config = settings(
        tmp_path,
        servers={"up": {"url": upstream_http}, "gone": {"url": "http://127.0.0.1:9/mcp"}},
        events={"state_poll_seconds": 0.05},
    )
    gateway = Gateway(config)
    await gateway.start()
    try:
        latest: dict[str, str] = {}
        for _ in range(1000):
            found = await events_of(gateway, "upstream.state_changed")
            latest = {e.data["server"]: e.data["state"] for e in found}
            if latest == {"up": "ready", "gone": "failed"}:
                break
            await asyncio.sleep(0.01)
        assert latest == {"up": "ready", "gone": "failed"}
        down = next(e for e in found if e.data["state"] == "failed")
        assert down.data["server"] == "gone" and "cannot connect" in down.data["error"]
        await gateway.servers.stop_server("up", "alice")
        for _ in range(1000):
            found = await events_of(gateway, "upstream.state_changed")
            if found[-1].data["state"] == "stopped":
                break
            await asyncio.sleep(0.01)
        assert found[-1].data["server"] == "up" and found[-1].data["previous"] == "ready"
        # and they are audited, as the gateway
        from catalyst_mcp.observability.auditsearch import search

        assert gateway.access.audit is not None and gateway.db is not None
        records: list[dict[str, Any]] = []
        for _ in range(500):
            await gateway.access.audit.flush()
            records = await search(gateway.db, action="upstream.state_changed")
            if any(r["detail"].get("state") == "stopped" for r in records):
                break
            await asyncio.sleep(0.01)
        record = next(r for r in records if r["detail"].get("state") == "failed")
        assert record["target"] == "gone" and record["outcome"] == "error"
        assert record["actor"] == "gateway" and record["detail"]["event"].startswith("ev_")
    finally:
        await gateway.stop()


# ---- packs -----------------------------------------------------------------------------------

PACK = """\
pack: notes
description: A pack for the test.
connections:
  db:
    type: sql
    url: "sqlite:///{db}"
tools:
{tools}
"""
TOOL = """\
  - name: {name}
    description: A tool.
    sql:
      connection: db
      statement: SELECT 1 AS n
"""


def pack(tmp_path: Path, *names: str) -> str:
    tools = "".join(TOOL.format(name=n) for n in names)
    return PACK.format(db=tmp_path / "n.db", tools=tools)


async def test_pack_reloads(tmp_path: Path) -> None:
    folder = tmp_path / "packs"
    folder.mkdir()
    packs = PackSet(folder, Registry())
    told: list[tuple[str, str | None, str, int, int]] = []
    packs.on_reload = lambda f, p, o, n, t: told.append((f.name, p, o, n, t))
    file = folder / "notes.yaml"
    file.write_text(pack(tmp_path, "count"))
    await packs.reload([file])
    file.write_text(pack(tmp_path, "count", "other"))
    await packs.reload([file])
    await packs.reload([file])  # unchanged: nothing to tell
    file.write_text(pack(tmp_path, "count") + "  - name: [\n")
    await packs.reload([file])
    await packs.reload([file])  # the same problems: told once
    file.unlink()
    await packs.reload([file])
    await packs.close()
    assert told[0] == ("notes.yaml", "notes", "added", 0, 1)
    assert told[1] == ("notes.yaml", "notes", "reloaded", 0, 2)
    assert told[2][:3] == ("notes.yaml", "notes", "failed") and told[2][3] >= 1
    assert told[3] == ("notes.yaml", "notes", "removed", 0, 0)
    assert len(told) == 4


async def test_pack_events_through_the_gateway(tmp_path: Path) -> None:
    folder = tmp_path / "packs"
    folder.mkdir()
    config = settings(tmp_path, packs={"path": str(folder), "watch": False})
    gateway = Gateway(config)
    await gateway.start()
    try:
        (folder / "broken.yaml").write_text("pack: [\n")
        assert gateway.packs is not None
        await gateway.packs.reload([folder / "broken.yaml"])
        [event] = await events_of(gateway, "pack.reloaded")
        assert event.data == {
            "file": "broken.yaml",
            "pack": None,
            "outcome": "failed",
            "problems": 1,
            "tools": 0,
        }
    finally:
        await gateway.stop()


# ---- pinning and rules -----------------------------------------------------------------------


def test_pin_changes_become_events_and_are_still_audited() -> None:
    audited: list[AuditEvent] = []
    got: list[Event] = []
    record = pin_events(audited.append, got.append)
    detail = {
        "server": "gh",
        "tool": "search",
        "change": "changed",
        "digest": "ab12",
        "policy": "strict",
        "served": False,
    }
    record(AuditEvent("gateway", "system", "pin.changed", "gh/search", "ok", None, detail))
    record(AuditEvent("gateway", "system", "pin.held", "gh/search", "denied", None, {}))
    assert [e.action for e in audited] == ["pin.changed", "pin.held"]
    [event] = got
    assert event.TYPE == "tool.definition_changed"
    assert (event.server, event.tool, event.change, event.held) == (  # type: ignore[attr-defined]
        "gh",
        "search",
        "changed",
        True,
    )
    pin_events(None, got.append)(
        AuditEvent("gateway", "system", "pin.changed", "gh/x", "ok", None, {"served": True})
    )
    assert got[-1].held is False  # type: ignore[attr-defined]


class Sink:
    def __init__(self) -> None:
        self.got: list[RuleEvent] = []

    def publish(self, event: RuleEvent) -> None:
        self.got.append(event)


def test_rule_events_keep_their_sink_and_become_bus_events() -> None:
    sink = Sink()
    got: list[Event] = []
    events = RuleEvents(sink, got.append)
    events.publish(
        RuleEvent("rules.alert", "r1", "bob", "user", "crm__x", "crm", "look", "warning")
    )
    events.publish(
        RuleEvent(
            "rules.approval.requested",
            "r2",
            "bob",
            "user",
            "crm__x",
            "crm",
            "why",
            detail={"approval": "ap_1"},
        )
    )
    events.publish(
        RuleEvent(
            "rules.approval.approved",
            "r2",
            "bob",
            "user",
            "crm__x",
            "crm",
            "",
            detail={"approval": "ap_1", "decided_by": "root"},
        )
    )
    assert len(sink.got) == 3
    assert [e.TYPE for e in got] == ["rule.alert", "approval.requested", "approval.decided"]
    assert got[0].severity == "warning"  # type: ignore[attr-defined]
    assert got[1].approval == "ap_1" and got[1].message == "why"  # type: ignore[attr-defined]
    decided = got[2]
    assert (decided.state, decided.decided_by) == ("approved", "root")  # type: ignore[attr-defined]


async def test_an_alert_rule_through_the_gateway(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "alert.yaml").write_text(
        textwrap.dedent(
            """\
            rules:
              - id: watch-echo
                tools: ["fake__echo"]
                action: alert
                severity: critical
                message: echo was called
            """
        )
    )
    config = settings(tmp_path, rules={"path": str(rules), "watch": False})
    gateway = Gateway(config, [FakeProvider("fake")])
    await gateway.start()
    try:
        await gateway.dispatcher.direct("tools/call", {"name": "fake__echo"}, ALICE)
        [alert] = await events_of(gateway, "rule.alert")
        assert alert.data["rule"] == "watch-echo" and alert.data["severity"] == "critical"
        assert alert.data["message"] == "echo was called" and alert.data["subject"] == "alice"
    finally:
        await gateway.stop()


# ---- workflows -------------------------------------------------------------------------------


async def test_workflow_steps_and_runs(tmp_path: Path) -> None:
    write(
        tmp_path / "workflows",
        "pair",
        """
        name: pair
        steps:
          - id: first
            tool: box__echo
            arguments: {text: "${inputs.text}"}
          - id: skipped
            when: "`false`"
            tool: box__echo
          - id: broken
            tool: box__broken
        """,
    )
    async with running_gateway(tmp_path, ToolBox()) as gateway:
        result = await gateway.dispatcher.direct(
            "tools/call", {"name": "workflows__pair", "arguments": {"text": "hi"}}, ALICE
        )
        assert result.get("isError") is True
        steps = await events_of(gateway, "workflow.step_finished", 3)
        assert [(e.data["step"], e.data["status"]) for e in steps] == [
            ("first", "completed"),
            ("skipped", "skipped"),
            ("broken", "failed"),
        ]
        assert steps[0].data["attempts"] == 1
        assert steps[2].data["error"] == "box__broken failed: it broke"
        [run] = await events_of(gateway, "workflow.run_finished")
        data = run.data
        assert data["workflow"] == "pair" and data["status"] == "failed"
        assert data["trigger"] == "call" and data["subject"] == "alice"
        assert data["failed_step"] == "broken" and "it broke" in data["error"]
        assert data["duration_ms"] is not None and data["run_id"].startswith("wr_")
        assert "hi" not in str(data)  # inputs are not in the event
