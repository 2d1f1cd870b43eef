"""Editing catalyst.yaml in place: comments and layout kept, refusals, atomic writes."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import yaml

from catalyst_mcp.errors import ConfigError, PackageConflict
from catalyst_mcp.packages.configfile import ConfigFile
from catalyst_mcp.settings import load_settings

ORIGINAL = """\
# the team's gateway
gateway:
    port: 9000      # not the default

servers:
    # the everything server, for demos
    everything:
        command: npx
        args: ["-y", "@modelcontextprotocol/server-everything"]
        env:
            MODE: 'quoted'
    remote:
        url: http://127.0.0.1:1/mcp

# packs come last
packs:
    path: knowledge-packs
"""

ENTRY = {"command": "/opt/p/bin/mcp-server-time", "args": ["--local-timezone", "UTC"]}


def test_adding_keeps_every_line_comment_and_quote(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.yaml"
    path.write_text(ORIGINAL)
    config = ConfigFile(path)
    config.set_server("time", {**ENTRY, "env": {"TOKEN": "${secret:TOKEN}"}})
    config.save()
    text = path.read_text()
    diff = difflib.ndiff(ORIGINAL.splitlines(), text.splitlines())
    added = [line[2:] for line in diff if line.startswith("+ ")]
    assert not [
        line
        for line in difflib.ndiff(ORIGINAL.splitlines(), text.splitlines())
        if line.startswith("- ")
    ]
    assert added == [
        "    time:",
        "        command: /opt/p/bin/mcp-server-time",
        "        args: [--local-timezone, UTC]",
        "        env:",
        "            TOKEN: ${secret:TOKEN}",
    ]
    assert "\n\n# packs come last\npacks:" in text
    settings = load_settings(path, {})
    assert list(settings.servers) == ["everything", "remote", "time"]
    assert settings.servers["time"].args == ["--local-timezone", "UTC"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_an_existing_name_is_refused_unless_replacing(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.yaml"
    path.write_text(ORIGINAL)
    config = ConfigFile(path)
    with pytest.raises(PackageConflict, match="a server named 'everything' is already"):
        config.set_server("everything", ENTRY)
    config.set_server("everything", ENTRY, replace=True)
    config.save()
    data = yaml.safe_load(path.read_text())
    assert data["servers"]["everything"]["command"] == ENTRY["command"]
    assert list(data["servers"]) == ["everything", "remote"]


def test_removing_the_last_entry_keeps_what_followed_it(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.yaml"
    path.write_text(ORIGINAL)
    config = ConfigFile(path)
    config.set_server("time", ENTRY)
    config.save()
    config = ConfigFile(path)
    assert config.remove_server("time") and not config.remove_server("time")
    config.save()
    assert path.read_text() == ORIGINAL


def test_a_new_file_and_a_pasted_mcpservers_key(tmp_path: Path) -> None:
    fresh = tmp_path / "new.yaml"
    config = ConfigFile(fresh)
    config.set_server("time", ENTRY)
    config.save()
    assert yaml.safe_load(fresh.read_text()) == {"servers": {"time": ENTRY}}
    pasted = tmp_path / "pasted.yaml"
    pasted.write_text('mcpServers:\n  a: {"command": "x"}\n')
    config = ConfigFile(pasted)
    config.set_server("time", ENTRY)
    config.save()
    assert list(yaml.safe_load(pasted.read_text())["mcpServers"]) == ["a", "time"]


def test_invalid_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("servers:\n  a: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:"):
        ConfigFile(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        ConfigFile(path)
