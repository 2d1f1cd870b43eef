"""Typed settings: catalyst.yaml, pasted mcpServers blocks, CATALYST_* overrides, and errors
that name every problem with file:line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp import settings as settings_module
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.settings import GatewaySettings, ServerConfig, Settings, load_settings
from catalyst_mcp.yamlsource import load_yaml


def parse(text: str, environ: dict[str, str] | None = None) -> Settings:
    return settings_module.parse_settings(load_yaml(text, "c.yaml"), environ or {})


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, environ)
    return [str(p) for p in caught.value.problems]


def test_defaults() -> None:
    settings = load_settings(None, {})
    gateway = settings.gateway
    assert (gateway.host, gateway.port, gateway.mcp_path) == ("127.0.0.1", 8765, "/mcp")
    assert gateway.legacy_sse is True
    assert gateway.allowed_origins == []
    assert gateway.allow_non_loopback is False
    assert settings.servers == {}


def test_every_field_is_documented() -> None:
    for model in (GatewaySettings, ServerConfig, Settings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.gateway.port = 1  # type: ignore[misc]


def test_mcp_servers_entries_paste_unchanged() -> None:
    settings = parse(
        """\
mcpServers:
  files:
    command: npx
    args: ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
    env: {DEBUG: "1"}
    alwaysAllow: [read_file]
    disabled: true
  remote:
    type: http
    url: https://example.com/mcp
    headers: {Authorization: Bearer x}
  old:
    url: http://127.0.0.1:9/sse
    autoApprove: []
    description: an old server
"""
    )
    files, remote, old = (
        settings.servers["files"],
        settings.servers["remote"],
        settings.servers["old"],
    )
    assert (files.kind, files.command, files.args, files.env) == (
        "stdio",
        "npx",
        ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
        {"DEBUG": "1"},
    )
    assert files.active is False
    assert (remote.kind, remote.transport, remote.headers) == (
        "streamable-http",
        "http",
        {"Authorization": "Bearer x"},
    )
    assert remote.active is True
    assert old.kind == "sse"


def test_servers_and_mcp_servers_together_is_an_error() -> None:
    assert problems("servers: {}\nmcpServers: {}\n") == ["c.yaml:2: give 'servers' or 'mcpServers'"]


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ({"command": "x"}, "stdio"),
        ({"command": "x", "type": "stdio"}, "stdio"),
        ({"url": "http://h/mcp"}, "streamable-http"),
        ({"url": "http://h/sse"}, "sse"),
        ({"url": "http://h/sse/"}, "sse"),
        ({"url": "http://h/sse", "type": "streamable-http"}, "streamable-http"),
        ({"url": "http://h/mcp", "transport": "sse"}, "sse"),
    ],
)
def test_kind_is_inferred(entry: dict[str, Any], kind: str) -> None:
    assert ServerConfig.model_validate(entry).kind == kind


def test_namespace_defaults_to_the_server_name() -> None:
    settings = parse(
        "servers:\n"
        "  a: {command: x}\n"
        "  b: {command: x, namespace: ''}\n"
        "  c: {command: x, namespace: cc}\n"
    )
    assert [settings.namespace_of(n) for n in ("a", "b", "c")] == ["a", "", "cc"]


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {
        "CATALYST_GATEWAY__PORT": "9100",
        "CATALYST_GATEWAY__HOST": "0.0.0.0",
        "CATALYST_GATEWAY__LEGACY_SSE": "false",
        "CATALYST_GATEWAY__ALLOWED_ORIGINS": "[https://a.example, https://b.example]",
        "CATALYST_CONFIG": "/ignored.yaml",
        "CATALYST_SERVERS__X__COMMAND": "from-env",
        "CATALYST_": "ignored",
        "OTHER_GATEWAY__PORT": "1",
    }
    settings = parse("gateway:\n  port: 1000\n", environ)
    assert settings.gateway.port == 9100
    assert settings.gateway.host == "0.0.0.0"
    assert settings.gateway.legacy_sse is False
    assert settings.gateway.allowed_origins == ["https://a.example", "https://b.example"]
    assert settings.servers["x"].command == "from-env"
    monkeypatch.setenv("CATALYST_GATEWAY__PORT", "9200")
    assert load_settings(None).gateway.port == 9200  # os.environ by default


def test_env_override_errors_name_the_environment() -> None:
    found = problems("gateway:\n  port: 1\n", {"CATALYST_GATEWAY__PORT": "many"})
    assert len(found) == 1
    assert found[0].startswith("CATALYST_GATEWAY__PORT: gateway.port:")
    # a variable that names no setting is a warning (tests/test_configsources.py), not an error
    assert parse("", {"CATALYST_GATEWAY__NOPE": "1"}).gateway.port == 8765


def test_env_value_that_is_not_yaml_is_taken_as_text() -> None:
    settings = parse("", {"CATALYST_GATEWAY__HOST": "[::1"})
    assert settings.gateway.host == "[::1"


def test_every_problem_is_reported_with_file_and_line() -> None:
    text = """\
gateway:
  port: 99999
  colour: blue
servers:
  ok: {command: x}
  both:
    command: x
    url: http://h
  neither:
    args: [a]
  bad url:
    url: ftp://h
  badurl:
    url: ftp://h
  stdio-url:
    url: http://h
    type: stdio
  cmd-sse:
    command: x
    type: sse
  weird:
    command: x
    timeout_seconds: -1
    surprise: 1
"""
    found = problems(text)
    assert "c.yaml:2: gateway.port: Input should be less than or equal to 65535" in found
    assert (
        "c.yaml:3: gateway.colour: unknown setting (check the spelling; `catalyst config init` "
        "lists them all)" in found
    )
    assert (
        "c.yaml:6: servers.both: give either 'command' (stdio) or 'url' (remote), not both" in found
    )
    assert (
        "c.yaml:9: servers.neither: needs 'command' (a stdio server), 'url' (a remote "
        "server) or a built-in section (filesystem, database, s3, kubernetes)" in found
    )
    # the value is not echoed: it may come from ${NAME} and carry a secret
    assert (
        "c.yaml:13: servers.badurl: url must start with http://, https://, ws:// or wss://" in found
    )
    assert "c.yaml:15: servers.stdio-url: transport 'stdio' needs a 'command', not a 'url'" in found
    assert "c.yaml:18: servers.cmd-sse: transport 'sse' needs a 'url', not a 'command'" in found
    assert any(p.startswith("c.yaml:23: servers.weird.timeout_seconds:") for p in found)
    assert any(p.startswith("c.yaml:24: servers.weird.surprise: unknown setting") for p in found)
    assert len(found) >= 10


BAD_NAMES = ["bad name", "a__b", "trailing_", "-lead", "dots.here", "ünï", "a--b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_server_names_are_rejected(name: str) -> None:
    found = problems(f"servers:\n  '{name}': {{command: x}}\n")
    assert len(found) == 1
    assert f"server name {name!r} must be letters and digits" in found[0]


@pytest.mark.parametrize("name", BAD_NAMES[:2])
def test_invalid_server_names_point_at_their_line(name: str) -> None:
    found = problems(f"gateway: {{}}\nservers:\n  ok: {{command: x}}\n  '{name}': {{command: x}}\n")
    assert found[0].startswith(f"c.yaml:4: servers.{name}: server name")


def test_invalid_server_names_are_reported_with_other_problems() -> None:
    found = problems(
        "gateway:\n  port: -1\nservers:\n  'a b': {command: x}\n  'c d': {command: x}\n"
    )
    assert len(found) == 3


@pytest.mark.parametrize("name", ["a", "A1", "my-server", "my_server", "a-b_c-d", "x9"])
def test_valid_server_names(name: str) -> None:
    assert name in parse(f"servers:\n  {name}: {{command: x}}\n").servers


@pytest.mark.parametrize("namespace", ["a__b", "x_", "with space"])
def test_invalid_namespaces(namespace: str) -> None:
    found = problems(f"servers:\n  s:\n    command: x\n    namespace: '{namespace}'\n")
    assert found[0].startswith("c.yaml:2: servers.s: namespace")


@pytest.mark.parametrize(
    "text", ["- a\n- b\n", "just text\n", "42\n"], ids=["list", "string", "number"]
)
def test_top_level_must_be_a_mapping(text: str) -> None:
    assert problems(text) == ["c.yaml:1: the top level must be a mapping of sections"]


def test_unknown_top_level_section() -> None:
    assert problems("gatway:\n  port: 1\n")[0].startswith("c.yaml:1: gatway: unknown setting")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.yaml"
    path.write_text("", encoding="utf-8")
    assert load_settings(path, {}) == Settings()


def test_load_settings_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.yaml"
    path.write_text("gateway:\n  port: 9001\nservers:\n  s: {url: 'http://h/mcp', era: legacy}\n")
    settings = load_settings(path, {})
    assert settings.gateway.port == 9001
    assert settings.servers["s"].era == "legacy"
    path.write_text("gateway:\n  port: nine\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert str(caught.value).startswith(f"{path}:2: gateway.port:")


# ---- packs -----------------------------------------------------------------------------------


def test_packs_default_to_a_watched_knowledge_packs_folder() -> None:
    packs = load_settings(None, {}).packs
    assert packs.path == Path("knowledge-packs")
    assert packs.watch is True


def test_packs_can_be_turned_off_or_loaded_once() -> None:
    assert parse("packs: {path: null}").packs.path is None
    settings = parse("packs:\n  path: /srv/packs\n  watch: false\n")
    assert (settings.packs.path, settings.packs.watch) == (Path("/srv/packs"), False)
    assert problems("packs: {watch: sometimes}") == [
        "c.yaml:1: packs.watch: Input should be a valid boolean, unable to interpret input"
    ]


def test_the_template_shows_every_packs_setting_with_its_default() -> None:
    from catalyst_mcp.cli.config import default_config_text
    from catalyst_mcp.settings import PacksSettings

    template = default_config_text()
    section = template[template.index("\npacks:\n") :].split("\n\n# ")[0]
    shown = dict(re.findall(r"^  (?:# )?([a-z_]+): (\S+)$", section, flags=re.MULTILINE))
    assert set(shown) == set(PacksSettings.model_fields)
    data = parse("packs:\n" + "".join(f"  {k}: {v}\n" for k, v in shown.items())).packs
    assert data == PacksSettings()


def test_the_default_database_is_in_the_users_state_folder() -> None:
    from catalyst_mcp.settings import StorageSettings

    storage = StorageSettings()
    assert storage.database_url({"XDG_STATE_HOME": "/s"}) == (
        "sqlite+aiosqlite:////s/catalyst/catalyst.db"
    )
    assert storage.database_url({"HOME": "/home/ann"}) == (
        "sqlite+aiosqlite:////home/ann/.local/state/catalyst/catalyst.db"
    )
    assert storage.database_url({"CATALYST_DATABASE_URL": "postgresql://db/x"}) == (
        "postgresql://db/x"
    )
    assert StorageSettings(url="sqlite:///a.db").database_url({}) == "sqlite:///a.db"
