"""``catalyst packages``: tables and JSON, exit codes, one error line, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from catalyst_mcp.cli.common import EXIT_CONNECT, EXIT_FAILED
from tests.cli.helpers import run
from tests.conftest import free_port
from tests.packages.conftest import NPM_NAME, Registries, need_npm, registries

__all__ = ["need_npm", "registries"]  # fixtures used here


def test_search_offline_table_and_json() -> None:
    result = run("packages", "search", "brave", "--offline")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "VERSION", "RUNTIME", "TRANSPORT", "INPUTS", "INSTALLED"]
    assert row.split()[:6] == [
        "io.github.brave/brave-search-mcp-server",
        "2.1.4",
        "npm",
        "stdio",
        "BRAVE_API_KEY*",
        "-",
    ]
    assert "catalog: the bundled catalog snapshot" in result.stderr
    result = run("packages", "search", "time", "--offline", "--json")
    data = json.loads(result.stdout)
    assert data["catalog"] == "bundled"
    names = [s["name"] for s in data["servers"]]
    assert "io.github.modelcontextprotocol/server-time" in names


def test_show_and_a_missing_server() -> None:
    result = run("packages", "show", "github", "--offline")
    assert result.exit_code == 0, result.output
    assert "env GITHUB_PERSONAL_ACCESS_TOKEN (required, secret)" in result.stdout
    result = run("packages", "show", "no-such-server", "--offline")
    assert result.exit_code == EXIT_FAILED
    assert result.stderr.startswith("error: no server 'no-such-server'")


@pytest.mark.network
def test_an_unreachable_registry_exits_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALYST_PACKAGES__NPM_REGISTRY_URL", f"http://127.0.0.1:{free_port()}/")
    monkeypatch.setenv("CATALYST_PACKAGES__DIR", str(tmp_path / "p"))
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    result = run("packages", "install", "npm:left-pad", "--config", str(tmp_path / "c.yaml"))
    assert result.exit_code == EXIT_CONNECT, result.output
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: npm cannot reach its registry for left-pad (ECONNREFUSED): ")
    assert "Traceback" not in result.output


@pytest.mark.network
@pytest.mark.subprocess
@pytest.mark.usefixtures("need_npm")
def test_install_list_conflict_remove(
    registries: Registries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in registries.environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CATALYST_PACKAGES__DIR", str(tmp_path / "packages"))
    monkeypatch.setenv("CATALYST_PACKAGES__NPM_REGISTRY_URL", registries.server.url)
    config = tmp_path / "catalyst.yaml"
    config.write_text("# mine\nservers: {}\n")
    result = run(
        "packages",
        "install",
        f"npm:{NPM_NAME}@1.0.0",
        "--config",
        str(config),
        "--env",
        "DEMO_MODE=fast",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("installed demo: @demo/mcp-server 1.0.0 (npm, pinned")
    assert "installing @demo/mcp-server 1.0.0 with npm" in result.stderr  # progress
    entry = yaml.safe_load(config.read_text())["servers"]["demo"]
    assert entry["env"] == {"DEMO_MODE": "fast"}
    assert config.read_text().startswith("# mine\n")
    again = run("packages", "install", f"npm:{NPM_NAME}", "--config", str(config))
    assert again.exit_code == EXIT_FAILED
    assert "'demo' is already installed" in again.stderr
    listed = run("packages", "list", "--config", str(config))
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[1].split()[:6] == [
        "demo",
        NPM_NAME,
        "1.0.0",
        "npm",
        "yes",
        "ok",
    ]
    removed = run("packages", "remove", "demo", "--config", str(config))
    assert removed.exit_code == 0, removed.output
    assert yaml.safe_load(config.read_text())["servers"] == {}
    assert json.loads((tmp_path / "catalyst.lock").read_text())["packages"] == {}
    assert not list((tmp_path / "packages").rglob("*.js"))
    gone = run("packages", "remove", "demo", "--config", str(config))
    assert gone.exit_code == EXIT_FAILED and "no installed package 'demo'" in gone.stderr
