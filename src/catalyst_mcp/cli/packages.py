"""``catalyst packages``: find MCP servers in the catalog, install them from npm and PyPI into
isolated prefixes, and keep ``catalyst.yaml`` and ``catalyst.lock`` in step.

* ``search`` and ``show``: the MCP Registry, or the bundled snapshot when it cannot be reached;
* ``install``, ``remove``, ``update``, ``list``: packages and the server entries they make;
* ``sync``: install exactly what ``catalyst.lock`` says, refusing any hash mismatch.

Progress goes to stderr; results to stdout (``--json`` for scripts). docs/packages.md is the
guide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from catalyst_mcp.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    config_option,
    find_config,
    json_option,
    print_json,
    print_table,
    run_async,
)
from catalyst_mcp.cli.packages_view import (
    human_size,
    install_json,
    print_install,
    print_server,
    print_servers,
    server_json,
)
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.packages.catalog import Catalog, CatalogAnswer
from catalyst_mcp.packages.config import PackagesSettings
from catalyst_mcp.packages.lockfile import read_lock
from catalyst_mcp.packages.manager import InstallOptions, PackageManager
from catalyst_mcp.packages.progress import Progress
from catalyst_mcp.settings import load_settings

__all__ = ["packages"]

T = TypeVar("T")
DEFAULT_CONFIG = Path("catalyst.yaml")
LIST_COLUMNS = ["server", "package", "version", "runtime", "pinned", "state", "size"]


class _Lenient(Mapping[str, str]):
    """The environment, where a ``${NAME}`` that is not set reads as empty: managing packages
    must work before every variable a server needs is set."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def __getitem__(self, key: str) -> str:
        return self.environ.get(key, "")

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.environ)

    def __len__(self) -> int:
        return len(self.environ)


def _setup(config_path: Path | None) -> tuple[PackagesSettings, Path]:
    """The ``packages:`` settings and the config file (``./catalyst.yaml`` when none exists)."""
    path = find_config(config_path) or DEFAULT_CONFIG
    try:
        settings = load_settings(path if path.exists() else None, _Lenient(os.environ))
    except ConfigError as exc:
        raise CliError(f"invalid configuration:\n{exc}", EXIT_CONFIG) from exc
    return settings.packages, path


def _manager(config_path: Path | None, *, quiet: bool = False) -> PackageManager:
    settings, path = _setup(config_path)
    return PackageManager(settings, path, progress=Progress(quiet=quiet))


def _run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command; SIGTERM and Ctrl-C stop it cleanly (an install in progress is removed,
    nothing else is changed) with one line instead of a traceback."""

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await main
        except asyncio.CancelledError:
            raise CliError(
                "interrupted: the install in progress was removed; nothing else changed"
            ) from None
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGTERM)

    try:
        return run_async(guarded())
    except KeyboardInterrupt:
        raise CliError(
            "interrupted: the install in progress was removed; nothing else changed"
        ) from None


def _env_pairs(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--env")
        pairs[key] = value
    return pairs


def _catalog_line(answer: CatalogAnswer) -> None:
    line = f"catalog: {answer.where}"
    if answer.source == "bundled" and answer.fallback_reason:
        line += f" (the MCP Registry was not used: {answer.fallback_reason})"
    click.echo(line, err=True)


offline_option = click.option(
    "--offline", is_flag=True, help="Use the bundled catalog snapshot, not the MCP Registry."
)
scripts_option = click.option(
    "--allow-scripts",
    is_flag=True,
    default=None,
    help="Let packages run install scripts (npm) or build from source (PyPI); see "
    "packages.allow_install_scripts.",
)


@click.group()
def packages() -> None:
    """MCP server packages: search the catalog, install from npm and PyPI, lock and sync."""


@packages.command("search")
@click.argument("text", required=False, default="")
@offline_option
@config_option
@json_option
def search(text: str, offline: bool, config_path: Path | None, json_output: bool) -> None:
    """Find servers whose name or description contains TEXT (all of them without TEXT).

    Columns: NAME, VERSION, RUNTIME (npm, pypi, oci, ... or remote), TRANSPORT, INPUTS (the
    required environment variables and arguments; a secret is marked *), INSTALLED (the
    server entries that installed it). Which catalog answered is said on stderr.
    """
    settings, path = _setup(config_path)
    answer = _run(Catalog(settings, offline=offline).search(text))
    lock = read_lock(PackageManager(settings, path).lock_path)
    _catalog_line(answer)
    if json_output:
        print_json(
            {
                "catalog": answer.source,
                "where": answer.where,
                "servers": [server_json(s, lock) for s in answer.servers],
            }
        )
    else:
        print_servers(answer.servers, lock)


@packages.command("show")
@click.argument("name")
@offline_option
@config_option
@json_option
def show(name: str, offline: bool, config_path: Path | None, json_output: bool) -> None:
    """Show one server of the catalog in full: packages, arguments, environment variables
    (required, secret, default) and remotes. NAME is its full name or its short one."""
    settings, path = _setup(config_path)
    answer = _run(Catalog(settings, offline=offline).get(name))
    lock = read_lock(PackageManager(settings, path).lock_path)
    _catalog_line(answer)
    if json_output:
        print_json(server_json(answer.servers[0], lock))
    else:
        print_server(answer.servers[0], lock)


@packages.command("install")
@click.argument("spec", metavar="NAME[@VERSION]")
@click.option("--name", "server_name", help="Name of the server entry (default: a short name).")
@click.option("--force", is_flag=True, help="Replace a server entry (or install) of that name.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Environment value.")
@click.option(
    "--arg", "args", multiple=True, metavar="VALUE", help="Argument (replaces the defaults)."
)
@click.option("--runtime", type=click.Choice(["npm", "pypi"]), help="Which package to install.")
@click.option("--bin", "bin_name", help="Command to run when the package has several.")
@scripts_option
@offline_option
@config_option
@json_option
def install(
    spec: str,
    server_name: str | None,
    force: bool,
    env: tuple[str, ...],
    args: tuple[str, ...],
    runtime: str | None,
    bin_name: str | None,
    allow_scripts: bool | None,
    offline: bool,
    config_path: Path | None,
    json_output: bool,
) -> None:
    """Install a server and add its entry to the config file.

    NAME is a server of the catalog (io.github.owner/server, or its short name), npm:PACKAGE
    or pypi:PACKAGE. @VERSION installs that exact version and pins it (`update` leaves it).
    The package gets a prefix of its own under packages.dir; the entry runs its command from
    there; catalyst.lock (next to the config) records every distribution's hash.

    \b
    Examples:
      catalyst packages install io.github.modelcontextprotocol/server-memory
      catalyst packages install time
      catalyst packages install npm:@modelcontextprotocol/server-filesystem --arg /srv/docs
      catalyst packages install pypi:mcp-server-fetch@2026.10.24 --name fetch
    """
    options = InstallOptions(
        name=server_name,
        force=force,
        env=_env_pairs(env),
        args=list(args) if args else None,
        runtime=runtime,
        bin=bin_name,
        allow_scripts=allow_scripts,
        offline=offline,
    )
    manager = _manager(config_path, quiet=json_output)
    report = _run(manager.install(spec, options))
    if json_output:
        print_json(install_json(report))
    else:
        print_install(report)


@packages.command("remove")
@click.argument("name")
@config_option
def remove(name: str, config_path: Path | None) -> None:
    """Remove an installed package: its server entry, its lock record and its prefix.
    NAME is the server entry's name (or the package's, when it is installed once)."""
    manager = _manager(config_path)
    server, record, had = _run(manager.remove(name))
    where = f"; server '{server}' removed from {manager.config_path}" if had else ""
    click.echo(f"removed {record.package} {record.version}{where}")


@packages.command("update")
@click.argument("name", required=False)
@click.option("--unpin", is_flag=True, help="Drop the pin first (NAME's, or every package's).")
@scripts_option
@config_option
@json_option
def update(
    name: str | None,
    unpin: bool,
    allow_scripts: bool | None,
    config_path: Path | None,
    json_output: bool,
) -> None:
    """Update NAME (or every installed package) to its newest version; a pinned package
    (installed as NAME@VERSION) stays unless --unpin. The server entry's command follows;
    its args and env are left as they are."""
    manager = _manager(config_path, quiet=json_output)
    reports = _run(manager.update(name, unpin=unpin, allow_scripts=allow_scripts))
    if json_output:
        print_json([vars(r) for r in reports])
        return
    for r in reports:
        if r.status == "updated":
            click.echo(f"{r.server}: {r.package} {r.old} -> {r.new}")
        elif r.status == "pinned":
            click.echo(f"{r.server}: {r.package} pinned at {r.old} (--unpin to update)")
        else:
            click.echo(f"{r.server}: {r.package} {r.old} is the newest")
    if not reports:
        click.echo("(no packages installed)")


@packages.command("list")
@config_option
@json_option
def list_packages(config_path: Path | None, json_output: bool) -> None:
    """The installed packages of this config's catalyst.lock.

    Columns: SERVER (the entry it made), PACKAGE, VERSION, RUNTIME, PINNED, STATE (ok;
    missing: not installed on this machine, run `catalyst packages sync`; differs: the
    installed files are not the locked ones) and SIZE on disk. Exit code 1 if any is not ok.
    """
    manager = _manager(config_path)
    rows = manager.installed()
    if json_output:
        print_json(rows)
    else:
        shown = [
            {**r, "pinned": "yes" if r["pinned"] else "no", "size": human_size(r["size"])}
            for r in rows
        ]
        print_table(shown, LIST_COLUMNS)
    bad = [r for r in rows if r["state"] != "ok"]
    click.get_current_context().exit(EXIT_FAILED if bad else EXIT_OK)


@packages.command("sync")
@scripts_option
@config_option
@json_option
def sync(allow_scripts: bool | None, config_path: Path | None, json_output: bool) -> None:
    """Install exactly what catalyst.lock records (on this or another machine): every
    distribution is checked against its hash and a mismatch is refused, naming it. Server
    entries of the config are pointed at this machine's prefixes."""
    manager = _manager(config_path, quiet=json_output)
    reports = _run(manager.sync(allow_scripts=allow_scripts))
    if json_output:
        print_json([vars(r) for r in reports])
        return
    for r in reports:
        config = {
            "unchanged": "",
            "updated": "; server entry's command updated",
            "missing": f"; no server '{r.server}' in the config",
        }[r.config]
        click.echo(f"{r.server}: {r.package} {r.version} {r.status}{config}")
    if not reports:
        click.echo("(catalyst.lock records no packages)")
