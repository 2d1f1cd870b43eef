"""``catalyst packs``: list the configured knowledge packs and validate pack files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from catalyst_mcp.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    CliError,
    config_option,
    json_option,
    load_config,
    print_json,
    print_table,
)

if TYPE_CHECKING:  # the loader pulls in the SQL stack: imported by the commands that need it
    from catalyst_mcp.packs.loader import LoadResult

__all__ = ["packs"]

COLUMNS = ["name", "tools", "resources", "prompts", "connections", "file"]


@click.group()
def packs() -> None:
    """Knowledge packs: declarative tools, resources and prompts over SQL databases."""


def _configured(config_path: Path | None) -> Path:
    path = load_config(config_path).packs.path
    if path is None:
        raise CliError("no knowledge packs configured: set packs.path in catalyst.yaml", 2)
    return path


def _summary(result: LoadResult) -> list[dict[str, object]]:
    return [
        {
            "name": item.pack.pack,
            "tools": len(item.pack.tools),
            "resources": len(item.pack.resources),
            "prompts": len(item.pack.prompts),
            "connections": len(item.pack.connections),
            "file": str(item.file),
        }
        for item in result.packs
    ]


def _report_problems(result: LoadResult) -> None:
    for problem in result.problems:
        click.echo(str(problem), err=True)


@packs.command("list")
@config_option
@json_option
def list_packs(config_path: Path | None, json_output: bool) -> None:
    """The valid packs of the configured folder (packs.path); problems go to stderr.

    Exit code 3 if any pack file is invalid (the valid ones are still listed).
    """
    from catalyst_mcp.packs.loader import load_packs

    result = load_packs([_configured(config_path)])
    if json_output:
        print_json({"packs": _summary(result), "problems": [str(p) for p in result.problems]})
    else:
        print_table(_summary(result), COLUMNS)
        _report_problems(result)
    click.get_current_context().exit(EXIT_CONFIG if result.problems else EXIT_OK)


@packs.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@config_option
def validate(paths: tuple[Path, ...], config_path: Path | None) -> None:
    """Check pack files (or folders of them; default: the configured packs.path) completely.

    Every problem is shown as file:line:col: what is wrong. Exit code 3 if any is found.
    """
    targets = list(paths) or [_configured(config_path)]
    from catalyst_mcp.packs.loader import load_packs, pack_files

    result = load_packs(targets)
    for item in result.packs:
        pack = item.pack
        click.echo(
            f"{item.file}: valid, pack {pack.pack!r} ({len(pack.tools)} tools, "
            f"{len(pack.resources)} resources, {len(pack.prompts)} prompts)"
        )
    for problem in result.problems:
        click.echo(str(problem))
    if not pack_files(targets):
        click.echo(f"no pack files found in {', '.join(map(str, targets))}")
    click.get_current_context().exit(EXIT_CONFIG if result.problems else EXIT_OK)
