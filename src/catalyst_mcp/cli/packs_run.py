"""``catalyst packs test`` and ``catalyst packs from-openapi``.

``test`` runs the ``tests:`` of packs (:mod:`catalyst_mcp.packs.testing`), live, recording or
replaying their REST traffic; ``from-openapi`` writes a pack for an OpenAPI document
(:mod:`catalyst_mcp.packs.openapi`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from catalyst_mcp.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    config_option,
    json_option,
    print_json,
    run_async,
)
from catalyst_mcp.cli.packs_support import configured_folder, find_pack, write_file
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.settings import SERVER_NAME

if TYPE_CHECKING:
    from catalyst_mcp.packs.loader import LoadedPack, LoadResult
    from catalyst_mcp.packs.testing import Mode, PackRun

__all__ = ["from_openapi", "run_tests"]


# ---- test ------------------------------------------------------------------------------------


@click.command("test")
@click.argument("targets", nargs=-1, metavar="[NAME_OR_FILE]...")
@config_option
@click.option(
    "--record",
    is_flag=True,
    help="Run against the real APIs and save each pack's REST exchanges, redacted, to "
    "<pack>.recording.json next to it.",
)
@click.option(
    "--replay",
    is_flag=True,
    help="Answer REST requests from <pack>.recording.json instead of the network (offline).",
)
@json_option
def run_tests(
    targets: tuple[str, ...],
    config_path: Path | None,
    record: bool,
    replay: bool,
    json_output: bool,
) -> None:
    """Run the example calls (`tests:`) of packs and check their results.

    Each NAME_OR_FILE is a pack name of the configured folder, a pack file or a folder (default:
    every pack of packs.path). One PASS/FAIL line per test, with what differs, then a summary.
    SQL connections always use the real database. Exit 0 when every test passes, 1 when one
    fails, 3 when a pack file is invalid.
    """
    if record and replay:
        raise click.UsageError("give --record or --replay, not both")
    mode: Mode = "record" if record else "replay" if replay else "live"
    from catalyst_mcp.packs.recording import replay_environ

    environ = replay_environ() if mode == "replay" else None
    result = _targets(targets, config_path, environ)
    runs = run_async(_run_all(result.packs, mode))
    failed = sum(run.failed for run in runs)
    passed = sum(r.passed for run in runs for r in run.results)
    if json_output:
        print_json(
            {
                "packs": [_run_json(run) for run in runs],
                "passed": passed,
                "failed": failed,
                "problems": [str(p) for p in result.problems],
            }
        )
    else:
        for run in runs:
            _print_run(run)
        for problem in result.problems:
            click.echo(str(problem), err=True)
        invalid = f", {len(result.problems)} problem(s) in pack files" if result.problems else ""
        click.echo(f"{passed} passed, {failed} failed ({len(runs)} pack(s){invalid})")
    code = EXIT_CONFIG if result.problems else EXIT_FAILED if failed else EXIT_OK
    click.get_current_context().exit(code)


def _targets(targets: tuple[str, ...], config_path: Path | None, environ: Any) -> LoadResult:
    from catalyst_mcp.packs.loader import LoadResult, load_packs

    if not targets:
        return load_packs([configured_folder(config_path)], environ)
    result = LoadResult()
    for target in targets:
        path = Path(target)
        if path.is_dir():
            found = load_packs([path], environ)
            result.packs.extend(found.packs)
            result.problems.extend(found.problems)
            continue
        try:
            result.packs.append(find_pack(target, config_path, environ))
        except ConfigError as error:
            result.problems.extend(error.problems)
    return result


async def _run_all(packs: list[LoadedPack], mode: Mode) -> list[PackRun]:
    from catalyst_mcp.packs.testing import run_pack

    return [await run_pack(loaded, mode) for loaded in packs]


def _print_run(run: PackRun) -> None:
    if run.error is not None:
        click.echo(f"FAIL {run.pack}: {run.error}")
        return
    if not run.results:
        click.echo(f"---- {run.pack}: no tests ({run.file})")
        return
    for result in run.results:
        if result.passed:
            click.echo(f"PASS {run.pack}: {result.name} ({result.seconds * 1000:.0f} ms)")
            continue
        click.echo(f"FAIL {run.pack}: {result.name}: {result.reasons[0]}")
        for reason in result.reasons[1:]:
            click.echo(f"       {reason}")
    if run.recording is not None and run.exchanges:
        click.echo(f"---- {run.pack}: recorded {run.exchanges} exchange(s) in {run.recording}")
    elif run.recording is not None:
        click.echo(f"---- {run.pack}: replayed from {run.recording}")


def _run_json(run: PackRun) -> dict[str, Any]:
    return {
        "pack": run.pack,
        "file": str(run.file),
        "error": run.error,
        "recording": str(run.recording) if run.recording else None,
        "exchanges": run.exchanges,
        "tests": [
            {
                "name": r.name,
                "passed": r.passed,
                "reasons": list(r.reasons),
                "seconds": round(r.seconds, 4),
            }
            for r in run.results
        ],
    }


# ---- from-openapi ----------------------------------------------------------------------------


def _name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not SERVER_NAME.match(value):
        raise click.BadParameter("letters and digits joined by single '-' or '_', e.g. my-api")
    return value


def _base_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise click.BadParameter("an absolute http:// or https:// URL")
    return value


@click.command("from-openapi")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the pack to this file instead of stdout.",
)
@click.option(
    "--name", callback=_name, metavar="NAME", help="Pack name (default: from the document's title)."
)
@click.option(
    "--base-url",
    callback=_base_url,
    metavar="URL",
    help="The API's base URL (default: servers[0].url of the document).",
)
@click.option(
    "--include-tag",
    "include_tags",
    multiple=True,
    metavar="TAG",
    help="Only operations with this tag (repeatable).",
)
@click.option("--force", is_flag=True, help="Overwrite the --output file if it exists.")
def from_openapi(
    spec: Path,
    output: Path | None,
    name: str | None,
    base_url: str | None,
    include_tags: tuple[str, ...],
    force: bool,
) -> None:
    """Generate a pack from an OpenAPI 3.0/3.1 document (a JSON or YAML file).

    One REST tool per operation, with parameters from path, query, header and JSON body
    properties, and auth from the security schemes as ${env:...} references. Skipped
    operations and approximations are reported on stderr. Exit 3 if SPEC is not a usable
    OpenAPI 3 document, 1 if --output exists and --force is not given.
    """
    from catalyst_mcp.packs.openapi import convert, load_spec, to_yaml

    if output is not None and output.exists() and not force:
        raise CliError(f"{output} already exists; use --force to overwrite it", EXIT_FAILED)
    try:
        conversion = convert(
            load_spec(spec),
            source=str(spec),
            name=name,
            base_url=base_url,
            include_tags=include_tags,
        )
    except ConfigError as error:
        raise CliError(f"cannot convert {spec}:\n{error}", EXIT_CONFIG) from error
    for skipped in conversion.skipped:
        click.echo(f"skipped {skipped}", err=True)
    for note in conversion.notes:
        click.echo(f"note: {note}", err=True)
    text = to_yaml(conversion)
    tools = len(conversion.pack["tools"])
    if output is None:
        click.echo(text, nl=False)
        where = "the pack"
    else:
        write_file(output, text, force=True)
        where = str(output)
        click.echo(f"wrote {output}", err=True)
    click.echo(
        f"{tools} tool(s) from {tools + len(conversion.skipped)} operation(s), "
        f"{len(conversion.skipped)} skipped",
        err=True,
    )
    if conversion.env:
        names = ", ".join(conversion.env)
        click.echo(
            f"set {names} in the environment, then: catalyst packs validate {where}", err=True
        )
    elif output is not None:
        click.echo(f"next: catalyst packs validate {output}", err=True)
