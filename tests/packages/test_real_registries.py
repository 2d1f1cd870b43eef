"""Real packages from the real registries: `@modelcontextprotocol/server-memory` from npm and
`mcp-server-time` from PyPI installed with `catalyst packages install`, called through the
gateway with the written config; `sync` reproduces them from the lock in a fresh state folder;
a tampered hash in the lock is refused."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from catalyst_mcp.cli.common import EXIT_FAILED
from tests.cli.helpers import run
from tests.conftest import have, require_or_skip

pytestmark = [pytest.mark.registries, pytest.mark.subprocess, pytest.mark.network]

MEMORY = "io.github.modelcontextprotocol/server-memory"
TIME = "io.github.modelcontextprotocol/server-time"


def _reachable(host: str) -> bool:
    """Whether ``host``:443 accepts a connection (the registries are on the internet)."""
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError:
        return False
    return True


def _call(config: Path, tool: str, arguments: dict[str, str]) -> dict[str, object]:
    result = run(
        "tools", "call", tool, "--args", json.dumps(arguments), "--config", str(config), "--json"
    )
    assert result.exit_code == 0, result.output
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with catalyst.yaml and catalyst.lock for memory (npm) and time (PyPI)."""
    require_or_skip(have("npm") and have("node"), "npm and node are not installed")
    for host in ("registry.npmjs.org", "pypi.org"):
        require_or_skip(_reachable(host), f"{host} cannot be reached (no network?)")
    home = tmp_path_factory.mktemp("machine-a")
    config = home / "catalyst.yaml"
    config.write_text("# installed by the registries tests\nservers: {}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CATALYST_PACKAGES__DIR", str(home / "packages"))
        for name in (MEMORY, TIME):
            result = run("packages", "install", name, "--offline", "--config", str(config))
            assert result.exit_code == 0, result.output
        yield home


@pytest.mark.timeout(300)
def test_installed_servers_answer_through_the_gateway(installed: Path) -> None:
    config = installed / "catalyst.yaml"
    assert config.read_text().startswith("# installed by the registries tests\n")
    graph = _call(config, "memory__read_graph", {})
    assert graph["structuredContent"] == {"entities": [], "relations": []}
    now = _call(config, "time__get_current_time", {"timezone": "UTC"})
    assert now["structuredContent"]["timezone"] == "UTC"  # type: ignore[index]
    lock = orjson.loads((installed / "catalyst.lock").read_bytes())["packages"]
    assert lock["memory"]["package"] == "@modelcontextprotocol/server-memory"
    assert all(d["integrity"].startswith("sha512-") for d in lock["memory"]["distributions"])
    assert len(lock["memory"]["distributions"]) > 20
    assert all(d["hashes"] for d in lock["time"]["distributions"])


def _copy(installed: Path, to: Path) -> Path:
    to.mkdir()
    for name in ("catalyst.yaml", "catalyst.lock"):
        shutil.copy(installed / name, to / name)
    return to / "catalyst.yaml"


@pytest.mark.timeout(300)
def test_sync_reproduces_them_on_another_machine(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _copy(installed, tmp_path / "machine-b")
    monkeypatch.setenv("CATALYST_PACKAGES__DIR", str(tmp_path / "other-packages"))
    result = run("packages", "sync", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "memory: @modelcontextprotocol/server-memory" in result.stdout
    assert "installed; server entry's command updated" in result.stdout
    assert str(tmp_path / "other-packages") in config.read_text()
    listed = run("packages", "list", "--config", str(config), "--json")
    assert listed.exit_code == 0, listed.output
    assert {r["state"] for r in json.loads(listed.stdout)} == {"ok"}
    now = _call(config, "time__get_current_time", {"timezone": "UTC"})
    assert now["structuredContent"]["timezone"] == "UTC"  # type: ignore[index]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", ["memory", "time"])
def test_a_tampered_lock_is_refused(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    config = _copy(installed, tmp_path / "machine-c")
    lock_file = config.with_name("catalyst.lock")
    lock = orjson.loads(lock_file.read_bytes())
    lock["packages"] = {server: lock["packages"][server]}
    distributions = lock["packages"][server]["distributions"]
    if server == "memory":
        target = next(d for d in distributions if d["path"] == "node_modules/zod")
        target["integrity"] = "sha512-" + "A" * 86 + "=="
        expected = "zod@"
    else:
        target = next(d for d in distributions if d["name"] == "mcp-server-time")
        target["hashes"] = ["sha256:" + "0" * 64]
        expected = "mcp-server-time=="
    lock_file.write_bytes(orjson.dumps(lock, option=orjson.OPT_INDENT_2))
    monkeypatch.setenv("CATALYST_PACKAGES__DIR", str(tmp_path / "packages"))
    result = run("packages", "sync", "--config", str(config))
    assert result.exit_code == EXIT_FAILED
    assert expected in result.stderr and "catalyst.lock" in result.stderr
    assert "Traceback" not in result.output
    assert not list((tmp_path / "packages").rglob("catalyst-package.json"))
