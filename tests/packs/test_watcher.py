"""Hot reload with real files: the watcher sees writes, deletes and a folder that comes and goes;
end to end, a connected SDK client hears tools/list_changed and sees the new tool."""

from __future__ import annotations

import contextlib
import copy
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as t
import pytest
from mcp import Client
from mcp.client.subscriptions import ToolsListChanged
from watchfiles import Change

from catalyst_mcp.packs.packset import PackSet
from catalyst_mcp.packs.watcher import PackWatcher
from catalyst_mcp.registry import Registry
from tests.live import live_gateway, poll
from tests.packs.conftest import people_pack, write_pack


@pytest.fixture
def pack(sqlite_db: Path) -> dict[str, Any]:
    return people_pack(f"sqlite:///{sqlite_db}")


def with_tool(pack: dict[str, Any], name: str) -> dict[str, Any]:
    data = copy.deepcopy(pack)
    data["tools"].append(
        {
            "name": name,
            "description": "Everyone's name",
            "sql": {"connection": "db", "statement": "SELECT name FROM people ORDER BY id"},
        }
    )
    return data


@contextlib.asynccontextmanager
async def watching(folder: Path) -> AsyncIterator[tuple[Registry, PackSet, PackWatcher]]:
    registry = Registry()
    packs = PackSet(folder, registry, retire_after=0.0)
    packs.load_all()
    watcher = PackWatcher(packs, poll_seconds=0.05)
    watcher.start()
    try:
        yield registry, packs, watcher
    finally:
        await watcher.stop()
        await packs.close()
        await registry.stop()


def tools(registry: Registry) -> set[str]:
    return {item["name"] for item in registry.items("tools")}


async def test_writes_and_deletes_reach_the_registry(tmp_path: Path, pack: dict[str, Any]) -> None:
    folder = tmp_path / "packs"
    folder.mkdir()
    async with watching(folder) as (registry, packs, watcher):
        await poll(lambda: watcher.watching, what="the watcher is watching")
        file = write_pack(folder, "people.yaml", pack)
        await poll(lambda: "people__find" in tools(registry), what="the new pack")
        write_pack(folder, "people.yaml", "pack: people\ntools: 3\n")
        await poll(lambda: packs.problems, what="the invalid edit reported")
        assert [str(p) for p in packs.problems] == [
            f"{file}:2:1: tools: Input should be a valid list"
        ]
        assert "people__find" in tools(registry)  # the last good version still serves
        write_pack(folder, "people.yaml", with_tool(pack, "names"))
        await poll(lambda: "people__names" in tools(registry), what="the fixed edit")
        assert packs.problems == []
        file.rename(folder / "people.yaml.example")
        await poll(lambda: not tools(registry), what="the pack renamed away")
        assert watcher.watching


async def test_a_folder_that_comes_and_goes(tmp_path: Path, pack: dict[str, Any]) -> None:
    folder = tmp_path / "packs"
    async with watching(folder) as (registry, _packs, watcher):
        folder.mkdir()
        write_pack(folder, "people.yaml", pack)
        await poll(lambda: "people__find" in tools(registry), what="the folder's pack")
        shutil.rmtree(folder)
        await poll(lambda: not tools(registry), what="the pack of the deleted folder gone")
        folder.mkdir()
        write_pack(folder, "people.yaml", with_tool(pack, "names"))
        await poll(lambda: "people__names" in tools(registry), what="the recreated folder's pack")
        await poll(lambda: watcher.watching, what="watching the recreated folder")
        write_pack(folder, "people.yaml", with_tool(pack, "more"))
        await poll(lambda: "people__more" in tools(registry), what="an edit in the new folder")


async def test_a_failed_reload_never_stops_the_watcher(
    tmp_path: Path, pack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "packs"
    folder.mkdir()
    async with watching(folder) as (registry, packs, watcher):
        await poll(lambda: watcher.watching, what="the watcher is watching")
        reload = packs.reload
        failures: list[int] = []

        async def fail_once(changed: Any) -> None:
            if not failures:
                failures.append(1)
                raise RuntimeError("a bug")
            await reload(changed)

        monkeypatch.setattr(packs, "reload", fail_once)
        write_pack(folder, "people.yaml", pack)
        await poll(lambda: failures, what="the failed reload")
        write_pack(folder, "people.yaml", with_tool(pack, "names"))
        await poll(lambda: "people__names" in tools(registry), what="the next reload")


async def test_a_change_while_watching_is_set_up_is_not_lost(
    tmp_path: Path, pack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "packs"
    folder.mkdir()
    registry = Registry()
    packs = PackSet(folder, registry, retire_after=0.0)
    rescan = packs.rescan
    written: list[Path] = []

    async def rescan_then_write() -> None:
        await rescan()
        if not written:  # after the start-up rescan, before notifications are on
            written.append(write_pack(folder, "people.yaml", pack))

    monkeypatch.setattr(packs, "rescan", rescan_then_write)
    watcher = PackWatcher(packs, poll_seconds=0.05)
    watcher.start()
    try:
        await poll(lambda: "people__find" in tools(registry), timeout=5, what="the pack")
    finally:
        await watcher.stop()
        await packs.close()
        await registry.stop()


def test_only_pack_files_of_the_folder_are_watched(tmp_path: Path) -> None:
    folder = tmp_path / "packs"
    watcher = PackWatcher(PackSet(folder, Registry()))
    root = folder.absolute()
    wanted = [root, root / "crm.yaml", root / "crm.yml"]
    ignored = [
        root / "crm.yaml.example",
        root / "crm.yaml~",
        root / ".crm.yaml.swp",
        root / ".#crm.yaml",
        root / "4913",
        root / "crm.db",
        root / "sub" / "crm.yaml",
        tmp_path / "crm.yaml",
    ]
    assert [watcher._wanted(Change.modified, str(p)) for p in wanted] == [True] * 3
    assert [watcher._wanted(Change.modified, str(p)) for p in ignored] == [False] * 8


# ---- end to end: a live gateway and the official SDK client ---------------------------------


class ToolChanges:
    """Counts tools/list_changed notifications a legacy client gets on its GET stream."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, message: Any) -> None:
        if isinstance(message, t.ToolListChangedNotification):
            self.count += 1


@pytest.mark.network
async def test_an_edited_pack_reaches_a_connected_legacy_client(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    folder = tmp_path / "packs"
    folder.mkdir()
    write_pack(folder, "people.yaml", pack)
    changes = ToolChanges()
    async with (
        live_gateway({"packs": {"path": str(folder)}}) as gw,
        Client(
            gw.url, mode="legacy", cache=None, read_timeout_seconds=20, message_handler=changes
        ) as client,
    ):
        watcher = gw.gateway.pack_watcher
        assert watcher is not None
        await poll(lambda: watcher.watching, what="the watcher is watching")
        sessions = gw.gateway.sessions
        await poll(lambda: any(s.listening for s in sessions), what="the client's GET stream")
        before = {tool.name for tool in (await client.list_tools()).tools}
        assert "people__names" not in before
        write_pack(folder, "people.yaml", with_tool(pack, "names"))
        await poll(lambda: changes.count >= 1, what="tools/list_changed")
        after = {tool.name for tool in (await client.list_tools()).tools}
        assert after == before | {"people__names"}
        result = await client.call_tool("people__names", {})
        assert result.structured_content == {
            "rows": [{"name": "Ada"}, {"name": "Grace"}, {"name": "Alan"}],
            "truncated": False,
        }


@pytest.mark.network
async def test_a_pack_problem_and_its_fix_reach_ready_and_modern_listeners(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    folder = tmp_path / "packs"
    folder.mkdir()
    file = write_pack(folder, "people.yaml", pack)
    async with (
        live_gateway({"packs": {"path": str(folder)}}) as gw,
        Client(gw.url, mode="2026-07-28", cache=None, read_timeout_seconds=20) as client,
        client.listen(tools_list_changed=True) as subscription,
    ):
        watcher = gw.gateway.pack_watcher
        assert watcher is not None
        await poll(lambda: watcher.watching, what="the watcher is watching")
        await poll(lambda: gw.gateway.hub.listeners, what="the listen stream")
        write_pack(folder, "people.yaml", "pack: people\ntools: 3\n")
        await poll(lambda: gw.gateway.readiness().get("pack_problems"), what="the problem")
        assert gw.gateway.readiness()["pack_problems"] == [
            f"{file}:2:1: tools: Input should be a valid list"
        ]
        assert gw.gateway.readiness()["status"] == "degraded"
        write_pack(folder, "people.yaml", with_tool(pack, "names"))
        event = await anext(aiter(subscription))
        assert isinstance(event, ToolsListChanged)
        assert "pack_problems" not in gw.gateway.readiness()
        assert gw.gateway.readiness()["status"] == "ready"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "people__names" in names
