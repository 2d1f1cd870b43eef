"""``catalyst health``: ask a running gateway whether it and its servers are ready.

It reads ``GET /health`` (the process answers) and ``GET /ready`` (the gateway's status, one
report per server, and the verdicts on the database, Redis and the pack set) and maps them to
exit codes: 0 ready, 1 degraded / starting / stopping, 4 unreachable or not a Catalyst gateway.
With auth on, ``/ready`` shows the parts only to an administrator: ``--token``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click
import orjson

from catalyst_mcp.cli.common import (
    EXIT_CONNECT,
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    json_option,
    print_json,
    print_table,
    run_async,
)
from catalyst_mcp.cli.gatewayapi import DEFAULT_URL
from catalyst_mcp.cli.servers import COLUMNS
from catalyst_mcp.cli.targets import safe_url, server_error
from catalyst_mcp.net.httpclient import HttpClient, HttpError, split_url

__all__ = ["fetch_health", "health"]


@click.command()
@click.option(
    "--url",
    default=DEFAULT_URL,
    show_default=True,
    help="Base URL of the running gateway (where /health and /ready are).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Time limit for the whole check.",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="An administrator's API key or token: with auth on, /ready shows its parts only to "
    "administrators (without it: the status alone).",
)
@json_option
def health(url: str, timeout: float, token: str | None, json_output: bool) -> None:
    """Check that a running gateway and its servers are ready.

    Prints the gateway's status, one line per upstream server, then one line per other part
    (database, Redis, knowledge packs) with the reason of any that fails. Exit code 0 when the
    gateway is ready, 1 when it is degraded, starting or stopping, 4 when it cannot be reached.
    """
    try:
        split_url(url)
    except HttpError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from exc
    report = run_async(fetch_health(url, timeout, token))
    status = str(report.get("status", "unknown"))
    if json_output:
        print_json(report)
    else:
        info = report.get("gateway") or {}
        servers: list[dict[str, Any]] = report.get("servers") or []
        ready = sum(1 for s in servers if s.get("status") == "ready")
        click.echo(
            f"gateway {safe_url(url)}: {status} ({info.get('name', '?')} "
            f"{info.get('version', '?')}), {ready}/{len(servers)} servers ready"
        )
        if servers:
            print_table([{**s, "error": server_error(s)} for s in servers], COLUMNS)
        parts = part_rows(report)
        if parts:
            click.echo("")
            print_table(parts, ["part", "status", "detail"])
        for kind, names in (report.get("collisions") or {}).items():
            for name, owners in names.items():
                click.echo(f"warning: {kind} {name!r} is offered by {', '.join(owners)}", err=True)
    click.get_current_context().exit(EXIT_OK if status == "ready" else EXIT_FAILED)


def part_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per part of a ``/ready`` report besides the servers: the database, Redis, the
    pack set (with its failure's reason)."""
    rows = []
    for part in ("database", "redis"):
        verdict = report.get(part)
        if isinstance(verdict, dict):
            rows.append(
                {"part": part, "status": verdict.get("status"), "detail": verdict.get("error", "")}
            )
    packs = report.get("packs")
    if isinstance(packs, dict):
        detail = f"{packs.get('served', 0)} served"
        problems = report.get("pack_problems") or []
        if problems:
            detail += f"; {len(problems)} problem(s), first: {problems[0]}"
        rows.append({"part": "packs", "status": packs.get("status"), "detail": detail})
    return rows


async def fetch_health(url: str, timeout: float, token: str | None = None) -> dict[str, Any]:
    """The gateway's ``/ready`` report, after ``/health`` said the process is alive."""
    base = split_url(url).path.split("?")[0].rstrip("/")
    client = HttpClient(url, connect_timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            status, body = await _get(client, f"{base}/health")
            if status != 200 or not isinstance(body, dict) or body.get("status") != "ok":
                raise CliError(
                    f"{safe_url(url)} is not a Catalyst gateway (GET /health answered HTTP "
                    f"{status}); give the gateway's base URL, not its MCP endpoint",
                    EXIT_CONNECT,
                )
            status, body = await _get(client, f"{base}/ready", token)
    except TimeoutError as exc:
        raise CliError(f"{safe_url(url)} did not answer within {timeout:g}s", EXIT_CONNECT) from exc
    except HttpError as exc:
        raise CliError(f"cannot reach the gateway at {safe_url(url)}: {exc}", EXIT_CONNECT) from exc
    finally:
        await client.aclose()
    if status not in (200, 503) or not isinstance(body, dict) or "status" not in body:
        raise CliError(f"GET /ready answered HTTP {status} without a report", EXIT_CONNECT)
    return body


async def _get(client: HttpClient, path: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await client.request("GET", headers, path=path)
    data = await response.read()
    try:
        return response.status, orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return response.status, None
