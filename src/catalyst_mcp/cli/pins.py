"""``catalyst tools diff|approve SERVER``: review and approve tool definitions that changed.

Like ``catalyst users`` and ``keys``, both work on the configured database directly (no running
gateway needed; exit 4 when it cannot be reached). ``diff`` shows what gateways have seen:
each tool waiting for approval, its approved and current digests and what changed.
``approve`` approves current definitions: recorded as ``admin.tools.approve`` and, per tool,
``pin.approved``. Running gateways serve the approved tools within a few seconds (their poll,
:data:`~catalyst_mcp.trust.pinning.POLL_SECONDS`); the admin API approves on the gateway that
serves it at once (``POST /api/v1/servers/{name}/tools/approve``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from catalyst_mcp.api.pins import change_model
from catalyst_mcp.cli.admin import Admin, run_admin, shown_time
from catalyst_mcp.cli.common import config_option, json_option, print_json
from catalyst_mcp.storage.pins import PinChange
from catalyst_mcp.trust.pinning import POLL_SECONDS, Pinning

__all__ = ["approve_tools", "diff_tools"]

SHORT = 12  # characters of a digest shown


@click.command("diff")
@click.argument("server")
@config_option
@json_option
def diff_tools(server: str, config_path: Path | None, json_output: bool) -> None:
    """Show the tools of SERVER whose definitions changed since they were approved.

    For each tool waiting for approval: whether it changed or is new, its approved and current
    digests, and what changed: descriptions word by word ([-removed-]{+added+}), schemas and
    annotations by path. Under `pin: strict` these tools are held back until approved.

    \b
    Example:
      catalyst tools diff files
      catalyst tools approve files read_file
    """

    async def look(admin: Admin) -> tuple[list[PinChange], str | None]:
        config = admin.settings.servers.get(server)
        return await Pinning(admin.db).changes(server), config.pin if config else None

    changes, policy = run_admin(config_path, look)
    if json_output:
        print_json([_change_json(change) for change in changes])
        return
    _print_changes(server, changes, policy)


@click.command("approve")
@click.argument("server")
@click.argument("tools", nargs=-1, metavar="[TOOL]...")
@click.option("--all", "approve_all", is_flag=True, help="Approve every tool waiting.")
@config_option
@json_option
def approve_tools(
    server: str,
    tools: tuple[str, ...],
    approve_all: bool,
    config_path: Path | None,
    json_output: bool,
) -> None:
    """Approve the current definitions of TOOLs of SERVER (or --all): held tools are served.

    Review them first with `catalyst tools diff SERVER`. Running gateways serve them within
    a few seconds.
    """
    if bool(tools) == approve_all:
        raise click.UsageError("name the tools to approve, or give --all (not both)")

    async def approve(admin: Admin) -> list[PinChange]:
        audit = admin.audit.record if admin.audit is not None else None
        pinning = Pinning(admin.db, audit=audit)
        wanted = None if approve_all else list(tools)
        detail: dict[str, Any] = {"tools": wanted if wanted is not None else "all"}
        async with admin.change("admin.tools.approve", server, detail) as facts:
            approved = await pinning.approve(server, wanted, admin.identity)
            facts["approved"] = {change.tool: change.current.digest for change in approved}
        return approved

    approved = run_admin(config_path, approve)
    if json_output:
        print_json(
            [{"tool": c.tool, "change": c.kind, "digest": c.current.digest} for c in approved]
        )
        return
    if not approved:
        click.echo(f"server {server}: no tool definitions wait for approval")
        return
    names = ", ".join(f"{c.tool} ({c.current.digest[:SHORT]})" for c in approved)
    click.echo(f"server {server}: approved {names}")
    click.echo(
        f"Running gateways serve them within {POLL_SECONDS:g} s (through the admin API: at once)."
    )


def _change_json(change: PinChange) -> dict[str, Any]:
    data: dict[str, Any] = change_model(change, held=False).model_dump(mode="json")
    del data["held"]  # what a gateway holds back now is its own: ask its admin API
    return data


def _print_changes(server: str, changes: list[PinChange], policy: str | None) -> None:
    if not changes:
        click.echo(f"server {server}: no tool definitions wait for approval")
        return
    count = f"{len(changes)} tool{'s' if len(changes) != 1 else ''}"
    how = {
        "strict": "held back until approved (pin: strict)",
        "warn": "served meanwhile (pin: warn)",
        "off": "not checked now (pin: off)",
    }.get(policy or "", "not in this configuration")
    click.echo(f"server {server}: {count} changed since approved, {how}")
    for change in changes:
        current = change.current
        click.echo("")
        click.echo(f"{change.tool}: {change.kind}")
        approved = change.approved
        if approved is not None:
            click.echo(
                f"  approved  {approved.digest[:SHORT]}  {shown_time(approved.approved_at)} "
                f"by {approved.approved_by}" + _package(approved.package)
            )
        click.echo(
            f"  current   {current.digest[:SHORT]}  first seen {shown_time(current.first_seen_at)}"
            + _package(current.package)
        )
        for line in change_model(change, held=False).diff:
            click.echo(f"  {line}")
    click.echo("")
    names = " ".join(change.tool for change in changes)
    click.echo(f"Approve with: catalyst tools approve {server} {names}")


def _package(package: str | None) -> str:
    return f" ({package})" if package else ""
