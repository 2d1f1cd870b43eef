"""``catalyst config``: write, check and import catalyst.yaml files.

* ``init`` writes the documented default file (shipped as ``catalyst_mcp/defaults/catalyst.yaml``);
* ``validate`` reports every problem of a file as ``file:line: what is wrong``;
* ``show`` prints the effective settings and where each value comes from;
* ``import`` converts an MCP client's config (Claude Desktop, Cursor, VS Code) into one.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import click
import orjson

from catalyst_mcp.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    CliError,
    find_config,
    json_option,
    print_json,
)
from catalyst_mcp.cli.importer import convert, parse_client_config
from catalyst_mcp.configsources import describe, read_environment
from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.settings import Settings, parse_settings
from catalyst_mcp.yamlsource import LocatedYaml, load_yaml, read_yaml

__all__ = ["check_settings", "config", "default_config_text", "environment_warnings"]

DEFAULT_PATH = "catalyst.yaml"


def default_config_text() -> str:
    """The documented default catalyst.yaml shipped with the package."""
    return (
        resources.files("catalyst_mcp")
        .joinpath("defaults/catalyst.yaml")
        .read_text(encoding="utf-8")
    )


@click.group()
def config() -> None:
    """Write, check and import catalyst.yaml files."""


def _write(path: Path, text: str, force: bool) -> None:
    """Write ``text`` to ``path``, refusing to replace an existing file without ``force``."""
    if path.exists() and not force:
        raise CliError(f"{path} already exists; use --force to overwrite it", EXIT_FAILED)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", EXIT_FAILED) from exc


# ---- init ------------------------------------------------------------------------------------


@config.command("init")
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_PATH)
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
def init(path: Path, force: bool) -> None:
    """Write a documented default config to PATH (default ./catalyst.yaml; '-' for stdout).

    Every setting is described with its default; commented examples show a stdio and a remote
    server. A directory PATH gets a catalyst.yaml inside it.
    """
    text = default_config_text()
    if str(path) == "-":
        click.echo(text, nl=False)
        return
    if path.is_dir():
        path = path / DEFAULT_PATH
    _write(path, text, force)
    click.echo(f"wrote {path}: add servers, then run `catalyst config validate`", err=True)


# ---- validate --------------------------------------------------------------------------------


@config.command("validate")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File to check (default: $CATALYST_CONFIG, else ./catalyst.yaml).",
)
@json_option
def validate(config_path: Path | None, json_output: bool) -> None:
    """Check a config file (and CATALYST_* overrides) and report every problem.

    Problems are printed as `file:line: what is wrong` (or `CATALYST_X__Y: what is wrong` for
    a value from the environment), one a line, and the exit code is 3. A valid file prints one
    summary line ("catalyst.yaml: valid, 3 servers") and exits 0. Warnings (a stdio command not
    found on PATH, a CATALYST_* variable that is no setting) do not change the exit code.
    """
    path = find_config(config_path)
    if path is None:
        raise CliError(
            "no config file: give --config, set CATALYST_CONFIG or run `catalyst config init`",
            EXIT_CONFIG,
        )
    problems: list[ConfigProblem] = []
    warnings: list[ConfigProblem] = []
    settings: Settings | None = None
    try:
        source = read_yaml(path)
        settings = parse_settings(source)
    except ConfigError as exc:
        problems = exc.problems
    else:
        warnings = check_settings(settings, source)
    warnings += environment_warnings()
    if json_output:
        report: dict[str, Any] = {
            "file": str(path),
            "valid": not problems,
            "problems": [_problem_json(p) for p in problems],
            "warnings": [_problem_json(p) for p in warnings],
        }
        if settings is not None and not problems:
            report["servers"] = len(settings.servers)
            report["enabled"] = sum(1 for c in settings.servers.values() if c.active)
        print_json(report)
    else:
        for problem in problems:
            click.echo(str(problem))
        for warning in warnings:
            click.echo(f"{warning} (warning)", err=True)
        if settings is not None and not problems:
            click.echo(f"{path}: valid, {_count(settings)}")
        else:
            click.echo(f"{path}: invalid, {len(problems)} problem(s)", err=True)
    if problems:
        click.get_current_context().exit(EXIT_CONFIG)


def _count(settings: Settings) -> str:
    total = len(settings.servers)
    disabled = sum(1 for c in settings.servers.values() if not c.active)
    text = f"{total} server{'' if total == 1 else 's'}"
    return f"{text} ({disabled} disabled)" if disabled else text


def environment_warnings() -> list[ConfigProblem]:
    """The process's CATALYST_* variables that name no setting (typos), each with a hint."""
    return read_environment(Settings, os.environ).unknown


def _problem_json(problem: ConfigProblem) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line, "message": problem.message}


def check_settings(settings: Settings, source: LocatedYaml) -> list[ConfigProblem]:
    """Warnings the schema cannot give: stdio programs that are not installed."""
    warnings: list[ConfigProblem] = []
    for name, server in settings.servers.items():
        if not server.active:
            continue
        command = server.command
        if command and shutil.which(command, path=None) is None and not Path(command).exists():
            warnings.append(
                source.problem(
                    ("servers", name, "command"),
                    f"servers.{name}.command: {command!r} is not found on PATH",
                )
            )
    return warnings


# ---- show ------------------------------------------------------------------------------------


@config.command("show")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File to read (default: $CATALYST_CONFIG, else ./catalyst.yaml if present).",
)
@json_option
def show(config_path: Path | None, json_output: bool) -> None:
    """Print the effective settings and where each value comes from.

    One line per setting: its path, its value (secrets masked: the JWT secret, passwords in
    URLs, every server's env and headers values) and its source: `default`, the config file
    and line, or the CATALYST_* environment variable that set it. Exit code 3 if the
    configuration is invalid (the problems are listed).
    """
    path = find_config(config_path)
    source = read_yaml(path) if path is not None else LocatedYaml("<defaults>", {})
    layer = read_environment(Settings, os.environ)
    for warning in layer.unknown:
        click.echo(f"{warning} (warning)", err=True)
    try:
        settings = parse_settings(source)
    except ConfigError as exc:
        raise CliError(f"invalid configuration:\n{exc}", EXIT_CONFIG) from exc
    values = describe(settings, source.lines, str(path) if path is not None else None, layer)
    if json_output:
        print_json(
            {
                "file": str(path) if path is not None else None,
                "settings": [
                    {"setting": v.path, "value": v.value, "source": v.source, "from": v.where}
                    for v in values
                ],
                "warnings": [str(w) for w in layer.unknown],
            }
        )
        return
    click.echo(f"# file: {path if path is not None else '(none: built-in defaults)'}")
    width = max(len(v.path) for v in values)
    for value in values:
        where = value.where or value.source
        shown = orjson.dumps(value.value).decode()
        click.echo(f"{value.path.ljust(width)}  {shown}  ({where})")


# ---- import ----------------------------------------------------------------------------------


@config.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the result to this file (default: print it).",
)
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
def import_(file: Path, output: Path | None, force: bool) -> None:
    """Convert an MCP client config FILE into a catalyst.yaml `servers:` section.

    FILE is a Claude Desktop / Cursor / Windsurf / Claude Code JSON file ({"mcpServers":
    {...}}), a VS Code mcp.json ({"servers": {...}, "inputs": [...]}; comments and trailing
    commas are allowed) or a LibreChat librechat.yaml (mcpServers:). Entries are kept as
    they are; invalid server names are renamed, unknown keys
    dropped, VS Code variables turned into ${NAME} environment references, and every change is
    reported on stderr. The result is validated before it is
    written; problems are reported as `file:line: what is wrong` (exit code 3).
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {file}: {exc}", EXIT_FAILED) from exc
    try:
        conversion = convert(parse_client_config(text, str(file)))
    except ConfigError as exc:
        raise CliError(f"cannot import {file}:\n{exc}", EXIT_CONFIG) from exc
    for note in conversion.notes:
        click.echo(f"note: {note}", err=True)
    yaml_text = conversion.to_yaml(file.name)
    try:  # what is written must load exactly as it was validated
        parse_settings(load_yaml(yaml_text, "<converted>"), environ=conversion.environ)
    except ConfigError as exc:
        raise CliError(f"internal error: the converted file does not load:\n{exc}") from exc
    count = len(conversion.servers)
    if output is None:
        click.echo(yaml_text, nl=False)
        return
    _write(output, yaml_text, force)
    click.echo(f"wrote {output} ({count} server{'' if count == 1 else 's'})", err=True)
