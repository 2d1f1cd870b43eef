"""``catalyst connect``: an interactive shell on any MCP server, or on the gateway.

What it connects to, through the same code as ``catalyst tools`` (a one-server
:class:`~catalyst_mcp.app.Gateway` in this process: the same upstream client, era
negotiation, Streamable HTTP / SSE / WebSocket / stdio transports):

* ``URL``: a server's endpoint (``http(s)://.../mcp``, ``.../sse``, ``ws(s)://.../ws``);
* ``NAME``: a server configured in catalyst.yaml (its entry as it is, run here);
* ``gateway`` or nothing: the gateway of the configuration, at its address
  (:func:`~catalyst_mcp.cli.gatewayurl.gateway_url`), with ``$CATALYST_API_KEY`` as its API key
  when that is set;
* ``--command 'PROG ARG...'``: a stdio server started for the session.

The shell itself is :mod:`catalyst_mcp.cli.shell`; the terminal side :mod:`.terminal`.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from catalyst_mcp.cli.common import (
    EXIT_CONNECT,
    CliError,
    find_config,
    load_config,
    run_async,
)
from catalyst_mcp.cli.gatewayurl import API_KEY_ENV, gateway_url
from catalyst_mcp.cli.shell import LineReader, Shell, StreamReader
from catalyst_mcp.cli.targets import (
    ENV_NAME,
    Target,
    TargetSpec,
    open_gateway,
    parse_env,
    parse_headers,
    safe_name,
)
from catalyst_mcp.settings import Settings, default_database_url

__all__ = ["connect"]

GATEWAY = "gateway"
HISTORY_FILE = "connect_history"
AUTH_HINT = (
    " (the server wants credentials: --api-key-env NAME sends the API key in $NAME, or give "
    "--header 'Authorization: Bearer ${TOKEN}')"
)


@click.command()
@click.argument("target", required=False, metavar="[URL|NAME]")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="catalyst.yaml where NAME and the gateway's address are found (default: "
    "$CATALYST_CONFIG, else ./catalyst.yaml).",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    callback=parse_headers,
    metavar="'NAME: VALUE'",
    help="HTTP header for a URL or the gateway (repeatable; values are never shown; "
    "${NAME} in a value reads the environment).",
)
@click.option(
    "--api-key-env",
    metavar="NAME",
    help=f"Send the API key in environment variable NAME as 'Authorization: Bearer <key>' "
    f"(for the gateway, ${API_KEY_ENV} is used when set).",
)
@click.option(
    "--transport",
    type=click.Choice(["streamable-http", "sse"]),
    help="Transport for an http(s) URL (default: streamable-http, or sse for URLs ending in "
    "/sse, falling back to sse when the server needs it). ws(s):// URLs are WebSocket.",
)
@click.option(
    "--command",
    "command_line",
    metavar="'PROG ARG...'",
    help="Start a stdio server with this command line (split like a shell does).",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    callback=parse_env,
    metavar="NAME=VALUE",
    help="Environment variable for the --command server (repeatable; values are never shown).",
)
@click.option(
    "--era",
    type=click.Choice(["auto", "modern", "legacy"]),
    help="Protocol era to speak (default: auto, or the server's setting for NAME).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Time limit for connecting and for each request (default: 30 s to connect, 60 s per "
    "call).",
)
@click.option(
    "--history",
    "history_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File of the command history (default: catalyst/connect_history in the user's state "
    "folder).",
)
@click.option("--no-history", is_flag=True, help="Keep no history file.")
@click.option("-v", "--verbose", is_flag=True, help="Show the log (and a stdio server's stderr).")
def connect(
    target: str | None,
    config_path: Path | None,
    headers: dict[str, str],
    api_key_env: str | None,
    transport: str | None,
    command_line: str | None,
    env: dict[str, str],
    era: str | None,
    timeout: float | None,
    history_file: Path | None,
    no_history: bool,
    verbose: bool,
) -> None:
    """Open an interactive shell on an MCP server: list, describe and call its tools, read
    its resources, get its prompts.

    \b
    URL|NAME is a server's endpoint URL (http://, https://, ws://, wss://), a server of
    catalyst.yaml, or `gateway` (the default): the configured gateway at its address.
    Type `help` in the shell for its commands. Lines may also be piped in.

    \b
    Examples:
      catalyst connect                                     # the gateway
      catalyst connect http://127.0.0.1:3000/mcp
      catalyst connect ws://127.0.0.1:8765/ws --api-key-env CATALYST_API_KEY
      catalyst connect github                              # a server of catalyst.yaml
      catalyst connect --command 'npx -y @modelcontextprotocol/server-everything'
    """
    spec, settings, label = _resolve(
        target,
        config_path,
        headers,
        api_key_env,
        transport,
        command_line,
        env,
        era,
        timeout,
        verbose,
    )
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    reader: LineReader
    if interactive:
        from catalyst_mcp.cli.terminal import TerminalReader

        reader = TerminalReader(None if no_history else history_file or _default_history())
    else:
        reader = StreamReader(sys.stdin)
    run_async(_session(settings, spec, label, reader, interactive), verbose=verbose)


def _resolve(
    target: str | None,
    config_path: Path | None,
    headers: dict[str, str],
    api_key_env: str | None,
    transport: str | None,
    command_line: str | None,
    env: dict[str, str],
    era: str | None,
    timeout: float | None,
    verbose: bool,
) -> tuple[TargetSpec, Settings, str]:
    """What to connect to: the target spec, the settings to run and the prompt's label."""
    if api_key_env is not None and not ENV_NAME.match(api_key_env):
        raise click.BadParameter("must be an environment variable name", param_hint="--api-key-env")
    if command_line is not None:
        if target is not None:
            raise click.UsageError("give a URL or NAME, or --command, not both")
        if headers or transport or api_key_env:
            raise click.UsageError("--header, --api-key-env and --transport need a URL")
        try:
            command = tuple(shlex.split(command_line))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--command") from exc
        if not command:
            raise click.BadParameter("the command is empty", param_hint="--command")
        spec = TargetSpec(command=command, env=env, era=era, timeout=timeout, verbose=verbose)
        return spec, _no_packs(spec.settings()), safe_name(Path(command[0]).name)
    if env:
        raise click.UsageError("--env needs --command")
    if target is not None and "://" in target:
        spec = TargetSpec(
            url=target,
            headers=_with_key(headers, api_key_env),
            transport=transport,
            era=era,
            timeout=timeout,
            verbose=verbose,
        )
        return spec, _no_packs(spec.settings()), spec.label.split("://", 1)[-1].split("/", 1)[0]
    settings = load_config(config_path)
    if target is None or target == GATEWAY:
        if api_key_env is None and "Authorization" not in headers and os.environ.get(API_KEY_ENV):
            api_key_env = API_KEY_ENV
        spec = TargetSpec(
            url=gateway_url(settings),
            headers=_with_key(headers, api_key_env),
            transport=transport,
            era=era,
            timeout=timeout,
            verbose=verbose,
        )
        return spec, _no_packs(spec.settings()), GATEWAY
    if headers or transport or api_key_env:
        raise click.UsageError(
            "--header, --api-key-env and --transport need a URL (a configured server uses "
            "its own entry)"
        )
    server = settings.servers.get(target)
    if server is None:
        known = ", ".join(sorted(settings.servers)) or "none"
        where = find_config(config_path) or "the built-in defaults"
        raise click.UsageError(
            f"{target!r} is not a URL, `{GATEWAY}`, or a server of {where} (servers: {known})"
        )
    update: dict[str, Any] = {"namespace": "", "enabled": True, "disabled": False}
    if era is not None:
        update["era"] = era
    if timeout is not None:
        update.update(timeout_seconds=timeout, connect_timeout_seconds=timeout)
    one = settings.model_copy(update={"servers": {target: server.model_copy(update=update)}})
    spec = TargetSpec(config=config_path, era=era, timeout=timeout, verbose=verbose)
    return spec, _no_packs(one), target


def _with_key(headers: dict[str, str], api_key_env: str | None) -> dict[str, str]:
    if api_key_env is None or any(h.lower() == "authorization" for h in headers):
        return headers
    if not os.environ.get(api_key_env):
        raise click.BadParameter(f"${api_key_env} is not set", param_hint="--api-key-env")
    return {**headers, "Authorization": f"Bearer ${{{api_key_env}}}"}


def _no_packs(settings: Settings) -> Settings:
    """The session serves the one server asked for, never the knowledge packs of the folder
    it was started in."""
    return settings.model_copy(update={"packs": settings.packs.model_copy(update={"path": None})})


def _default_history() -> Path:
    database = default_database_url(os.environ).removeprefix("sqlite+aiosqlite:///")
    return Path(database).parent / HISTORY_FILE


async def _session(
    settings: Settings, spec: TargetSpec, label: str, reader: LineReader, interactive: bool
) -> None:
    async with open_gateway(settings) as gateway:
        target = Target(gateway, spec)
        for provider in gateway.registry.providers:
            try:
                target.require_ready(provider)
            except CliError as exc:
                message = exc.format_message()
                if "HTTP 401" in message:
                    message += AUTH_HINT
                raise CliError(message, EXIT_CONNECT) from exc
        shell = Shell(target, label, reader)
        bind = getattr(reader, "bind", None)
        if bind is not None:
            bind(shell)
        if not interactive:
            await shell.run()
            return
        from prompt_toolkit.patch_stdout import patch_stdout

        with patch_stdout(raw=True):
            await shell.run()
