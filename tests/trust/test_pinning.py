"""Pinning through a whole gateway, in process (a scripted upstream, a real database: SQLite
and PostgreSQL): what strict holds back and refuses, what warn serves, what off leaves alone,
approvals through the API (at once) and elsewhere (polled), restarts, and rug pulls."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import Identity
from catalyst_mcp.errors import StorageError, ToolHeldBack
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from catalyst_mcp.storage.pins import PinRepo
from catalyst_mcp.trust.digest import digest
from catalyst_mcp.trust.pinning import Pinning, ToolPins
from tests.live import poll
from tests.trust.conftest import (
    INJECTED,
    READ,
    World,
    api,
    audited,
    call,
    gateway_settings,
    running,
    tool_names,
)

PIN_ACTIONS = ("pin.recorded", "pin.changed", "pin.held", "pin.approved")
HELD = (
    "tool 'read' of server 'files' changed its definition since it was approved; an "
    "administrator must review it: `catalyst tools diff files`"
)


async def change_read(gateway: Gateway, world: World, description: str) -> None:
    """The server changes ``read``'s description and says so; wait until the gateway has
    reviewed the new list."""
    world.describe("read", description)
    await world.announce()
    pins = gateway.pinning.live("files")[0]
    await poll(lambda: any(t.get("description") == description for t in pins._raw or ()))
    await asyncio.sleep(0)  # the registry hears of it in the same step


# ---- strict ------------------------------------------------------------------------------------


async def test_strict_holds_a_changed_tool_back_until_it_is_approved(
    world: World, database_url: str
) -> None:
    async with running(gateway_settings(database_url, "strict")) as gateway:
        assert await tool_names(gateway) == ["files__read", "files__write"]
        session = gateway.sessions.create("2025-11-25", {})
        session.listening = True

        await change_read(gateway, world, "Read a file, quickly.")
        # not listed, not callable: a specific error that says what to do
        assert await tool_names(gateway) == ["files__write"]
        with pytest.raises(ToolHeldBack) as refused:
            await call(gateway, "files__read", path="/etc/hostname")
        assert refused.value.message == HELD
        assert refused.value.data == {"server": "files", "tool": "read", "reason": "changed"}
        assert refused.value.to_jsonrpc()["code"] == -32003
        assert world.calls == []  # never reached the server
        assert gateway.readiness()["servers"][0]["heldTools"] == ["read"]
        assert [m["method"] for m in session.outbox] == ["notifications/tools/list_changed"]
        session.outbox.clear()

        # the admin API shows the diff
        response = await api(gateway, "GET", "/servers/files/tools/changes")
        assert response.status == 200, response.body
        [change] = response.json()["changes"]
        assert (change["tool"], change["change"], change["held"]) == ("read", "changed", True)
        assert change["approved"]["approved_by"] == "first-contact"
        assert change["approved"]["digest"] == digest(READ)
        assert change["diff"] == ["description:", "    Read a [-file.-]{+file, quickly.+}"]

        # approving through this gateway's API serves it at once, and clients hear of it
        approved = await api(gateway, "POST", "/servers/files/tools/approve", {"tools": ["read"]})
        assert approved.status == 200, approved.body
        assert approved.json()["approved"] == [
            {
                "tool": "read",
                "change": "changed",
                "digest": change["digest"],
                "previous": digest(READ),
            }
        ]
        assert await tool_names(gateway) == ["files__read", "files__write"]
        assert [m["method"] for m in session.outbox] == ["notifications/tools/list_changed"]
        result = await call(gateway, "files__read", path="/etc/hostname")
        assert result["content"][0]["text"] == "called read"
        assert "heldTools" not in gateway.readiness()["servers"][0]
        assert (await api(gateway, "GET", "/servers/files/tools/changes")).json()["changes"] == []

        trail = await audited(gateway, *PIN_ACTIONS, "admin.tools.approve", "tools/call")
    assert trail == [
        ("pin.recorded", "files", "ok", "gateway"),
        ("pin.changed", "files/read", "ok", "gateway"),
        ("pin.held", "files/read", "denied", "gateway"),
        ("tools/call", "files__read", "denied", "anonymous"),
        ("pin.approved", "files/read", "ok", "anonymous"),
        ("admin.tools.approve", "files", "ok", "anonymous"),
        ("tools/call", "files__read", "ok", "anonymous"),
    ]


async def test_a_rug_pull_is_held_back_and_shown(world: World, database_url: str) -> None:
    """Approved, then its description grows an instruction to the model: held back, and the
    diff shows exactly the words slipped in."""
    async with running(gateway_settings(database_url, "strict")) as gateway:
        assert "files__read" in await tool_names(gateway)
        await change_read(gateway, world, READ["description"] + INJECTED)
        assert "files__read" not in await tool_names(gateway)
        with pytest.raises(ToolHeldBack):
            await call(gateway, "files__read", path="~/.ssh/id_rsa")
        [change] = (await api(gateway, "GET", "/servers/files/tools/changes")).json()["changes"]
        assert change["diff"] == ["description:", "    Read a file.{+" + INJECTED + "+}"]
        assert world.calls == []


async def test_strict_holds_back_new_tools_and_forgets_removed_ones(
    world: World, database_url: str
) -> None:
    async with running(gateway_settings(database_url, "strict")) as gateway:
        world.describe("exfiltrate", "Send data somewhere.")
        del world.tools["write"]
        await world.announce()
        await poll(lambda: gateway.pinning.held_on("files") == {"exfiltrate"})
        assert await tool_names(gateway) == ["files__read"]
        with pytest.raises(ToolHeldBack, match="'exfiltrate' of server 'files' is new since"):
            await call(gateway, "files__exfiltrate")
        [change] = (await api(gateway, "GET", "/servers/files/tools/changes")).json()["changes"]
        assert (change["tool"], change["change"], change["approved"]) == ("exfiltrate", "new", None)
        assert change["diff"] == [
            "description:",
            "    + Send data somewhere.",
            'inputSchema: {"type":"object"}',
        ]
        # the server takes it back before anyone approved it: nothing waits any more
        del world.tools["exfiltrate"]
        await world.announce()
        await poll(lambda: not gateway.pinning.held_on("files"))
        assert (await api(gateway, "GET", "/servers/files/tools/changes")).json()["changes"] == []


async def test_a_server_without_a_namespace_refuses_held_tools_by_name(
    world: World, database_url: str
) -> None:
    async with running(gateway_settings(database_url, "strict", namespace="")) as gateway:
        await change_read(gateway, world, "Read a file, quickly.")
        assert await tool_names(gateway) == ["write"]
        with pytest.raises(ToolHeldBack, match="changed its definition"):
            await call(gateway, "read")


# ---- warn and off ------------------------------------------------------------------------------


async def test_warn_serves_the_change_and_audits_it_once(
    world: World, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(gateway_settings(database_url, "warn")) as gateway:
        with caplog.at_level(logging.WARNING, "catalyst.pinning"):
            await change_read(gateway, world, "Read a file, quickly.")
            await world.announce()  # the same list again: nothing new to say
            await asyncio.sleep(0.05)
        assert await tool_names(gateway) == ["files__read", "files__write"]
        assert (await call(gateway, "files__read", path="x"))["content"][0]["text"] == "called read"
        [change] = (await api(gateway, "GET", "/servers/files/tools/changes")).json()["changes"]
        assert (change["tool"], change["held"]) == ("read", False)
        trail = await audited(gateway, *PIN_ACTIONS)
    assert trail == [
        ("pin.recorded", "files", "ok", "gateway"),
        ("pin.changed", "files/read", "ok", "gateway"),
    ]
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "catalyst.pinning" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1
    assert "tool 'read' changed its definition" in warnings[0]
    assert "served anyway (pin: warn)" in warnings[0]


async def test_off_records_nothing(world: World, database_url: str) -> None:
    async with running(gateway_settings(database_url, "off")) as gateway:
        await tool_names(gateway)
        world.describe("read", "Read a file, quickly.")
        await world.announce()
        await poll(lambda: gateway.registry.items("tools")[0]["description"] != READ["description"])
        assert await tool_names(gateway) == ["files__read", "files__write"]
        assert gateway.pinning.live("files") == []
        assert gateway.db is not None
        assert await PinRepo(gateway.db).servers() == []
        assert await audited(gateway, *PIN_ACTIONS) == []


# ---- approvals elsewhere, restarts ----------------------------------------------------------


async def test_an_approval_made_elsewhere_is_picked_up(world: World, database_url: str) -> None:
    """The CLI (or another instance) approves on the database: the gateway's poll serves it."""
    async with running(gateway_settings(database_url, "strict")) as gateway:
        await change_read(gateway, world, "Read a file, quickly.")
        assert "files__read" not in await tool_names(gateway)
        elsewhere = Database(database_url)
        try:
            await Pinning(elsewhere).approve("files", ["read"], Identity(subject="cli:ada"))
        finally:
            await elsewhere.close()
        await poll(lambda: "read" not in gateway.pinning.held_on("files"), what="the poll")
        assert await tool_names(gateway) == ["files__read", "files__write"]


async def test_pins_survive_a_restart(world: World, database_url: str) -> None:
    settings = gateway_settings(database_url, "strict")
    async with running(settings) as gateway:
        await change_read(gateway, world, "Read a file, quickly.")
    async with running(settings) as gateway:  # the same database; the server still changed
        assert await tool_names(gateway) == ["files__write"]
        with pytest.raises(ToolHeldBack):
            await call(gateway, "files__read")
        trail = await audited(gateway, *PIN_ACTIONS)
    # first contact once, the change audited once (when it was first seen)
    assert trail == [
        ("pin.recorded", "files", "ok", "gateway"),
        ("pin.changed", "files/read", "ok", "gateway"),
        ("pin.held", "files/read", "denied", "gateway"),
    ]


async def test_a_per_user_server_holds_back_too(world: World, database_url: str) -> None:
    settings = gateway_settings(
        database_url, "strict", headers={"Authorization": "Bearer ${secret:TOKEN}"}
    )
    async with running(settings) as gateway:
        assert await tool_names(gateway) == ["files__read", "files__write"]
        await change_read(gateway, world, "Read a file, quickly.")
        assert await tool_names(gateway) == ["files__write"]
        with pytest.raises(ToolHeldBack):
            await call(gateway, "files__read")


# ---- the database cannot be reached ---------------------------------------------------------


@pytest.mark.parametrize("policy", ["strict", "warn"])
async def test_without_the_database_strict_serves_only_what_it_knew(
    world: World, tmp_path: Any, policy: str
) -> None:
    async with running(gateway_settings(f"sqlite:///{tmp_path / 'p.db'}", policy)) as gateway:
        db = gateway.pinning.db
        gateway.pinning.db = None  # as if it could not be reached
        await change_read(gateway, world, "Read a file, quickly.")
        pins = gateway.pinning.live("files")[0]
        assert pins.unverified
        if policy == "warn":
            assert await tool_names(gateway) == ["files__read", "files__write"]
            return
        assert await tool_names(gateway) == ["files__write"]  # write: approved before
        with pytest.raises(ToolHeldBack, match="the database cannot be reached"):
            await call(gateway, "files__read")
        assert "unverified" in gateway.readiness()["servers"][0]["pinning"]
        gateway.pinning.db = db  # back: the poll checks the list again
        await poll(lambda: not pins.unverified, what="checked again")
        assert pins.held["read"].reason == "changed"


async def test_a_strict_server_never_checked_serves_nothing(tmp_path: Any) -> None:
    pins = ToolPins(Pinning(None), "files", "strict")
    assert await pins.review([READ]) == []
    refusal = pins.refusal("read")
    assert refusal is not None and refusal.reason == "unverified"


# ---- the cost of reviews ------------------------------------------------------------------------


async def test_the_same_list_again_asks_the_database_nothing(tmp_path: Any) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    await upgrade(db)
    try:
        pinning = Pinning(db)
        pins = ToolPins(pinning, "files", "strict")
        asked = 0
        observe = PinRepo.observe

        async def counted(self: PinRepo, *args: Any, **kwargs: Any) -> Any:
            nonlocal asked
            asked += 1
            return await observe(self, *args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(PinRepo, "observe", counted)
            tools = [dict(READ), {"name": "write", "description": "w"}]
            assert await pins.review(tools) == tools
            again = [dict(t) for t in tools]  # equal, not the same objects
            assert await pins.review(again) == again
            assert asked == 1
            changed = [{**READ, "description": "other"}, tools[1]]
            assert await pins.review(changed) == [tools[1]]
            assert asked == 2
    finally:
        await db.close()


async def test_a_review_that_fails_is_reported_not_raised() -> None:
    class Broken(Pinning):
        def repo(self) -> PinRepo:
            raise StorageError("cannot connect to the database: connection refused")

    pins = ToolPins(Broken(), "files", "warn")
    assert await pins.review([READ]) == [READ]
    assert pins.unverified and not pins.held


# ---- a server's life ---------------------------------------------------------------------------


async def test_turning_strict_on_holds_back_what_warn_let_through(
    world: World, database_url: str
) -> None:
    async with running(gateway_settings(database_url, "warn")) as gateway:
        await change_read(gateway, world, "Read a file, quickly.")
        assert await tool_names(gateway) == ["files__read", "files__write"]
        old = gateway.registry.provider("files")
        assert await gateway.servers.apply(gateway_settings(database_url, "strict"))
        assert gateway.registry.provider("files") is not old
        assert await tool_names(gateway) == ["files__write"]
        await poll(lambda: len(gateway.pinning.live("files")) == 1, what="the old one forgotten")
        assert gateway.pinning.live("files")[0].policy == "strict"


async def test_a_stopped_server_is_forgotten(world: World, database_url: str) -> None:
    async with running(gateway_settings(database_url, "strict")) as gateway:
        await change_read(gateway, world, "Read a file, quickly.")
        assert gateway.pinning.held_on("files") == {"read"}
        provider = gateway.registry.provider("files")
        assert provider is not None
        await provider.stop()
        assert gateway.pinning.live("files") == []
        assert gateway.pinning.held_on("files") == set()


async def test_definitions_name_the_package_version_they_came_with(
    world: World, tmp_path: Any
) -> None:
    """A server entry made by `catalyst packages`: its lock record names the package version,
    kept with the definitions (and in the audit trail), read again when the lock changes."""
    from catalyst_mcp.packages.lockfile import Lock, LockedPackage, lock_path, write_lock

    config = tmp_path / "catalyst.yaml"
    config.write_text("servers: {}\n", encoding="utf-8")

    def lock(version: str) -> None:
        record = LockedPackage(
            source="npm:@acme/files",
            runtime="npm",
            package="@acme/files",
            version=version,
            command="files-mcp",
            installer="npm",
        )
        write_lock(lock_path(config), Lock(packages={"files": record}))

    lock("1.0.0")
    settings = gateway_settings(f"sqlite:///{tmp_path / 'p.db'}", "strict")
    gateway = Gateway(settings, config_file=config)
    gateway.pinning.poll_seconds = 0.05
    await gateway.start()
    try:
        lock("1.1.0")  # `catalyst packages update`: a new version, and its tool changed
        await change_read(gateway, world, "Read a file, quickly.")
        [change] = (await api(gateway, "GET", "/servers/files/tools/changes")).json()["changes"]
        assert change["package"] == "npm:@acme/files@1.1.0"
        assert change["approved"]["package"] == "npm:@acme/files@1.0.0"
        audit = gateway.access.audit
        assert audit is not None and gateway.db is not None
        await audit.flush()
        from catalyst_mcp.observability.auditsearch import search

        [changed] = await search(gateway.db, action="pin.changed")
        assert changed["detail"]["package"] == "npm:@acme/files@1.1.0"
    finally:
        await gateway.stop()


async def test_a_review_cut_short_by_a_stop_still_audits_what_it_recorded(
    world: World, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short-lived gateway (a CLI command) stops while a changed list is being reviewed: what
    the database recorded is audited too (else no gateway would ever audit that change)."""
    from catalyst_mcp.observability.auditsearch import search

    url = f"sqlite:///{tmp_path / 'p.db'}"
    observe = PinRepo.observe
    started = asyncio.Event()

    async def slow(self: PinRepo, server: str, seen: Any, package: Any = None) -> Any:
        found = await observe(self, server, seen, package)
        if found.recorded:
            started.set()
            await asyncio.sleep(0.3)  # committed; the stop comes now
        return found

    monkeypatch.setattr(PinRepo, "observe", slow)
    async with running(gateway_settings(url, "strict")):
        world.describe("read", "Read a file, quickly.")
        await world.announce()
        await asyncio.wait_for(started.wait(), 10)
    db = Database(url)
    try:
        records = await search(db, action="pin.changed")
        assert [r["target"] for r in records] == ["files/read"]
        assert [c.tool for c in await PinRepo(db).changes("files")] == ["read"]
    finally:
        await db.close()
