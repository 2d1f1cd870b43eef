"""``catalyst packs``: list, validate, show, scaffold, test and generate knowledge packs.

* ``list`` and ``validate``: the packs of a folder, every problem as ``file:line:col``;
* ``show``: one pack in detail (connections without secrets, tools, resources, prompts);
* ``new``: a commented starter pack that validates as written;
* ``schema``: the JSON Schema of the pack format, for editors;
* ``test`` (run the packs' ``tests:``, live or with recorded HTTP traffic) and ``from-openapi``
  (a pack from an OpenAPI document) live in :mod:`catalyst_mcp.cli.packs_run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

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
from catalyst_mcp.cli.packs_run import from_openapi, run_tests
from catalyst_mcp.cli.packs_support import configured_folder, find_pack, write_file
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.settings import SERVER_NAME

if TYPE_CHECKING:  # the loader pulls in the SQL stack: imported by the commands that need it
    from catalyst_mcp.packs.loader import LoadResult
    from catalyst_mcp.packs.scaffold import Kind

__all__ = ["packs"]

COLUMNS = ["name", "tools", "resources", "prompts", "connections", "file"]
DEFAULT_PACKS_DIR = Path("knowledge-packs")


@click.group()
def packs() -> None:
    """Knowledge packs: declarative tools, resources and prompts over databases and HTTP APIs."""


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

    result = load_packs([configured_folder(config_path)])
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
    targets = list(paths) or [configured_folder(config_path)]
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


# ---- show ------------------------------------------------------------------------------------


@packs.command("show")
@click.argument("name")
@config_option
@json_option
def show(name: str, config_path: Path | None, json_output: bool) -> None:
    """One pack in detail: NAME in the configured folder, or a pack file's path.

    Connections are shown as written in the file (${env:...} references, not their values;
    URL passwords masked); then tools with their action and parameters, resources, prompts,
    limits and the number of tests. Exit 2 for an unknown NAME, 3 for an invalid pack file.
    """
    from catalyst_mcp.cli.packs_support import describe, print_description

    try:
        loaded = find_pack(name, config_path)
    except ConfigError as error:
        raise CliError(f"invalid pack file:\n{error}", EXIT_CONFIG) from error
    report = describe(loaded)
    if json_output:
        print_json(report)
    else:
        print_description(report)


# ---- new -------------------------------------------------------------------------------------


def _pack_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not SERVER_NAME.match(value):
        raise click.BadParameter("letters and digits joined by single '-' or '_', e.g. my-api")
    return value


@packs.command("new")
@click.argument("name", callback=_pack_name)
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write NAME.yaml in (default: the configured packs.path, else "
    "./knowledge-packs).",
)
@click.option(
    "--kind",
    type=click.Choice(["sql", "rest"]),
    default="sql",
    show_default=True,
    help="sql: a SQLite database next to the pack; rest: an HTTP API.",
)
@click.option("--force", is_flag=True, help="Overwrite NAME.yaml if it exists.")
@config_option
def new(name: str, folder: Path | None, kind: str, force: bool, config_path: Path | None) -> None:
    """Write a commented starter pack DIR/NAME.yaml that passes `packs validate` as written.

    A sql pack reads NAME.db next to it (the SQL to create a tiny one is in its header) and has
    tests that pass against that database; a rest pack explains base_url, auth through
    ${env:...} and allow_private_network. An existing file is kept unless --force (exit 1).
    """
    from catalyst_mcp.packs.scaffold import next_steps, pack_text

    if folder is None:
        folder = load_config(config_path).packs.path or DEFAULT_PACKS_DIR
    file = folder / f"{name}.yaml"
    db = folder / f"{name}.db"
    kind_: Kind = "sql" if kind == "sql" else "rest"
    write_file(file, pack_text(name, kind_, str(file), str(db)), force)
    click.echo(f"wrote {file} ({kind} pack {name!r}). Next:")
    for line in next_steps(name, kind_, str(file), str(db)):
        click.echo(f"  {line}")


# ---- schema ----------------------------------------------------------------------------------


@packs.command("schema")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the schema to this file (replaced if it exists) instead of stdout.",
)
def schema(output: Path | None) -> None:
    """The JSON Schema (draft 2020-12) of the pack format, for editors.

    With the YAML language server (VS Code's YAML extension and others), a first line
    `# yaml-language-server: $schema=pack.schema.json` in a pack file gives completion,
    descriptions and checks as you type.
    """
    from catalyst_mcp.packs.json_schema import pack_json_schema

    text = orjson.dumps(pack_json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    write_file(output, text, force=True)
    click.echo(
        f"wrote {output}; first line of a pack: # yaml-language-server: $schema={output}",
        err=True,
    )


packs.add_command(run_tests)
packs.add_command(from_openapi)
