"""Target options shared by ``tools``, ``prompts`` and ``resources``: parsing and misuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_USAGE
from catalyst_mcp.cli.targets import TargetSpec, safe_name, safe_url, with_overrides
from catalyst_mcp.settings import Settings
from tests.cli.helpers import run, write_config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://127.0.0.1:1/mcp", "--command", "x"], "give --url or a command"),
        (["--url", "http://127.0.0.1:1/mcp", "--", "prog"], "give --url or a command"),
        (["--command", "a", "--", "b"], "with --command or after '--', not both"),
        (["--config", "c.yaml", "--url", "http://127.0.0.1:1/mcp"], "--config cannot be combined"),
        (["--header", "A: b"], "--header and --transport need --url"),
        (["--transport", "sse"], "--header and --transport need --url"),
        (["--env", "A=b"], "--env needs --command"),
        (["--command", "'unclosed"], "No closing quotation"),
        (["--command", "  "], "the command is empty"),
        (["--url", "ftp://127.0.0.1/mcp"], "must start with http://, https://, ws:// or wss://"),
        (["--timeout", "0", "--url", "http://127.0.0.1:1/mcp"], "--timeout"),
        (["--era", "future", "--url", "http://127.0.0.1:1/mcp"], "--era"),
    ],
    ids=[
        "url-and-command",
        "url-and-trailing",
        "command-twice",
        "config-and-url",
        "header-alone",
        "transport-alone",
        "env-alone",
        "bad-quoting",
        "empty-command",
        "bad-scheme",
        "zero-timeout",
        "bad-era",
    ],
)
def test_misuse_is_a_usage_error(args: list[str], message: str) -> None:
    result = run("tools", "list", *args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "header", ["Bearer s3cr3t-token", "Bad Name: s3cr3t-token", "X-Key: s3cr3t-token\u00e9"]
)
def test_bad_headers_are_refused_without_echoing_their_value(header: str) -> None:
    result = run("tools", "list", "--url", "http://127.0.0.1:1/mcp", "--header", header)
    assert result.exit_code == EXIT_USAGE
    assert "--header" in result.stderr
    assert "s3cr3t" not in result.output


def test_bad_env_is_refused_without_echoing_its_value() -> None:
    result = run("tools", "list", "--command", "x", "--env", "s3cr3t-value")
    assert result.exit_code == EXIT_USAGE
    assert "s3cr3t" not in result.output


def test_an_invalid_config_is_exit_3_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("servers:\n  a:\n    command: x\n    colour: blue\n", encoding="utf-8")
    for group in ("tools", "prompts", "resources"):
        result = run(group, "list", "--config", str(path))
        assert result.exit_code == EXIT_CONFIG
        assert f"{path}:4: servers.a.colour: unknown setting" in result.stderr


def test_two_servers_with_one_namespace_are_a_config_error(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "c.yaml",
        {"a": {"command": "x"}, "b": {"command": "y", "namespace": "a"}},
    )
    result = run("tools", "list", "--config", str(path))
    assert result.exit_code == EXIT_CONFIG
    assert "namespace 'a' is already used" in result.stderr


def test_adhoc_settings_use_the_empty_namespace_and_the_options() -> None:
    spec = TargetSpec(
        url="https://user:pw@mcp.example.com/mcp?key=s3cr3t",
        headers={"X-Key": "v"},
        transport="sse",
        era="legacy",
        timeout=7.0,
    )
    settings = spec.settings()
    (name, server), *_ = settings.servers.items()
    assert name == "mcp-example-com"
    assert settings.namespace_of(name) == ""
    assert (server.kind, server.era, server.timeout_seconds) == ("sse", "legacy", 7.0)
    assert server.connect_timeout_seconds == 7.0
    assert spec.label == "https://mcp.example.com/mcp?..."
    assert "s3cr3t" not in repr(spec)


def test_stdio_settings_from_a_command() -> None:
    spec = TargetSpec(command=("/usr/bin/python3", "-m", "srv"), env={"K": "v"})
    (name, server), *_ = spec.settings().servers.items()
    assert name == "python3"
    assert (server.command, server.args, server.env) == (
        "/usr/bin/python3",
        ["-m", "srv"],
        {"K": "v"},
    )


def test_overrides_apply_to_every_configured_server() -> None:
    settings = Settings.model_validate(
        {"servers": {"a": {"command": "x"}, "b": {"url": "http://127.0.0.1:1/mcp"}}}
    )
    assert with_overrides(settings, era=None, timeout=None) is settings
    changed = with_overrides(settings, era="modern", timeout=3.0)
    assert {s.era for s in changed.servers.values()} == {"modern"}
    assert {s.timeout_seconds for s in changed.servers.values()} == {3.0}


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("my server", "my-server"),
        ("a__b", "a_b"),
        ("github.com/x", "github-com-x"),
        ("_lead_", "lead"),
        ("café", "cafe"),
        ("???", "server"),
    ],
)
def test_safe_name(text: str, name: str) -> None:
    assert safe_name(text) == name


def test_safe_url_hides_credentials_and_query() -> None:
    assert safe_url("http://u:p@127.0.0.1:8/mcp?token=x") == "http://127.0.0.1:8/mcp?..."
    assert safe_url("http://127.0.0.1:8/mcp") == "http://127.0.0.1:8/mcp"


def test_variables_in_values_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALYST_TEST_TOKEN", "s3cr3t")
    monkeypatch.delenv("CATALYST_TEST_UNSET", raising=False)
    spec = TargetSpec(
        url="http://127.0.0.1:1/mcp", headers={"Authorization": "Bearer ${CATALYST_TEST_TOKEN}"}
    )
    (server,) = spec.settings().servers.values()
    assert server.headers == {"Authorization": "Bearer s3cr3t"}

    result = run(
        "tools",
        "list",
        "--url",
        "http://127.0.0.1:1/mcp",
        "--header",
        "X-Key: ${CATALYST_TEST_UNSET}",
    )
    assert result.exit_code == EXIT_USAGE
    assert "environment variable CATALYST_TEST_UNSET is not set" in result.stderr


async def test_a_commands_gateway_publishes_no_events() -> None:
    from catalyst_mcp.cli.targets import open_gateway

    settings = Settings.model_validate(
        {"packs": {"path": None}, "audit": {"enabled": False}, "redis": {"url": "redis://x:1/0"}}
    )
    async with open_gateway(settings) as gateway:
        assert gateway.events is None and gateway.server.events is None
        assert gateway.cluster is None  # nor joins the instances' shared state
