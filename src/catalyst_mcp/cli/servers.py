"""``catalyst servers``: the configured upstream servers and whether they work right now.

``list`` starts the servers of the config file here, without a gateway; ``status``, ``start``,
``stop``, ``restart`` and ``logs`` act on a running gateway through its admin API
(:mod:`catalyst_mcp.cli.servers_control`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from catalyst_mcp.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    config_option,
    json_option,
    load_config,
    print_json,
    print_table,
    run_async,
)
from catalyst_mcp.cli.servers_control import logs, restart, start, status, stop
from catalyst_mcp.cli.targets import open_gateway, server_error, with_overrides
from catalyst_mcp.settings import Settings

__all__ = ["probe_servers", "servers"]

COLUMNS = ["name", "transport", "status", "era", "tools", "resources", "prompts", "error"]


@click.group()
def servers() -> None:
    """Inspect and control upstream MCP servers.

    \b
    list      starts every server of the config file here (no gateway needed) and reports
              whether each works
    status, start, stop, restart, logs
              act on the servers a running gateway serves, through its admin API (an
              administrator's API key in $CATALYST_API_KEY when its auth is on)
    """


@servers.command("list")
@config_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Time allowed to connect to each server (default: its connect_timeout_seconds).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show the log (and stdio servers' stderr).")
@json_option
def list_servers(
    config_path: Path | None, timeout: float | None, verbose: bool, json_output: bool
) -> None:
    """Check the config file's servers by starting them here (no running gateway needed).

    Connects to every configured server as the gateway does and reports each one (for the
    servers a running gateway serves, see `catalyst servers status`).

    Columns: NAME, TRANSPORT, STATUS (ready, failed, starting, disabled), ERA (modern or
    legacy), the number of TOOLS, RESOURCES and PROMPTS, and the last ERROR. Disabled servers
    are listed without being started. Exit code 1 if any enabled server is not ready.
    """
    settings = with_overrides(load_config(config_path), era=None, timeout=timeout)
    reports = run_async(probe_servers(settings), verbose=verbose)
    if json_output:
        print_json(reports)
    else:
        rows = [{**r, "error": server_error(r)} for r in reports]
        print_table(rows, COLUMNS)
    down = [r for r in reports if r["status"] not in ("ready", "disabled")]
    click.get_current_context().exit(EXIT_FAILED if down else EXIT_OK)


async def probe_servers(settings: Settings) -> list[dict[str, Any]]:
    """Health reports of every configured server, in config order (disabled ones not started)."""
    async with open_gateway(settings) as gateway:
        reports: list[dict[str, Any]] = []
        for name, config in settings.servers.items():
            provider = gateway.registry.provider(name)
            if provider is None or not config.active:
                reports.append({"name": name, "transport": config.kind, "status": "disabled"})
            else:
                reports.append(provider.health())
        return reports


for command in (status, start, stop, restart, logs):
    servers.add_command(command)
