"""``catalyst config import``: client config files (Claude Desktop, Cursor, VS Code) to YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_FAILED
from catalyst_mcp.cli.importer import convert, parse_client_config, strip_jsonc
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.settings import load_settings
from tests.cli.helpers import run

CLAUDE = {
    "mcpServers": {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
            "env": {"LOG": "1"},
        },
        "remote_api": {"url": "https://api.example.com/mcp", "headers": {"X-Key": "k"}},
        "old": {"command": "uvx", "args": ["old-server"], "disabled": True, "autoApprove": ["a"]},
    }
}

VSCODE = """\
{
  // VS Code writes JSON with comments
  "inputs": [
    {"type": "promptString", "id": "api-key", "description": "API key", "password": true}
  ],
  "servers": {
    "My Server": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "@acme/mcp"],
      "env": {"API_KEY": "${input:api-key}"},
      "dev": {"watch": "src/**/*.ts"},  /* a VS Code debugging key */
    },
    "github.com/remote": {
      "type": "http",
      "url": "https://mcp.example.com/mcp",
      "headers": {"Authorization": "Bearer ${env:TOKEN}"}
    },
  }
}
"""


def _import(tmp_path: Path, content: str, name: str = "client.json", *args: str) -> Any:
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    return run("config", "import", str(source), *args)


def test_claude_desktop_entries_are_kept_unchanged(tmp_path: Path) -> None:
    result = _import(tmp_path, json.dumps(CLAUDE))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == {"servers": CLAUDE["mcpServers"]}
    assert result.stdout.startswith("# Imported from client.json")
    assert result.stderr == ""


def test_vscode_mcp_json_with_comments_inputs_and_odd_names(tmp_path: Path) -> None:
    result = _import(tmp_path, VSCODE, "mcp.json")
    assert result.exit_code == 0, result.output
    servers = yaml.safe_load(result.stdout)["servers"]
    assert list(servers) == ["My-Server", "github-com-remote"]
    assert servers["My-Server"] == {
        "type": "stdio",
        "command": "npx",
        "args": ["-y", "@acme/mcp"],
        "env": {"API_KEY": "${API_KEY}"},
    }
    assert servers["github-com-remote"]["type"] == "http"
    assert servers["github-com-remote"]["headers"] == {"Authorization": "Bearer ${TOKEN}"}
    notes = result.stderr.splitlines()
    assert "note: renamed server 'My Server' to 'My-Server'" in notes[0]
    assert "note: server 'My-Server': dropped 'dev' (not a Catalyst setting)" in notes
    assert (
        "note: server 'My-Server': env.API_KEY: VS Code input 'api-key' (API key) written as "
        "${API_KEY}" in notes
    )
    assert (
        "note: server 'github-com-remote': headers.Authorization: ${env:TOKEN} written as "
        "${TOKEN}" in notes
    )


def test_the_output_is_a_loadable_catalyst_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("API_KEY", raising=False)
    monkeypatch.setenv("TOKEN", "set")
    output = tmp_path / "catalyst.yaml"
    result = _import(tmp_path, VSCODE, "mcp.json", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote {output} (2 servers)" in result.stderr
    assert "the config reads API_KEY from the environment" in result.stderr
    settings = load_settings(output, environ={"API_KEY": "k", "TOKEN": "t"})
    assert settings.servers["My-Server"].env == {"API_KEY": "k"}
    assert settings.servers["My-Server"].kind == "stdio"
    assert settings.servers["github-com-remote"].kind == "streamable-http"


def test_output_is_not_overwritten_without_force(tmp_path: Path) -> None:
    output = tmp_path / "catalyst.yaml"
    output.write_text("keep: me\n", encoding="utf-8")
    result = _import(tmp_path, json.dumps(CLAUDE), "c.json", "-o", str(output))
    assert result.exit_code == EXIT_FAILED
    assert "already exists; use --force" in result.stderr
    assert output.read_text(encoding="utf-8") == "keep: me\n"
    result = _import(tmp_path, json.dumps(CLAUDE), "c.json", "-o", str(output), "--force")
    assert result.exit_code == 0
    assert "filesystem" in yaml.safe_load(output.read_text(encoding="utf-8"))["servers"]


def test_invalid_entries_are_reported_with_the_input_line(tmp_path: Path) -> None:
    content = (
        '{\n  "mcpServers": {\n    "good": {"command": "npx"},\n'
        '    "bad": {"args": ["x"]},\n    "worse": {"command": "a", "url": "http://x/mcp"}\n'
        "  }\n}\n"
    )
    output = tmp_path / "out.yaml"
    result = _import(tmp_path, content, "c.json", "-o", str(output))
    assert result.exit_code == EXIT_CONFIG
    source = tmp_path / "c.json"
    assert f"{source}:4: servers.bad: needs 'command'" in result.stderr
    assert f"{source}:5: servers.worse: give either 'command'" in result.stderr
    assert not output.exists()


def test_renamed_servers_keep_their_input_lines(tmp_path: Path) -> None:
    content = '{"servers": {\n"a b": {"type": "sse"}\n}}'
    result = _import(tmp_path, content)
    assert result.exit_code == EXIT_CONFIG
    assert f"{tmp_path / 'client.json'}:2: servers.a-b: needs 'command'" in result.stderr


def test_other_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALYST_TEST_HOME", "/home/x")
    entry = {
        "command": "srv",
        "args": ["${workspaceFolder}/src", "${CATALYST_TEST_HOME}", "${VAR:-default}", "$${LIT}"],
        "description": "${input:not-expanded-here}",
    }
    result = _import(tmp_path, json.dumps({"mcpServers": {"s": entry}}))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["servers"]["s"] == entry
    notes = result.stderr.splitlines()
    assert "note: server 's': args[2] contains ${VAR:-default}, which Catalyst passes" in notes[0]
    assert notes[1] == (
        "note: the config reads workspaceFolder from the environment when it is loaded (not set "
        "here): set them for `catalyst serve`; replace the VS Code variable(s) workspaceFolder "
        "with values"
    )
    assert len(notes) == 2


def test_windsurf_server_url_becomes_url(tmp_path: Path) -> None:
    content = json.dumps({"mcpServers": {"w": {"serverUrl": "https://w.example.com/sse"}}})
    result = _import(tmp_path, content)
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["servers"] == {"w": {"url": "https://w.example.com/sse"}}
    assert "note: server 'w': 'serverUrl' written as 'url'" in result.stderr


def test_vscode_settings_json_nesting(tmp_path: Path) -> None:
    content = json.dumps({"editor.fontSize": 12, "mcp": {"servers": {"s": {"command": "x"}}}})
    result = _import(tmp_path, content)
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout) == {"servers": {"s": {"command": "x"}}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "the top level must be a JSON object"),
        ('{"other": {}}', 'no "mcpServers" or "servers" object'),
        ('{"mcpServers": {}, "servers": {}}', "both mcpServers and servers are present"),
        ('{"mcpServers": [1]}', "must be an object of servers by name"),
    ],
    ids=["syntax", "array", "no-section", "two-sections", "section-array"],
)
def test_files_that_are_not_client_configs(tmp_path: Path, content: str, message: str) -> None:
    result = _import(tmp_path, content)
    assert result.exit_code == EXIT_CONFIG
    assert message in result.stderr


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("config", "import", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_empty_server_list_is_noted(tmp_path: Path) -> None:
    result = _import(tmp_path, '{"mcpServers": {}}')
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout) == {"servers": {}}
    assert "no servers found" in result.stderr


# ---- the pieces ------------------------------------------------------------------------------


def test_strip_jsonc_keeps_strings_and_lines() -> None:
    text = '{\n "a": "http://x//y", // c\n /* x\n y */ "b": [1, 2,],\n "c": "a,}" ,\n}'
    cleaned = strip_jsonc(text)
    assert json.loads(cleaned) == {"a": "http://x//y", "b": [1, 2], "c": "a,}"}
    assert cleaned.count("\n") == text.count("\n")


def test_name_collisions_after_renaming_get_a_suffix() -> None:
    data = json.dumps({"mcpServers": {"a-b": {"command": "x"}, "a b": {"command": "y"}}})
    conversion = convert(parse_client_config(data, "f.json"))
    assert list(conversion.servers) == ["a-b", "a-b-2"]


def test_json_syntax_errors_have_a_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_client_config('{\n"a": 1,\n"b": }', "f.json")
    assert caught.value.problems[0].line == 3


LIBRECHAT = """\
# librechat.yaml: the rest of LibreChat's settings sit next to mcpServers
version: 1.2.1
mcpServers:
  catalyst:
    type: streamable-http
    url: http://127.0.0.1:8765/mcp
    headers:
      Authorization: "Bearer ${CATALYST_API_KEY}"
    serverInstructions: true
  files:
    type: stdio
    command: npx
    args: ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]
"""


def test_librechat_yaml(tmp_path: Path) -> None:
    result = _import(tmp_path, LIBRECHAT, "librechat.yaml")
    assert result.exit_code == 0, result.output
    servers = yaml.safe_load(result.stdout)["servers"]
    assert servers["catalyst"] == {
        "type": "streamable-http",
        "url": "http://127.0.0.1:8765/mcp",
        "headers": {"Authorization": "Bearer ${CATALYST_API_KEY}"},
    }
    assert servers["files"]["command"] == "npx"
    assert "note: server 'catalyst': dropped 'serverInstructions'" in result.stderr
    bad = _import(tmp_path, "mcpServers:\n  x:\n    url: 5\n", "broken.yml")
    assert bad.exit_code == EXIT_CONFIG
    assert "broken.yml:3: servers.x.url:" in bad.stderr
