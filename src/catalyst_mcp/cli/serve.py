"""``catalyst serve``: run the gateway over HTTP (default) or stdio."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path

import click

from catalyst_mcp.cli.common import CliError, find_config, load_config, setup_logging
from catalyst_mcp.settings import Settings

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
    """Refuse to expose an unauthenticated gateway beyond this machine unless told to."""
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
def serve(config_path: Path | None, host: str | None, port: int | None, stdio: bool) -> None:
    """Run the gateway: one MCP endpoint over every configured server."""
    settings = load_config(config_path)
    config_file = find_config(config_path)  # watched for edits (gateway.watch_config)
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if overrides:
        gateway = settings.gateway.model_copy(update=overrides)
        settings = settings.model_copy(update={"gateway": gateway})
    setup_logging(settings.gateway.log_level)
    if stdio:
        from catalyst_mcp.transports.stdio import serve_stdio

        _run(serve_stdio(settings, config_file=config_file))
        return
    check_bind(settings)
    _run(_serve_http(settings, config_file))


def _run(main: object) -> None:
    try:
        import uvloop

        uvloop.run(main)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - platforms without uvloop
        asyncio.run(main)  # type: ignore[arg-type]
    except KeyboardInterrupt:  # pragma: no cover
        pass


async def _serve_http(settings: Settings, config_file: Path | None = None) -> None:
    from catalyst_mcp.app import Gateway
    from catalyst_mcp.transports.serving import HttpServer, ServerError

    gateway = Gateway(settings, config_file=config_file)

    def announce(server: HttpServer) -> None:
        host, port = server.addresses[0]  # set once listening
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        click.echo(
            f"catalyst: serving MCP at http://{where}{settings.gateway.mcp_path} "
            f"({len(settings.servers)} servers configured)",
            err=True,
        )

    server = HttpServer(gateway.asgi, settings.gateway.host, settings.gateway.port)
    try:
        await server.serve(handle_signals=True, on_started=announce)
    except ServerError as exc:
        raise CliError(str(exc)) from exc
