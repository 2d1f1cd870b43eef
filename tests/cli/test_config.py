"""``catalyst config init`` and ``catalyst config validate``, and the shipped template."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_FAILED
from catalyst_mcp.cli.config import default_config_text
from catalyst_mcp.settings import GatewaySettings, ServerConfig, load_settings
from catalyst_mcp.yamlsource import load_yaml
from tests.cli.helpers import run, stdio_server, write_config

TEMPLATE = default_config_text()


def _section(text: str, start: str, end: str) -> list[str]:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next(i for i, line in enumerate(lines) if i > first and line.startswith(end))
    return lines[first:last]


# ---- the template ----------------------------------------------------------------------------


def test_template_loads_with_load_settings_as_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    settings = load_settings(path, environ={})
    assert settings.gateway == GatewaySettings()
    assert settings.servers == {}


@pytest.mark.parametrize("field", list(GatewaySettings.model_fields), ids=str)
def test_template_documents_every_gateway_setting(field: str) -> None:
    lines = _section(TEMPLATE, "gateway:", "# ----")
    at = [i for i, line in enumerate(lines) if re.match(rf"^  (# )?{field}: ", line)]
    assert len(at) == 1, f"gateway.{field} is not in the template exactly once"
    assert lines[at[0] - 1].startswith("  # "), f"gateway.{field} has no description above it"


def test_uncommenting_every_gateway_setting_changes_nothing(tmp_path: Path) -> None:
    fields = "|".join(GatewaySettings.model_fields)
    text = re.sub(rf"^  # ({fields}): ", r"  \1: ", TEMPLATE, flags=re.MULTILINE)
    assert text != TEMPLATE
    path = tmp_path / "catalyst.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_settings(path, environ={}).gateway == GatewaySettings()
    data = yaml.safe_load(text)
    assert set(data["gateway"]) == set(GatewaySettings.model_fields)


def _server_reference() -> dict[str, Any]:
    """The documented per-server settings: key -> value shown (comments stripped)."""
    block = _section(TEMPLATE, "# Settings of one server", "servers: {}")
    shown: dict[str, Any] = {}
    for line in block:
        match = re.match(r"^#\s+(\w+): (.+?)(\s+#.*)?$", line)
        if match:
            assert match.group(1) not in shown, f"{match.group(1)} documented twice"
            shown[match.group(1)] = yaml.safe_load(match.group(2))
    return shown


@pytest.mark.parametrize("field", list(ServerConfig.model_fields), ids=str)
def test_template_documents_every_server_setting_with_its_default(field: str) -> None:
    info = ServerConfig.model_fields[field]
    shown = _server_reference()
    key = field if field in shown else info.alias
    assert key in shown, f"server setting {field} is not documented in the template"
    if field in ("command", "url"):  # required for their kind: an example is shown instead
        return
    default = info.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):  # a section of its own (sandbox): shown as a mapping
        default = default.model_dump()
    assert shown[key] == default, f"default of {field}"


def test_template_examples_are_a_valid_stdio_and_remote_server(tmp_path: Path) -> None:
    lines = TEMPLATE.splitlines()
    start = lines.index("# servers:")
    example = "\n".join(line.removeprefix("#").removeprefix(" ") for line in lines[start:])
    path = tmp_path / "example.yaml"
    path.write_text(example, encoding="utf-8")
    settings = load_settings(path, environ={"GITHUB_TOKEN": "t0ken"})
    assert {name: s.kind for name, s in settings.servers.items()} == {
        "files": "stdio",
        "github": "streamable-http",
    }
    assert settings.servers["github"].headers == {"Authorization": "Bearer t0ken"}


# ---- config init -----------------------------------------------------------------------------


def test_init_writes_the_template(tmp_path: Path) -> None:
    target = tmp_path / "catalyst.yaml"
    result = run("config", "init", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == TEMPLATE
    assert f"wrote {target}" in result.stderr


def test_init_defaults_to_catalyst_yaml_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("config", "init").exit_code == 0
    assert (tmp_path / "catalyst.yaml").read_text(encoding="utf-8") == TEMPLATE


def test_init_into_a_directory(tmp_path: Path) -> None:
    assert run("config", "init", str(tmp_path)).exit_code == 0
    assert (tmp_path / "catalyst.yaml").exists()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "catalyst.yaml"
    target.write_text("mine: true\n", encoding="utf-8")
    result = run("config", "init", str(target))
    assert result.exit_code == EXIT_FAILED
    assert "already exists; use --force" in result.stderr
    assert target.read_text(encoding="utf-8") == "mine: true\n"
    assert run("config", "init", str(target), "--force").exit_code == 0
    assert target.read_text(encoding="utf-8") == TEMPLATE


def test_init_to_stdout() -> None:
    result = run("config", "init", "-")
    assert result.exit_code == 0
    assert result.stdout == TEMPLATE


def test_init_into_a_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    result = run("config", "init", str(tmp_path / "no" / "such" / "catalyst.yaml"))
    assert result.exit_code == EXIT_FAILED
    assert result.stderr.startswith("error: cannot write")


# ---- config validate -------------------------------------------------------------------------


def test_validate_a_valid_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "catalyst.yaml",
        {
            "a": stdio_server(),
            "b": {"url": "http://127.0.0.1:9/mcp"},
            "c": stdio_server(disabled=True),
        },
    )
    result = run("config", "validate", "--config", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: valid, 3 servers (1 disabled)\n"


def test_validate_finds_the_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CATALYST_CONFIG", raising=False)
    write_config(tmp_path / "catalyst.yaml", {"one": stdio_server()})
    result = run("config", "validate")
    assert result.exit_code == 0
    assert result.stdout == "catalyst.yaml: valid, 1 server\n"


def test_validate_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CATALYST_CONFIG", raising=False)
    result = run("config", "validate")
    assert result.exit_code == EXIT_CONFIG
    assert "no config file" in result.stderr


INVALID = """\
gateway:
  port: 99999
  colour: blue
servers:
  ok:
    command: python
  both:
    command: python
    url: http://127.0.0.1:1/mcp
  "bad name":
    url: http://127.0.0.1:1/mcp
  neither:
    args: [x]
"""


def test_validate_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID, encoding="utf-8")
    result = run("config", "validate", "--config", str(path))
    assert result.exit_code == EXIT_CONFIG
    lines = result.stdout.splitlines()
    assert f"{path}:2: gateway.port: Input should be less than or equal to 65535" in lines
    assert any(line.startswith(f"{path}:3: gateway.colour: unknown setting") for line in lines)
    assert any(line.startswith(f"{path}:7: servers.both: give either 'command'") for line in lines)
    assert any(line.startswith(f"{path}:10: servers.bad name: server name") for line in lines)
    assert any(line.startswith(f"{path}:12: servers.neither: needs 'command'") for line in lines)
    assert len(lines) == 5
    assert "invalid, 5 problem(s)" in result.stderr


def test_validate_reports_yaml_syntax_errors_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("servers:\n  a:\n    command: [python\n", encoding="utf-8")
    result = run("config", "validate", "--config", str(path))
    assert result.exit_code == EXIT_CONFIG
    assert re.match(rf"^{re.escape(str(path))}:\d+: YAML syntax: ", result.stdout)


def test_validate_reports_a_shared_namespace(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.yaml"
    path.write_text(
        "servers:\n  a:\n    command: python\n  b:\n    command: python\n    namespace: a\n",
        encoding="utf-8",
    )
    result = run("config", "validate", "--config", str(path))
    assert result.exit_code == EXIT_CONFIG
    assert result.stdout.startswith(f"{path}:6: servers.b: namespace 'a' is already used")


def test_validate_warns_about_a_missing_program(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", {"x": {"command": "no-such-program-catalyst"}})
    result = run("config", "validate", "--config", str(path))
    assert result.exit_code == 0
    assert f"{path}:3: servers.x.command: 'no-such-program-catalyst' is not found" in result.stderr


def test_validate_reports_unset_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CATALYST_TEST_UNSET", raising=False)
    path = write_config(
        tmp_path / "c.yaml",
        {"x": {"url": "http://127.0.0.1:1/mcp", "headers": {"A": "${CATALYST_TEST_UNSET}"}}},
    )
    result = run("config", "validate", "--config", str(path))
    assert result.exit_code == EXIT_CONFIG
    assert "environment variable CATALYST_TEST_UNSET is not set" in result.stdout
    monkeypatch.setenv("CATALYST_TEST_UNSET", "s3cr3t")
    result = run("config", "validate", "--config", str(path))
    assert result.exit_code == 0
    assert "s3cr3t" not in result.output


def test_validate_includes_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path / "c.yaml", {})
    monkeypatch.setenv("CATALYST_GATEWAY__PORT", "not-a-port")
    result = run("config", "validate", "--config", str(path))
    assert result.exit_code == EXIT_CONFIG
    assert result.stdout.startswith("CATALYST_GATEWAY__PORT: gateway.port:")


def test_validate_warns_about_a_variable_that_is_no_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path / "c.yaml", {})
    monkeypatch.setenv("CATALYST_AUTH_ENABLED", "true")
    result = run("config", "validate", "--config", str(path))
    assert result.exit_code == 0
    assert (
        "environment: CATALYST_AUTH_ENABLED is not a setting and is ignored; did you mean "
        "CATALYST_AUTH__ENABLED? (warning)" in result.stderr
    )


def test_show_prints_every_setting_with_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("gateway:\n  port: 8000\n", encoding="utf-8")
    monkeypatch.setenv("CATALYST_AUTH__ENABLED", "true")
    monkeypatch.setenv("CATALYST_AUTH__JWT__HS256_SECRET", "z" * 40)
    result = run("config", "show", "--config", str(path))
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert lines["gateway.port"].endswith(f"8000  ({path}:2)")
    assert lines["gateway.host"].endswith('"127.0.0.1"  (default)')
    assert lines["auth.enabled"].endswith("true  (CATALYST_AUTH__ENABLED)")
    assert lines["auth.jwt.hs256_secret"].endswith('"********"  (CATALYST_AUTH__JWT__HS256_SECRET)')
    assert "z" * 40 not in result.output


def test_show_json_and_an_invalid_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no catalyst.yaml: built-in defaults
    monkeypatch.setenv("CATALYST_GATEWAY__PORT", "9001")
    result = run("config", "show", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["file"] is None
    port = next(s for s in report["settings"] if s["setting"] == "gateway.port")
    assert port == {
        "setting": "gateway.port",
        "value": 9001,
        "source": "environment",
        "from": "CATALYST_GATEWAY__PORT",
    }
    monkeypatch.setenv("CATALYST_GATEWAY__PORT", "99999")
    result = run("config", "show")
    assert result.exit_code == EXIT_CONFIG
    assert "CATALYST_GATEWAY__PORT: gateway.port: Input should be less than" in result.stderr


def test_validate_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID, encoding="utf-8")
    result = run("config", "validate", "--config", str(path), "--json")
    assert result.exit_code == EXIT_CONFIG
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert {"file": str(path), "line": 2}.items() <= report["problems"][0].items()
    assert len(report["problems"]) == 5

    good = write_config(tmp_path / "good.yaml", {"a": stdio_server()})
    report = json.loads(run("config", "validate", "--config", str(good), "--json").stdout)
    assert report == {
        "file": str(good),
        "valid": True,
        "problems": [],
        "warnings": [],
        "servers": 1,
        "enabled": 1,
    }


def test_validate_accepts_a_pasted_mcpservers_section(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"mcpServers": {"a": {"command": "python"}}}), encoding="utf-8")
    assert load_yaml(path.read_text(), str(path)).data["mcpServers"]
    result = run("config", "validate", "--config", str(path))
    assert result.exit_code == 0
    assert "valid, 1 server" in result.stdout
