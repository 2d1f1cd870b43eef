"""``catalyst clients export|list`` with a temporary HOME: each client's file written and read
back, other entries kept, backups, refusals, and every exported file importing back."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalyst_mcp.cli.clientformats import CLIENTS, Endpoint, same_url
from catalyst_mcp.cli.configfiles import MergeError, merge_entry
from tests.cli.helpers import run, write_config

URL = "http://127.0.0.1:8765/mcp"
KEY = "cat_abcdefgh_not-a-real-key-but-shaped-like-one"
FILES = {
    "claude-desktop": ".config/Claude/claude_desktop_config.json",
    "cursor": ".cursor/mcp.json",
    "vscode": ".config/Code/User/mcp.json",
    "windsurf": ".codeium/windsurf/mcp_config.json",
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary HOME (and working folder) for the clients' files."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("CATALYST_API_KEY", raising=False)
    monkeypatch.delenv("CATALYST_CONFIG", raising=False)
    monkeypatch.chdir(work)
    return home


def auth_config(path: Path) -> Path:
    return write_config(path, {}, auth={"enabled": True}, gateway={"port": 8765})


def client_file(home: Path, client: str) -> Path:
    if client == "librechat":
        return Path.cwd() / "librechat.yaml"
    return home / FILES[client]


def load(path: Path) -> Any:
    text = path.read_text()
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


# ---- the snippets ----------------------------------------------------------------------------


def test_each_format_points_at_the_gateway_with_a_key_reference(home: Path) -> None:
    config = auth_config(home / "catalyst.yaml")
    shown = {}
    for client in CLIENTS:
        result = run("clients", "export", client, "--config", str(config))
        assert result.exit_code == 0, result.stderr
        shown[client] = result.stdout
    assert json.loads(shown["cursor"]) == {
        "mcpServers": {
            "catalyst": {
                "url": URL,
                "headers": {"Authorization": "Bearer ${env:CATALYST_API_KEY}"},
            }
        }
    }
    assert json.loads(shown["windsurf"])["mcpServers"]["catalyst"] == {
        "serverUrl": URL,
        "headers": {"Authorization": "Bearer ${env:CATALYST_API_KEY}"},
    }
    vscode = json.loads(shown["vscode"])
    assert vscode["servers"]["catalyst"] == {
        "type": "http",
        "url": URL,
        "headers": {"Authorization": "Bearer ${input:catalyst-api-key}"},
    }
    assert vscode["inputs"] == [
        {
            "type": "promptString",
            "id": "catalyst-api-key",
            "description": "Catalyst API key",
            "password": True,
        }
    ]
    claude = json.loads(shown["claude-desktop"])["mcpServers"]["catalyst"]
    assert claude == {
        "command": "npx",
        "args": [
            "-y",
            "mcp-remote",
            URL,
            "--header",
            "Authorization:Bearer ${CATALYST_API_KEY}",
        ],
    }
    assert yaml.safe_load(shown["librechat"]) == {
        "mcpServers": {
            "catalyst": {
                "type": "streamable-http",
                "url": URL,
                "headers": {"Authorization": "Bearer ${CATALYST_API_KEY}"},
            }
        }
    }


def test_no_key_without_auth_and_the_url_option(home: Path) -> None:
    result = run("clients", "export", "cursor", "--url", "https://mcp.example.com/mcp")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["mcpServers"]["catalyst"] == {
        "url": "https://mcp.example.com/mcp"
    }
    remote = run("clients", "export", "claude-desktop", "--url", "http://10.0.0.5:8765/mcp")
    assert "--allow-http" in json.loads(remote.stdout)["mcpServers"]["catalyst"]["args"]
    resource = write_config(
        home / "c.yaml", {}, auth={"enabled": True, "resource_url": "https://gw.example/mcp"}
    )
    public = run("clients", "export", "windsurf", "--config", str(resource))
    assert json.loads(public.stdout)["mcpServers"]["catalyst"]["serverUrl"] == (
        "https://gw.example/mcp"
    )


def test_stdio_runs_this_catalyst_with_the_config(home: Path) -> None:
    config = auth_config(home / "catalyst.yaml")
    result = run("clients", "export", "vscode", "--transport", "stdio", "--config", str(config))
    assert result.exit_code == 0, result.stderr
    entry = json.loads(result.stdout)["servers"]["catalyst"]
    assert entry["type"] == "stdio"
    assert Path(entry["command"]).is_absolute()
    assert Path(entry["command"]).name == "catalyst"
    assert entry["args"] == ["serve", "--stdio", "--config", str(config.resolve())]
    assert "inputs" not in json.loads(result.stdout)
    missing = run("clients", "export", "cursor", "--transport", "stdio")
    assert missing.exit_code == 2
    assert "give --config" in missing.stderr
    broken = home / "broken.yaml"
    broken.write_text("gateway:\n  port: lots\n")
    invalid = run("clients", "export", "cursor", "--transport", "stdio", "--config", str(broken))
    assert invalid.exit_code == 3


def test_inline_key_is_written_with_a_warning_and_a_private_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = auth_config(home / "catalyst.yaml")
    monkeypatch.setenv("CATALYST_API_KEY", KEY)
    result = run("clients", "export", "cursor", "--config", str(config), "--inline-key", "--write")
    assert result.exit_code == 0, result.stderr
    assert "warning: the API key is written in clear" in result.stderr
    path = home / FILES["cursor"]
    entry = load(path)["mcpServers"]["catalyst"]
    assert entry["headers"] == {"Authorization": f"Bearer {KEY}"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.delenv("CATALYST_API_KEY")
    asked = run(
        "clients",
        "export",
        "claude-desktop",
        "--config",
        str(config),
        "--inline-key",
        input=f"{KEY}\n",
    )
    assert asked.exit_code == 0, asked.stderr
    claude = json.loads(asked.stdout[asked.stdout.index("{") :])["mcpServers"]["catalyst"]
    assert claude["env"] == {"CATALYST_API_KEY": KEY}
    vscode = run(
        "clients", "export", "vscode", "--config", str(config), "--inline-key", input=f"{KEY}\n"
    )
    assert "inputs" not in json.loads(vscode.stdout[vscode.stdout.index("{") :])


def test_without_inline_key_the_value_never_appears(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = auth_config(home / "catalyst.yaml")
    monkeypatch.setenv("CATALYST_API_KEY", KEY)
    for client in CLIENTS:
        result = run("clients", "export", client, "--config", str(config), "--write")
        assert result.exit_code == 0, result.stderr
        assert KEY not in result.output
        assert KEY not in client_file(home, client).read_text()


# ---- writing into the real files -----------------------------------------------------------


@pytest.mark.parametrize("client", list(FILES))
def test_merging_keeps_other_entries_backs_up_and_refuses_to_overwrite(
    home: Path, client: str
) -> None:
    spec = CLIENTS[client]
    path = home / FILES[client]
    path.parent.mkdir(parents=True)
    other = {"command": "npx", "args": ["-y", "other-server"]}
    before: dict[str, Any] = {spec.section: {"other": other}, "theme": "dark"}
    if client == "vscode":
        before["inputs"] = [{"type": "promptString", "id": "other-key", "description": "x"}]
    path.write_text(json.dumps(before))
    config = auth_config(home / "catalyst.yaml")

    added = run("clients", "export", client, "--config", str(config), "--write")
    assert added.exit_code == 0, added.stderr
    assert f"added {spec.title} entry 'catalyst' in ~/{FILES[client]} (backup: ~/" in added.stdout
    after = load(path)
    assert after[spec.section]["other"] == other
    assert after["theme"] == "dark"
    assert after[spec.section]["catalyst"] == spec.entry(
        Endpoint("http", url=URL, key_env="CATALYST_API_KEY")
    )
    if client == "vscode":
        assert [i["id"] for i in after["inputs"]] == ["other-key", "catalyst-api-key"]
    backups = list(path.parent.glob(f"{path.name}.bak-*"))
    assert len(backups) == 1
    assert json.loads(backups[0].read_text()) == before
    assert not list(path.parent.glob(f".{path.name}.*"))  # no temporary file left

    again = run("clients", "export", client, "--config", str(config), "--write")
    assert again.exit_code == 0
    assert "already has this entry 'catalyst': nothing changed" in again.stdout

    moved = ["--url", "http://127.0.0.1:9999/mcp"]
    refused = run("clients", "export", client, *moved, "--write")
    assert refused.exit_code == 1
    assert "already has a server 'catalyst'; --force replaces it" in refused.stderr
    assert load(path) == after

    forced = run("clients", "export", client, *moved, "--write", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert "replaced" in forced.stdout
    assert load(path)[spec.section]["other"] == other
    assert len(list(path.parent.glob(f"{path.name}.bak-*"))) == 2

    named = run("clients", "export", client, "--config", str(config), "--write", "--name", "gw2")
    assert named.exit_code == 0
    assert set(load(path)[spec.section]) == {"other", "catalyst", "gw2"}


def test_workspace_files_and_comments(home: Path) -> None:
    folder = Path.cwd() / ".vscode"
    folder.mkdir()
    (folder / "mcp.json").write_text('{\n  // mine\n  "servers": {"a": {"command": "x"},},\n}\n')
    result = run("clients", "export", "vscode", "--workspace", "--write")
    assert result.exit_code == 0, result.stderr
    assert "note: " in result.stderr and "had comments or trailing commas, which are not kept" in (
        result.stderr
    )
    assert set(load(folder / "mcp.json")["servers"]) == {"a", "catalyst"}
    assert "// mine" in next(folder.glob("mcp.json.bak-*")).read_text()
    created = run("clients", "export", "cursor", "--workspace", "--write")
    assert "in created .cursor/mcp.json" in created.stdout or "created" in created.stdout
    assert load(Path.cwd() / ".cursor" / "mcp.json")["mcpServers"]["catalyst"]["url"] == URL
    nope = run("clients", "export", "windsurf", "--workspace", "--write")
    assert nope.exit_code == 2
    assert "windsurf has no per-project config file" in nope.stderr


def test_unreadable_files_are_not_touched(home: Path) -> None:
    path = home / FILES["cursor"]
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {')
    result = run("clients", "export", "cursor", "--write")
    assert result.exit_code == 3
    assert "mcp.json:1: not valid JSON" in result.stderr
    assert path.read_text() == '{"mcpServers": {'
    assert not list(path.parent.glob("mcp.json.bak-*"))


LIBRECHAT = """\
# LibreChat configuration
version: 1.2.1

endpoints:
  custom: []   # keep me

mcpServers:
  # the filesystem server
  files:
    type: stdio
    command: npx
    args:
      - -y
      - "@modelcontextprotocol/server-filesystem"

  # a comment about the next one
  other:
    url: http://other/mcp
interface:
  mcpServers:
    placeholder: "MCP"
"""


def test_librechat_yaml_is_edited_as_text(home: Path) -> None:
    path = Path.cwd() / "librechat.yaml"
    path.write_text(LIBRECHAT)
    config = auth_config(home / "catalyst.yaml")
    result = run("clients", "export", "librechat", "--config", str(config), "--write")
    assert result.exit_code == 0, result.stderr
    text = path.read_text()
    assert text == LIBRECHAT.replace(
        "mcpServers:\n  # the filesystem",
        "mcpServers:\n  catalyst:\n    type: streamable-http\n    url: " + URL + "\n"
        "    headers:\n      Authorization: Bearer ${CATALYST_API_KEY}\n  # the filesystem",
    )
    moved = run("clients", "export", "librechat", "--url", "http://gw:1/mcp", "--write", "--force")
    assert moved.exit_code == 0, moved.stderr
    replaced = path.read_text()
    assert "url: http://gw:1/mcp\n  # the filesystem server\n  files:" in replaced
    assert "# a comment about the next one\n  other:" in replaced
    assert yaml.safe_load(replaced)["mcpServers"]["catalyst"] == {
        "type": "streamable-http",
        "url": "http://gw:1/mcp",
    }
    # a file without the section gets it at the end
    plain = Path.cwd() / "plain.yaml"
    plain.write_text("version: 1.2.1\n# end")
    appended = run("clients", "export", "librechat", "--file", str(plain), "--write")
    assert appended.exit_code == 0, appended.stderr
    assert plain.read_text().startswith("version: 1.2.1\n# end\n\nmcpServers:\n  catalyst:\n")
    flow = Path.cwd() / "flow.yaml"
    flow.write_text("mcpServers: {a: {command: x}}\n")
    refused = run("clients", "export", "librechat", "--file", str(flow), "--write")
    assert refused.exit_code == 3
    assert "not written as a block" in refused.stderr
    assert flow.read_text() == "mcpServers: {a: {command: x}}\n"


def test_a_failed_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {}}')

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        merge_entry(path, "mcpServers", "catalyst", {"url": URL})
    assert path.read_text() == '{"mcpServers": {}}'
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("mcp.json.bak")] == [
        "mcp.json"
    ]
    path.write_text('{"servers": []}')
    with pytest.raises(MergeError, match="'servers' is not an object"):
        merge_entry(path, "servers", "catalyst", {"url": URL})


# ---- list ------------------------------------------------------------------------------------


def test_list_shows_which_clients_use_this_gateway(home: Path) -> None:
    config = auth_config(home / "catalyst.yaml")
    empty = run("clients", "list", "--config", str(config))
    assert empty.exit_code == 0
    assert "gateway: http://127.0.0.1:8765/mcp" in empty.stdout
    assert empty.stdout.count("no file") == 7
    run("clients", "export", "cursor", "--config", str(config), "--write")
    run("clients", "export", "claude-desktop", "--config", str(config), "--write")
    run("clients", "export", "vscode", "--transport", "stdio", "--config", str(config), "--write")
    run("clients", "export", "windsurf", "--url", "http://elsewhere:1/mcp", "--write")
    librechat = Path.cwd() / "librechat.yaml"
    librechat.write_text("mcpServers:\n  other:\n    command: x\n")
    broken = Path.cwd() / ".cursor" / "mcp.json"
    broken.parent.mkdir()
    broken.write_text("{oops")

    result = run("clients", "list", "--config", str(config), "--json")
    assert result.exit_code == 0, result.stderr
    rows = {(r["client"], r["file"]): r for r in json.loads(result.stdout)["files"]}
    cursor = rows[("cursor", str(home / FILES["cursor"]))]
    assert (cursor["status"], cursor["entry"], cursor["target"]) == ("configured", "catalyst", URL)
    claude = rows[("claude-desktop", str(home / FILES["claude-desktop"]))]
    assert (claude["status"], claude["transport"]) == ("configured", "mcp-remote")
    vscode = rows[("vscode", str(home / FILES["vscode"]))]
    assert vscode["status"] == "configured"
    assert vscode["target"] == f"catalyst serve --stdio, config {config.resolve()}"
    windsurf = rows[("windsurf", str(home / FILES["windsurf"]))]
    assert (windsurf["status"], windsurf["target"]) == (
        "points elsewhere",
        "http://elsewhere:1/mcp",
    )
    assert rows[("librechat", str(librechat))]["status"] == "not configured"
    assert rows[("cursor", str(broken))]["status"] == "unreadable"
    assert rows[("vscode", str(Path.cwd() / ".vscode" / "mcp.json"))]["status"] == "no file"
    table = run("clients", "list", "--config", str(config)).stdout
    assert "cursor          configured        catalyst  http" in table
    assert "~/.cursor/mcp.json" in table


def test_same_url() -> None:
    assert same_url("http://localhost:8765/mcp/", "http://127.0.0.1:8765/mcp")
    assert same_url("HTTPS://Example.com/mcp", "https://example.com:443/mcp")
    assert not same_url("http://127.0.0.1:8765/mcp", "http://127.0.0.1:8766/mcp")
    assert not same_url("http://[bad/mcp", "http://127.0.0.1/mcp")


# ---- back through the importer -------------------------------------------------------------


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("transport", ["http", "stdio"])
def test_every_exported_file_imports_back(home: Path, client: str, transport: str) -> None:
    config = auth_config(home / "catalyst.yaml")
    written = run(
        "clients", "export", client, "--transport", transport, "--config", str(config), "--write"
    )
    assert written.exit_code == 0, written.stderr
    imported = run("config", "import", str(client_file(home, client)))
    assert imported.exit_code == 0, imported.stderr
    server = yaml.safe_load(imported.stdout)["servers"]["catalyst"]
    if transport == "stdio":
        assert server["args"] == ["serve", "--stdio", "--config", str(config.resolve())]
    elif client == "claude-desktop":
        assert server["command"] == "npx"
        assert URL in server["args"]
        assert "Authorization:Bearer ${CATALYST_API_KEY}" in server["args"]
    else:
        assert server["url"] == URL
        assert server["headers"] == {"Authorization": "Bearer ${CATALYST_API_KEY}"}
