"""``catalyst serve``: run the gateway over HTTP (on TCP, default, or a Unix socket) or stdio."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from catalyst_mcp.cli.common import EXIT_USAGE, CliError, find_config, load_config, setup_logging
from catalyst_mcp.cli.config import environment_warnings
from catalyst_mcp.settings import Settings

if TYPE_CHECKING:
    from catalyst_mcp.app import Gateway
    from catalyst_mcp.transports.serving import HttpServer

__all__ = ["serve"]

log = logging.getLogger("catalyst")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to expose an unauthenticated gateway beyond this machine unless told to. A Unix
    socket never reaches beyond it: its file mode says who may connect."""
    if settings.gateway.uds is not None:
        return
    host = settings.gateway.host
    if _is_loopback(host) or settings.auth.enabled or settings.gateway.allow_non_loopback:
        return
    raise CliError(
        f"refusing to bind {host}: authentication is off, so anyone who can reach that address "
        "could use every configured server as the local admin. Turn it on (auth.enabled: true, "
        "then create users and keys: `catalyst users add`, `catalyst keys create`), bind "
        "127.0.0.1, or set gateway.allow_non_loopback: true "
        "(CATALYST_GATEWAY__ALLOW_NON_LOOPBACK=true) if something else authenticates callers."
    )


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="catalyst.yaml to use (default: $CATALYST_CONFIG, else ./catalyst.yaml if present).",
)
@click.option("--host", help="Address to bind (overrides gateway.host).")
@click.option("--port", type=int, help="Port to bind (overrides gateway.port).")
@click.option("--stdio", is_flag=True, help="Serve one client over stdin/stdout instead of HTTP.")
@click.option(
    "--uds",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Listen on this Unix domain socket instead of TCP (overrides gateway.uds).",
)
@click.option(
    "--uds-mode",
    help="File mode of the Unix socket, octal (default 0600; overrides gateway.uds_mode).",
)
@click.option(
    "--workers",
    metavar="N|auto",
    help="Gateway processes serving the one port, supervised (overrides gateway.workers; "
    "default 1; auto: one per CPU core).",
)
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    stdio: bool,
    uds: Path | None,
    uds_mode: str | None,
    workers: str | None,
) -> None:
    """Run the gateway: one MCP endpoint over every configured server."""
    if uds is not None and (host is not None or port is not None or stdio):
        raise CliError(
            "--uds listens on a Unix socket: it cannot go with --host, --port or --stdio"
        )
    if workers is not None and stdio:
        raise CliError("--workers serves HTTP: it cannot go with --stdio (one client, one process)")
    settings = load_config(config_path)
    config_file = find_config(config_path)  # watched for edits (gateway.watch_config)
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if uds is not None:
        overrides["uds"] = uds
    if uds_mode is not None:
        overrides["uds_mode"] = _mode_text(uds_mode)
    if workers is not None:
        overrides["workers"] = _workers_value(workers)
    if overrides:
        gateway = settings.gateway.model_copy(update=overrides)
        settings = settings.model_copy(update={"gateway": gateway})
    setup_logging(settings.gateway.log_level, settings.log.format)
    for warning in environment_warnings():  # a typo must not pass silently
        log.warning("%s", warning.message)
    if stdio:
        from catalyst_mcp.transports.stdio import serve_stdio

        _run(serve_stdio(settings, config_file=config_file))
        return
    check_bind(settings)
    count = worker_count(settings)
    if count > 1:
        from catalyst_mcp.workers.serve import serve_workers

        serve_workers(settings, config_file, overrides, count)
        return
    _run(_serve_http(settings, config_file))


def worker_count(settings: Settings) -> int:
    """How many gateway processes ``gateway.workers`` asks for (``auto``: the usable cores)."""
    workers = settings.gateway.workers
    if workers == "auto":
        from catalyst_mcp.workers.supervisor import cpu_count

        return cpu_count()
    return workers


def _workers_value(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise CliError(
            f"--workers: {text!r} is not a number of processes (1 to 256) or 'auto'", EXIT_USAGE
        )
    return value


def _mode_text(text: str) -> str:
    from catalyst_mcp.transports.unixsocket import parse_mode

    try:
        return f"0{parse_mode(text):o}"
    except ValueError as exc:
        raise CliError(f"--uds-mode: {exc}") from exc


def _run(main: object) -> None:
    try:
        import uvloop

        uvloop.run(main)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - platforms without uvloop
        asyncio.run(main)  # type: ignore[arg-type]
    except KeyboardInterrupt:  # pragma: no cover
        pass


async def _serve_http(
    settings: Settings,
    config_file: Path | None = None,
    *,
    listening: Sequence[socket.socket] | None = None,
    worker: int | None = None,
    on_started: Callable[[HttpServer], None] | None = None,
    on_gateway: Callable[[Gateway], object] | None = None,
) -> None:
    """Serve the gateway until SIGTERM or SIGINT. A worker of ``--workers N``
    (:mod:`catalyst_mcp.workers.child`) passes the sockets its supervisor bound (``listening``),
    its number, what to do once it listens instead of announcing where it serves, and what to
    do with the gateway once built (``on_gateway``)."""
    from catalyst_mcp.app import Gateway
    from catalyst_mcp.transports.httpserver import Limits
    from catalyst_mcp.transports.serving import HttpServer, ServerError
    from catalyst_mcp.transports.unixsocket import UnixSocket, parse_mode

    gateway = Gateway(settings, config_file=config_file)
    gateway.worker = worker
    if on_gateway is not None:
        on_gateway(gateway)
    path = settings.gateway.uds

    def announce(server: HttpServer) -> None:
        if server.paths:
            where = f"http://localhost{settings.gateway.mcp_path} on the Unix socket {path}"
        else:
            host, port = server.addresses[0]  # set once listening
            hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            where = f"http://{hostport}{settings.gateway.mcp_path}"
        click.echo(
            f"catalyst: serving MCP at {where} ({len(settings.servers)} servers configured)",
            err=True,
        )

    # a WebSocket message is held to the same limit as a request body
    limits = Limits(max_message_bytes=settings.gateway.max_request_bytes)
    server = HttpServer(gateway.asgi, settings.gateway.host, settings.gateway.port, limits=limits)
    unix: UnixSocket | None = None
    try:
        if path is not None and listening is None:
            unix = UnixSocket(path, parse_mode(settings.gateway.uds_mode))
            listening = [unix.sock]
        await server.serve(listening, handle_signals=True, on_started=on_started or announce)
    except ServerError as exc:
        raise CliError(str(exc)) from exc
    finally:
        if unix is not None:
            unix.remove()
