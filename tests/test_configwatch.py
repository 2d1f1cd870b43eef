"""Hot reload of catalyst.yaml: edits of ``servers:`` applied, invalid edits refused with
``file:line`` problems while the last good configuration serves, other sections named as
needing a restart; the watcher sees in-place writes, atomic replacements, rapid edits and a
deleted file; the gateway wires it up and reports it in /ready."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalyst_mcp.app import Gateway
from catalyst_mcp.configwatch import ConfigFile
from catalyst_mcp.context import CallContext
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.registry import Registry
from catalyst_mcp.security.injection import SecretInjector
from catalyst_mcp.settings import ServerConfig, Settings, load_settings
from catalyst_mcp.upstreams.serverset import ServerSet
from tests.conftest import EXTRA_UPSTREAM, FIXTURES, stdio_upstream
from tests.fakes import FakeProvider
from tests.fakeservers import FakeServers, entry
from tests.live import poll


def write(path: Path, data: dict[str, Any] | str) -> Path:
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


class Harness:
    """A registry, the fake servers of a config file, and the :class:`ConfigFile`."""

    def __init__(self, file: Path, *others: Provider) -> None:
        self.file = file
        self.registry = Registry()
        for provider in others:
            self.registry.add(provider)
        self.build = FakeServers()
        self.servers = ServerSet(self.registry, 60.0, SecretInjector(), build=self.build)
        settings = load_settings(file)
        self.servers.load(settings)
        self.config = ConfigFile(file, self.servers, settings)
        self.changes: list[set[ListKind]] = []
        self.registry.change_listeners.append(self.changes.append)

    def tools(self) -> set[str]:
        return {item["name"] for item in self.registry.items("tools")}


@contextlib.asynccontextmanager
async def harness(file: Path, *others: Provider) -> AsyncIterator[Harness]:
    h = Harness(file, *others)
    try:
        yield h
    finally:
        await h.servers.close()
        await h.registry.stop()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write(tmp_path / "catalyst.yaml", {"servers": {"a": entry("one"), "b": entry("two")}})


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="catalyst")
    return caplog


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


# ---- applying an edit ------------------------------------------------------------------------


async def test_a_valid_edit_is_applied(config: Path) -> None:
    async with harness(config) as h:
        a = h.servers.providers["a"]
        write(config, {"servers": {"a": entry("one"), "c": entry("three")}})
        await h.config.reload()
        assert h.tools() == {"a__one", "c__three"}
        assert h.servers.providers["a"] is a  # unchanged: left alone
        assert h.changes == [{"tools"}] and h.config.problems == []


async def test_a_reformatted_file_restarts_nothing(config: Path) -> None:
    async with harness(config) as h:
        before = h.servers.providers
        write(
            config,
            "# the same servers, in another order and style\n"
            "servers:\n"
            "  b: {command: fake, args: [two], era: auto}\n"
            "  a:\n"
            "    command: fake\n"
            "    args:\n"
            "      - one\n",
        )
        await h.config.reload()
        assert h.servers.providers == before and h.build.names() == ["a", "b"]
        assert h.changes == []


async def test_an_invalid_edit_keeps_the_last_good_config(
    config: Path, errors: pytest.LogCaptureFixture
) -> None:
    async with harness(config) as h:
        write(
            config,
            "servers:\n"
            "  a: {command: fake, args: [one]}\n"
            "  c:\n"
            "    command: fake\n"
            "    args: 3\n"
            "    retries: 2\n",
        )
        await h.config.reload()
        problems = [
            f"{config}:5: servers.c.args: Input should be a valid list",
            f"{config}:6: servers.c.retries: unknown setting (check the spelling; "
            "`catalyst config init` lists them all)",
        ]
        assert [str(p) for p in h.config.problems] == problems
        assert h.tools() == {"a__one", "b__two"} and h.build.names() == ["a", "b"]
        logged = messages(errors, logging.ERROR)
        assert logged == [f"config problem: {p}" for p in problems]
        assert any("keeps serving its last good configuration" in m for m in errors.messages)
        errors.clear()
        await h.config.reload()  # saved again, still invalid: said once
        assert messages(errors, logging.ERROR) == []
        write(config, {"servers": {"a": entry("one"), "c": entry("three")}})
        await h.config.reload()
        assert h.config.problems == [] and h.tools() == {"a__one", "c__three"}


async def test_an_empty_file_is_a_problem_not_no_servers(config: Path) -> None:
    async with harness(config) as h:
        write(config, "")
        await h.config.reload()
        assert [str(p) for p in h.config.problems] == [
            f"{config}: the file is empty (write `servers: {{}}` to remove every server)"
        ]
        assert h.tools() == {"a__one", "b__two"}
        write(config, "servers: {}\n")
        await h.config.reload()
        assert h.tools() == set() and h.config.problems == []


async def test_environment_references_are_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALYST_TEST_TOOL", "one")
    file = write(tmp_path / "catalyst.yaml", {"servers": {"a": entry("${CATALYST_TEST_TOOL}")}})
    async with harness(file) as h:
        assert h.tools() == {"a__one"}
        monkeypatch.setenv("CATALYST_TEST_TOOL", "two")
        await h.config.reload()  # the file did not change; what it says did
        assert h.tools() == {"a__two"}
        monkeypatch.delenv("CATALYST_TEST_TOOL")
        await h.config.reload()
        assert [str(p) for p in h.config.problems] == [
            f"{file}:2: servers.a: environment variable CATALYST_TEST_TOOL is not set "
            "(referenced as ${CATALYST_TEST_TOOL})"
        ]
        assert h.tools() == {"a__two"}


async def test_a_namespace_a_pack_uses_is_a_problem_and_nothing_changes(config: Path) -> None:
    pack = FakeProvider("pack:people", "people", resources=[], templates=[], prompts=[])
    async with harness(config, pack) as h:
        before = h.tools()
        write(
            config,
            "servers:\n"
            "  a: {command: fake, args: [one]}\n"
            "  c: {command: fake, args: [three]}\n"
            "  people: {command: fake, args: [x]}\n",
        )
        await h.config.reload()
        assert [str(p) for p in h.config.problems] == [
            f"{config}:4: servers.people: not served: namespace 'people' is already used by "
            "pack:people; give the server another `namespace:`"
        ]
        assert h.tools() == before and h.build.names() == ["a", "b"]


async def test_other_sections_are_named_as_needing_a_restart(
    config: Path, errors: pytest.LogCaptureFixture
) -> None:
    async with harness(config) as h:
        data = {
            "gateway": {"port": 9999},
            "auth": {"key_cache_seconds": 5},
            "servers": {"a": entry("one"), "c": entry("three")},
        }
        write(config, data)
        await h.config.reload()
        assert h.tools() == {"a__one", "c__three"}  # servers are applied all the same
        assert h.config.restart_needed == {"auth.key_cache_seconds": 5.0, "gateway.port": 9999}
        warned = messages(errors, logging.WARNING)
        assert warned == [
            f"{name} changed in {config}: it is not applied while the gateway runs; restart "
            "the gateway to apply it"
            for name in ("auth.key_cache_seconds", "gateway.port")
        ]
        errors.clear()
        data["servers"] = {"a": entry("one")}
        write(config, data)
        await h.config.reload()
        assert messages(errors, logging.WARNING) == []  # said once per change
        data["gateway"] = {"port": 8765}  # back to what runs (the default)
        write(config, data)
        await h.config.reload()
        assert h.config.restart_needed == {"auth.key_cache_seconds": 5.0}
        assert f"gateway.port in {config} matches the running gateway again" in errors.messages


async def test_command_line_overrides_are_not_changes(config: Path) -> None:
    registry = Registry()
    servers = ServerSet(registry, 60.0, SecretInjector(), build=FakeServers())
    from_file = load_settings(config)
    running = from_file.model_copy(
        update={"gateway": from_file.gateway.model_copy(update={"port": 1234})}  # --port 1234
    )
    servers.load(running)
    watched = ConfigFile(config, servers, running)
    write(config, {"servers": {"a": entry("one")}})
    await watched.reload()
    assert watched.restart_needed == {}
    await servers.close()
    await registry.stop()


@pytest.fixture
def root_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


async def test_the_log_level_is_applied_live(config: Path, root_level: None) -> None:
    async with harness(config) as h:
        logging.getLogger().setLevel(logging.INFO)
        write(config, {"gateway": {"log_level": "debug"}, "servers": {"a": entry("one")}})
        await h.config.reload()
        assert logging.getLogger().level == logging.DEBUG
        assert h.config.restart_needed == {}


async def test_a_deleted_file_keeps_the_servers(
    config: Path, errors: pytest.LogCaptureFixture
) -> None:
    async with harness(config) as h:
        config.unlink()
        await h.config.reload()
        await h.config.reload()
        assert h.tools() == {"a__one", "b__two"} and h.config.problems == []
        assert messages(errors, logging.WARNING) == [
            f"config file {config} is gone: the gateway keeps serving its last good "
            "configuration (restore the file to apply changes again)"
        ]
        write(config, {"servers": {"a": entry("one")}})
        await h.config.rescan()
        assert h.tools() == {"a__one"}


# ---- watching the file -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def watched(file: Path) -> AsyncIterator[Harness]:
    async with harness(file) as h:
        watcher = h.config.watcher(poll_seconds=0.05)
        watcher.start()
        try:
            await poll(lambda: watcher.watching, what="the watcher is watching")
            yield h
        finally:
            await watcher.stop()


async def test_the_watcher_sees_writes_and_atomic_replacements(config: Path) -> None:
    async with watched(config) as h:
        write(config, {"servers": {"a": entry("one"), "c": entry("three")}})
        await poll(lambda: "c__three" in h.tools(), what="the in-place edit")
        # an editor's save: a temporary file renamed over the config (a new inode)
        temporary = write(config.parent / ".catalyst.yaml.tmp", {"servers": {"d": entry("four")}})
        os.replace(temporary, config)
        await poll(lambda: h.tools() == {"d__four"}, what="the replaced file")
        # other files of the folder are no concern of the watcher
        write(config.parent / "other.yaml", "servers: {}\n")
        write(config.parent / "catalyst.yaml.bak", "servers: {}\n")
        await asyncio.sleep(0.3)
        assert h.tools() == {"d__four"}


async def test_a_linked_file_is_seen_when_the_link_it_goes_through_is_swapped(
    tmp_path: Path,
) -> None:
    # how Kubernetes updates a mounted ConfigMap: catalyst.yaml -> ..data/catalyst.yaml, and
    # ..data is swapped atomically to a new folder
    folder = tmp_path / "config"
    (folder / "..v1").mkdir(parents=True)
    write(folder / "..v1" / "catalyst.yaml", {"servers": {"a": entry("one")}})
    (folder / "..data").symlink_to("..v1")
    config = folder / "catalyst.yaml"
    config.symlink_to("..data/catalyst.yaml")
    async with watched(config) as h:
        assert h.tools() == {"a__one"}
        (folder / "..v2").mkdir()
        write(folder / "..v2" / "catalyst.yaml", {"servers": {"c": entry("three")}})
        (folder / "..data_tmp").symlink_to("..v2")
        os.replace(folder / "..data_tmp", folder / "..data")
        await poll(lambda: h.tools() == {"c__three"}, what="the swapped link")
        reads = h.config.reloads
        write(folder / "unrelated.txt", "x")  # the file the link leads to is the same
        await asyncio.sleep(0.3)
        assert h.config.reloads == reads


async def test_rapid_edits_are_applied_once_and_the_last_one_wins(config: Path) -> None:
    async with watched(config) as h:
        for n in range(1, 6):  # no await in between: one burst of writes
            write(config, {"servers": {"a": entry("one"), f"s{n}": entry(f"t{n}")}})
        await poll(lambda: "s5__t5" in h.tools(), what="the last edit")
        await asyncio.sleep(0.3)
        assert h.tools() == {"a__one", "s5__t5"}
        assert h.build.names() == ["a", "b", "s5"]  # s1..s4 were never started


async def test_the_watcher_keeps_serving_while_the_file_is_gone(
    config: Path, errors: pytest.LogCaptureFixture
) -> None:
    async with watched(config) as h:
        config.unlink()
        await poll(lambda: h.config._gone, what="the deletion noticed")
        assert h.tools() == {"a__one", "b__two"}
        assert any("is gone" in m for m in messages(errors, logging.WARNING))
        write(config, {"servers": {"b": entry("two")}})
        await poll(lambda: h.tools() == {"b__two"}, what="the file back")


# ---- the gateway ---------------------------------------------------------------------------


@pytest.fixture
def fake_servers(monkeypatch: pytest.MonkeyPatch) -> FakeServers:
    build = FakeServers()

    def build_upstream(self: ServerSet, name: str, namespace: str, c: ServerConfig) -> Provider:
        return build(name, namespace, c)

    monkeypatch.setattr(ServerSet, "build_upstream", build_upstream)
    return build


def gateway_settings(**servers: Any) -> dict[str, Any]:
    return {"packs": {"path": None}, "servers": servers}


async def test_the_gateway_watches_its_config_file(config: Path, fake_servers: FakeServers) -> None:
    write(config, gateway_settings(a=entry("one")))
    gateway = Gateway(load_settings(config), config_file=config)
    assert gateway.config_watcher is None
    await gateway.start()
    try:
        watcher = gateway.config_watcher
        assert watcher is not None and watcher.running
        write(config, gateway_settings(a=entry("one"), b=entry("two")))
        await poll(
            lambda: gateway.registry.items("tools") and "b" in gateway.servers.providers,
            what="the added server",
        )
        assert gateway.readiness()["status"] == "ready"
        write(config, "servers:\n  b: {command: fake, args: 2}\n")
        await poll(lambda: gateway.config_problems, what="the invalid edit")
        report = gateway.readiness()
        assert report["status"] == "degraded"
        assert report["config_problems"] == [
            f"{config}:2: servers.b.args: Input should be a valid list"
        ]
        assert "b" in gateway.servers.providers
        write(config, {**gateway_settings(b=entry("two")), "gateway": {"port": 1}})
        await poll(lambda: "a" not in gateway.servers.providers, what="the fixed edit")
        report = gateway.readiness()
        assert report["status"] == "ready" and "config_problems" not in report
        assert report["config_restart_needed"] == ["gateway.port"]
    finally:
        await gateway.stop()
    assert not watcher.running


async def test_a_pack_refused_for_a_removed_servers_namespace_is_served(
    tmp_path: Path, config: Path, fake_servers: FakeServers
) -> None:
    packs = tmp_path / "packs"
    packs.mkdir()
    pack = "pack: notes\nprompts:\n  - name: hello\n    messages: [{role: user, text: Hi}]\n"
    write(packs / "notes.yaml", pack)
    data = {"packs": {"path": str(packs), "watch": False}, "servers": {"notes": entry("one")}}
    write(config, data)
    gateway = Gateway(load_settings(config), config_file=config)
    assert [str(p) for p in gateway.pack_problems] == [
        f"{packs / 'notes.yaml'}: not served: namespace 'notes' is already used"
    ]
    await gateway.start()
    try:
        assert gateway.config is not None
        write(config, {**data, "servers": {}})
        await gateway.config.reload()
        assert gateway.pack_problems == []
        assert [p.name for p in gateway.registry.providers] == ["pack:notes"]
    finally:
        await gateway.stop()


def test_nothing_is_watched_without_a_file_or_with_watching_off(
    config: Path, fake_servers: FakeServers
) -> None:
    assert Gateway(Settings.model_validate(gateway_settings())).config is None
    write(config, {**gateway_settings(), "gateway": {"watch_config": False}})
    assert Gateway(load_settings(config), config_file=config).config is None


# ---- real servers --------------------------------------------------------------------------


def pid_of(gateway: Gateway, name: str) -> int:
    provider: Any = gateway.servers.providers[name]
    pid: int = provider.session.transport.describe()["pid"]
    return pid


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.subprocess
async def test_real_servers_restart_only_when_their_entry_changes(tmp_path: Path) -> None:
    env_server = FIXTURES / "env_server.py"
    config = tmp_path / "catalyst.yaml"
    servers = {
        "a": stdio_upstream(env_server, env={"API_TOKEN": "a"}),
        "b": stdio_upstream(env_server, env={"API_TOKEN": "b"}),
        "io": stdio_upstream(EXTRA_UPSTREAM, era="legacy"),
    }
    write(config, gateway_settings(**servers))
    gateway = Gateway(load_settings(config), config_file=config)
    await gateway.start()
    try:
        pids = {name: pid_of(gateway, name) for name in servers}
        io = gateway.servers.providers["io"]
        ctx = CallContext(era="legacy", protocol_version="2025-11-25", method="tools/call")
        params = {"name": "sleep", "arguments": {"seconds": 5}}
        sleeping = asyncio.create_task(io.call("tools/call", params, ctx))
        await asyncio.sleep(0.3)  # the call is in flight
        # a: the same entry, its keys in another order; b: another environment; io: removed
        edited = {
            "a": dict(reversed(servers["a"].items())),
            "b": {**servers["b"], "env": {"API_TOKEN": "changed"}},
        }
        write(config, gateway_settings(**edited))
        await poll(lambda: "io" not in gateway.servers.providers, timeout=30, what="the edit")
        assert not sleeping.done(), "the call should still be in flight when io is removed"
        assert pid_of(gateway, "a") == pids["a"]
        assert pid_of(gateway, "b") != pids["b"]
        await poll(lambda: not alive(pids["b"]), what="the old process of b stopped")
        result = await sleeping  # io was not stopped under it
        assert result["content"][0]["text"] == "slept"
        await poll(lambda: not alive(pids["io"]), what="the removed server's process stopped")
    finally:
        await gateway.stop()
