"""``catalyst servers status|start|stop|restart|logs``: a running gateway's servers, through its
admin API (``/api/v1/servers``; docs/api.md), as an administrator.

Unlike ``catalyst servers list``, which starts the configured servers itself to check them, these
act on the servers a gateway is running now: what state each is in, with which process, since
when; stopping one (it stays stopped until started again), starting, restarting it (make before
break), and the tail of its stderr. Exit codes: 0 done (status: every server ready or stopped
on purpose), 1 a server is not ready or the action failed, 4 the gateway cannot be reached.
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from catalyst_mcp.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    json_option,
    print_json,
    print_table,
    run_async,
    truncate,
)
from catalyst_mcp.cli.gatewayapi import GatewayApi, gateway_options

__all__ = ["logs", "restart", "start", "status", "stop"]

STATUS_COLUMNS = [
    "name",
    "state",
    "pid",
    "uptime",
    "restarts",
    "sharing",
    "processes",
    "tools",
    "circuit",
    "error",
]
INSTANCE_COLUMNS = ["instance", "status", "pid", "restarts", "idle", "error"]
FINE = ("ready", "stopped")  # stopped: on purpose, by an administrator
ACTION_TIMEOUT = 120.0  # a stop waits for the calls in flight (up to their time limit)
READ_TIMEOUT = 10.0
FOLLOW_WAIT = 25.0  # seconds one long poll of --follow waits for a new line


def duration(seconds: float | None) -> str:
    """``3d4h``, ``2h5m``, ``4m10s``, ``12s``; ``-`` for none."""
    if seconds is None:
        return "-"
    left = int(seconds)
    days, left = divmod(left, 86400)
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _row(server: dict[str, Any]) -> dict[str, Any]:
    error = server.get("error") or ""
    if server.get("state") == "stopped":
        error = f"stopped by {server.get('stopped_by')} at {server.get('stopped_at')}"
    return {
        **server,
        "pid": server.get("pid") or "-",
        "uptime": duration(server.get("uptime_seconds")),
        "circuit": server.get("circuit") or "-",
        "processes": server.get("processes") if server.get("sharing") != "shared" else "-",
        "error": truncate(str(error), 60),
    }


def _show(server: dict[str, Any]) -> None:
    """One server, one fact per line, then its callers' processes."""
    last = server.get("last_error") or {}
    facts = [
        ("state", server["state"]),
        ("transport", f"{server['transport']}" + (f" ({server['era']})" if server["era"] else "")),
        ("sharing", server["sharing"] + (", sandboxed" if server.get("sandboxed") else "")),
        ("pid", server.get("pid") or "-"),
        ("up since", server.get("up_since") or "-"),
        ("uptime", duration(server.get("uptime_seconds"))),
        ("restarts", server["restarts"]),
        ("circuit", server.get("circuit") or "-"),
        ("tools", server["tools"]),
        ("error", server.get("error") or "-"),
        ("last error", f"{last['error']} (at {last['at']})" if last else "-"),
    ]
    if server["state"] == "stopped":
        facts.append(("stopped", f"by {server.get('stopped_by')} at {server.get('stopped_at')}"))
    if server["sharing"] != "shared":
        facts.append(("processes", server["processes"]))
    click.echo(server["name"])
    for label, value in facts:
        click.echo(f"  {label + ':':<12} {value}")
    instances = server.get("instances") or []
    if instances:
        click.echo("")
        rows = [
            {**i, "pid": i.get("pid") or "-", "idle": duration(i.get("idle_seconds"))}
            for i in instances
        ]
        print_table(rows, INSTANCE_COLUMNS)


def _exit_for(servers: list[dict[str, Any]]) -> None:
    ok = all(server.get("state") in FINE for server in servers)
    click.get_current_context().exit(EXIT_OK if ok else EXIT_FAILED)


@click.command("status")
@click.argument("name", required=False)
@gateway_options(READ_TIMEOUT)
@json_option
def status(api: GatewayApi, name: str | None, json_output: bool) -> None:
    """Show a running gateway's servers: state, process, uptime, restarts, last error.

    Without NAME, one line per server: STATE (ready, starting, failed, stopped), PID of its
    shared process (stdio), UPTIME, RESTARTS (after crashes and hangs, and by administrators),
    SHARING (shared, per-user, per-session), PROCESSES (callers' own, per-user and per-session),
    TOOLS, CIRCUIT (breaker) and ERROR. With NAME, everything about that server and each
    caller's process. Exit 1 if a server is neither ready nor stopped on purpose.
    """
    if name is None:
        # the tools API's list: an administrator also gets each server's process
        answer = run_async(api.call("GET", api.path("servers")))
        listed: list[dict[str, Any]] = answer["servers"]
        servers: list[dict[str, Any]] = [s["process"] for s in listed if s.get("process")]
        if listed and not servers:
            raise CliError(
                "the gateway shows server processes to administrators only: use an API key "
                "of a user with the admin role ($CATALYST_API_KEY or --api-key-env)",
                EXIT_FAILED,
            )
        if json_output:
            print_json(servers)
        else:
            print_table([_row(s) for s in servers], STATUS_COLUMNS)
        _exit_for(servers)
        return
    server = run_async(api.call("GET", api.path("servers", name)))
    if json_output:
        print_json(server)
    else:
        _show(server)
    _exit_for([server])


def _act(api: GatewayApi, verb: str, name: str, json_output: bool) -> None:
    answer = run_async(api.call("POST", api.path("servers", name, verb)))
    server = answer["server"]
    if json_output:
        print_json(answer)
        _exit_for([server])
        return
    done = {"start": "started", "stop": "stopped", "restart": "restarted"}[verb]
    if not answer["changed"]:
        click.echo(f"{name} was already {'running' if verb == 'start' else 'stopped'}")
    state = server["state"]
    if state == "ready":
        pid = f"pid {server['pid']}, " if server.get("pid") else ""
        detail = f"ready ({pid}{server['tools']} tools)"
    elif state == "stopped":
        detail = "stopped"
    else:
        detail = f"{state}: {server.get('error') or 'not ready'}"
    if answer["changed"]:
        click.echo(f"{done} {name}: {detail}")
    elif verb == "start":
        click.echo(f"{name}: {detail}")
    _exit_for([server])


@click.command("start")
@click.argument("name")
@gateway_options(ACTION_TIMEOUT)
@json_option
def start(api: GatewayApi, name: str, json_output: bool) -> None:
    """Start server NAME of a running gateway, after `catalyst servers stop`.

    Waits until it has connected (or failed: exit 1, with why). A server that is running is
    left alone.
    """
    _act(api, "start", name, json_output)


@click.command("stop")
@click.argument("name")
@gateway_options(ACTION_TIMEOUT)
@json_option
def stop(api: GatewayApi, name: str, json_output: bool) -> None:
    """Stop server NAME of a running gateway, and keep it stopped.

    Its calls in flight may finish (within their time limit) first; then its processes are
    stopped and its tools are no longer listed. It stays stopped until `catalyst servers start`,
    or until a config reload changes its entry; a gateway restart starts it again (set
    `enabled: false` in the file to keep it off for good). /ready shows it as stopped without
    counting it as down.
    """
    _act(api, "stop", name, json_output)


@click.command("restart")
@click.argument("name")
@gateway_options(ACTION_TIMEOUT)
@json_option
def restart(api: GatewayApi, name: str, json_output: bool) -> None:
    """Restart server NAME of a running gateway, gracefully.

    A new process is started next to the running one and takes over once connected; the old
    one finishes its calls in flight, then stops. If the new one cannot connect while the old
    one is ready, the old one keeps serving and the command fails (exit 1) with why.
    Per-user and per-session processes start afresh at their next call.
    """
    _act(api, "restart", name, json_output)


def _print_lines(lines: list[dict[str, Any]], json_output: bool) -> None:
    for line in lines:
        if json_output:  # one object per line (NDJSON): a follower can read it line by line
            click.echo(orjson.dumps(line).decode())
            continue
        who = "" if line["instance"] == "shared" else f"[{line['instance']}] "
        click.echo(f"{who}{line['text']}")


@click.command("logs")
@click.argument("name")
@click.option(
    "--tail",
    "-n",
    type=click.IntRange(min=0, max=10_000),
    default=100,
    show_default=True,
    help="Show the newest N lines kept (the gateway keeps the server's log_lines lines).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until interrupted.")
@gateway_options(READ_TIMEOUT)
@json_option
def logs(api: GatewayApi, name: str, tail: int, follow: bool, json_output: bool) -> None:
    """Show the tail of server NAME's stderr, as a running gateway keeps it.

    Every stdio server's stderr lines are kept in a ring buffer of `log_lines` lines per
    server, across restarts; lines of per-user and per-session processes start with whose
    process wrote them ([user alice]). With --json, one JSON object per line (seq, at, pid,
    instance, text).
    """
    try:
        run_async(_logs(api, name, tail, follow, json_output))
    except KeyboardInterrupt:  # the way out of --follow
        click.get_current_context().exit(EXIT_OK)


async def _logs(api: GatewayApi, name: str, tail: int, follow: bool, json_output: bool) -> None:
    answer = await api.call("GET", api.path("servers", name, "logs", query={"tail": tail}))
    _print_lines(answer["lines"], json_output)
    last = answer["last_seq"]
    while follow:
        query = {"after": last, "wait": FOLLOW_WAIT}
        path = api.path("servers", name, "logs", query=query)
        answer = await api.call("GET", path, timeout=FOLLOW_WAIT + api.timeout)
        if answer["missed"]:
            click.echo(
                f"... {answer['missed']} lines not shown: they left the buffer "
                f"({answer['capacity']} lines) before they could be fetched",
                err=True,
            )
        _print_lines(answer["lines"], json_output)
        if answer["lines"]:
            last = answer["lines"][-1]["seq"]
        elif answer["last_seq"] < last:
            last = 0  # the gateway restarted: its lines are numbered from 1 again
