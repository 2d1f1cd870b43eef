"""``catalyst cache stats|clear``: a running gateway's result cache, through its admin API
(``/api/v1/cache``; docs/cache.md), as an administrator.

Exit codes: 0 done, 1 refused (credentials, an unknown tool), 4 the gateway cannot be reached.
"""

from __future__ import annotations

from typing import Any

import click

from catalyst_mcp.cli.common import json_option, print_json, print_table, run_async
from catalyst_mcp.cli.gatewayapi import GatewayApi, gateway_options

__all__ = ["cache"]

TIMEOUT = 30.0  # a clear scans Redis for the keys it deletes


@click.group("cache")
def cache() -> None:
    """The result cache of a running gateway: what it holds, and clearing it."""


def _results(count: int) -> str:
    return f"{count} result{'' if count == 1 else 's'}"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


@cache.command("stats")
@gateway_options(TIMEOUT)
@json_option
def stats(api: GatewayApi, json_output: bool) -> None:
    """Show the result cache of the gateway instance that answers: results in memory (in all
    and per server), its bounds, Redis (where, reachable), and the hits, misses and stores it
    counted since it started."""
    answer: dict[str, Any] = run_async(api.call("GET", api.path("cache")))
    if json_output:
        print_json(answer)
        return
    memory, redis, counts = answer["memory"], answer["redis"], answer["counts"]
    hits = counts["hits_memory"] + counts["hits_redis"] + counts.get("coalesced", 0)
    lookups = hits + counts["misses"]
    ratio = f" ({hits / lookups:.0%} hit)" if lookups else ""
    where = (
        f"{redis['location']} (prefix {redis['prefix']}, "
        f"{'reachable' if redis['reachable'] else 'NOT reachable'}, {redis['errors']} errors)"
        if redis["enabled"]
        else "off (memory only)"
    )
    facts = [
        ("enabled", "yes" if answer["enabled"] else "no (cache.enabled: false)"),
        (
            "memory",
            f"{memory['entries']} of {_results(memory['max_entries'])}, "
            f"{_mib(memory['bytes'])} of {_mib(memory['max_bytes'])}, "
            f"{memory['evictions']} evicted",
        ),
        ("redis", where),
        (
            "lookups",
            f"{lookups}{ratio}: {counts['hits_memory']} hits in memory, {counts['hits_redis']} "
            f"in Redis, {counts.get('coalesced', 0)} coalesced, {counts['misses']} misses",
        ),
        ("stored", f"{counts['stored']} (not stored: {counts['not_stored']})"),
    ]
    for label, value in facts:
        click.echo(f"{label + ':':<9} {value}")
    if answer["servers"]:
        click.echo("")
        print_table(answer["servers"], ["server", "entries", "bytes"])


@cache.command("clear")
@click.option("--server", metavar="NAME", help="Only this server's (or knowledge pack's) results.")
@click.option("--tool", metavar="NAME", help="Only this tool's results (its public name).")
@gateway_options(TIMEOUT)
@json_option
def clear(api: GatewayApi, server: str | None, tool: str | None, json_output: bool) -> None:
    """Drop cached results: all of them, a server's (--server), or one tool's (--tool, as
    clients call it: github__search). From the answering instance's memory and from Redis;
    with Redis, every other instance drops its copies in memory too."""
    query = {"server": server, "tool": tool}
    answer: dict[str, Any] = run_async(api.call("DELETE", api.path("cache", query=query)))
    if json_output:
        print_json(answer)
        return
    what = (
        f"tool {answer['tool']}"
        if answer["tool"]
        else f"server {answer['server']}"
        if answer["server"]
        else "every server"
    )
    click.echo(
        f"cleared {what}: {_results(answer['memory'])} from memory, {answer['redis']} from Redis"
    )
