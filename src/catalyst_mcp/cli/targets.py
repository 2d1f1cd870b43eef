"""Where ``tools``, ``prompts`` and ``resources`` commands connect, through the gateway's own code.

A target is either every configured server (``--config``, the default) or one server given on
the command line (``--url`` or ``--command``/arguments after ``--``). Both run the same code the
gateway runs: a :class:`~catalyst_mcp.app.Gateway` built from settings, whose upstreams connect
with :func:`~catalyst_mcp.upstreams.session.open_session` over the Streamable HTTP, HTTP+SSE or
stdio transport, negotiate the era, and are namespaced by the registry. A server given on the
command line becomes a one-server configuration with the empty namespace, so its names appear
exactly as the server gives them.

Header and environment values given here may be secrets: they are passed to the server and
never printed. As in catalyst.yaml, ``${NAME}`` in the URL, headers, command and environment
values reads the environment variable NAME, so a token need not appear in the process list.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import re
import shlex
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from pydantic import ValidationError

from catalyst_mcp.app import Gateway
from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_CONNECT, CliError, load_config
from catalyst_mcp.context import CallContext
from catalyst_mcp.protocol.versions import LATEST_LEGACY
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.settings import Settings

__all__ = [
    "Target",
    "TargetSpec",
    "open_gateway",
    "open_target",
    "parse_env",
    "parse_headers",
    "safe_url",
    "target_options",
]

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Endings of upstream error messages that describe the gateway's retry loop, not the CLI's.
RETRY_SUFFIXES = ("; it will be restarted", "; it will be reconnected")


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What the target options asked for."""

    config: Path | None = None
    url: str | None = field(default=None, repr=False)  # may carry a token in its query
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # values are secret
    transport: str | None = None
    command: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict, repr=False)  # values are secret
    era: str | None = None
    timeout: float | None = None
    verbose: bool = False

    @property
    def adhoc(self) -> bool:
        """Whether one server was given on the command line (not the configured ones)."""
        return bool(self.url or self.command)

    @property
    def label(self) -> str:
        """How messages name the target (no secrets: no query, credentials or arguments)."""
        if self.url:
            return safe_url(self.url)
        if self.command:
            return shlex.quote(self.command[0]) + (" ..." if len(self.command) > 1 else "")
        return "the configured servers"

    def settings(self) -> Settings:
        """The settings to run: the configured ones, or one server from the command line."""
        if not self.adhoc:
            return with_overrides(load_config(self.config), era=self.era, timeout=self.timeout)
        server: dict[str, Any] = {"namespace": "", "era": self.era or "auto"}
        if self.url and not re.match(r"^(https?|wss?)://", self.url):
            raise click.BadParameter(
                "must start with http://, https://, ws:// or wss://", param_hint="--url"
            )
        if self.url:
            server.update(url=self.url, headers=self.headers)
            if self.transport:
                server["type"] = self.transport
            name = _host_name(self.url)
        else:
            server.update(command=self.command[0], args=list(self.command[1:]), env=self.env)
            name = safe_name(Path(self.command[0]).name)
        server["pin"] = "off"  # a server named on the command line is looked at, not trusted
        gateway: dict[str, Any] = {}
        if self.timeout is not None:
            server.update(timeout_seconds=self.timeout, connect_timeout_seconds=self.timeout)
            gateway["call_timeout_seconds"] = self.timeout
        try:  # ${NAME} in values reads the environment, as in catalyst.yaml
            return Settings.model_validate(
                {"gateway": gateway, "servers": {name: server}}, context={"environ": os.environ}
            )
        except ValidationError as exc:
            reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise click.UsageError(f"cannot use {self.label}: {reasons}") from exc


def with_overrides(settings: Settings, *, era: str | None, timeout: float | None) -> Settings:
    """``settings`` with every server's era and time limits replaced, when given."""
    update: dict[str, Any] = {}
    if era is not None:
        update["era"] = era
    if timeout is not None:
        update.update(timeout_seconds=timeout, connect_timeout_seconds=timeout)
    if not update:
        return settings
    servers = {name: c.model_copy(update=update) for name, c in settings.servers.items()}
    return settings.model_copy(update={"servers": servers})


def safe_name(text: str) -> str:
    """A valid server name made from ``text`` (letters and digits joined by '-' or '_')."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()

    def joiner(match: re.Match[str]) -> str:
        return "_" if set(match.group()) == {"_"} else "-"

    name = re.sub(r"[^A-Za-z0-9]+", joiner, plain).strip("-_")
    return name or "server"


def _host_name(url: str) -> str:
    """A server name for a URL: its host name, or ``server`` for an IP address."""
    host = urlsplit(url).hostname or ""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return "server"
    return safe_name(host)


def safe_url(url: str) -> str:
    """``url`` without credentials or query string, which may carry secrets."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}" + ("?..." if parts.query else "")


# ---- options -------------------------------------------------------------------------------


def parse_headers(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """A click callback: ``Name: value`` options as headers (values never echoed)."""
    headers: dict[str, str] = {}
    for raw in values:
        name, sep, value = raw.partition(":")
        name = name.strip()
        if not sep or not HEADER_NAME.match(name):
            # never echo the text: it may be a secret typed without its header name
            raise click.BadParameter("expected 'Name: value' (the value is not shown)", ctx, param)
        value = value.strip()
        if "\r" in value or "\n" in value or not value.isascii():
            raise click.BadParameter(
                f"the value of header {name!r} must be one line of ASCII", ctx, param
            )
        headers[name] = value
    return headers


def parse_env(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """A click callback: ``NAME=value`` options as environment variables (values never echoed)."""
    env: dict[str, str] = {}
    for raw in values:
        name, sep, value = raw.partition("=")
        if not sep or not ENV_NAME.match(name):
            raise click.BadParameter("expected 'NAME=value' (the value is not shown)", ctx, param)
        env[name] = value
    return env


_OPTIONS = [
    click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Use every server of this catalyst.yaml, namespaced as the gateway does (the "
        "default when neither --url nor --command is given; default file: $CATALYST_CONFIG, "
        "else ./catalyst.yaml).",
    ),
    click.option(
        "--url",
        help="A remote MCP server's endpoint URL (http://, https://, or ws:// and wss:// for "
        "MCP over WebSocket).",
    ),
    click.option(
        "--header",
        "headers",
        multiple=True,
        callback=parse_headers,
        metavar="'NAME: VALUE'",
        help="HTTP header for --url (repeatable; values are never shown). In single quotes, "
        "'Authorization: Bearer ${TOKEN}' reads TOKEN from the environment, which keeps the "
        "secret out of the process list.",
    ),
    click.option(
        "--transport",
        type=click.Choice(["streamable-http", "sse"]),
        help="Transport for --url (default: streamable-http, or sse for URLs ending in /sse; "
        "falls back to sse when the server needs it).",
    ),
    click.option(
        "--command",
        "command_line",
        metavar="'PROG ARG...'",
        help="Start a stdio server with this command line (split like a shell does). Or give "
        "the command after '--'.",
    ),
    click.option(
        "--env",
        "env",
        multiple=True,
        callback=parse_env,
        metavar="NAME=VALUE",
        help="Environment variable for the --command server (repeatable; values are never "
        "shown; ${NAME} in a value reads NAME from this environment).",
    ),
    click.option(
        "--era",
        type=click.Choice(["auto", "modern", "legacy"]),
        help="Protocol era to speak: auto probes with server/discover and falls back to "
        "initialize (default: auto, or each server's setting with --config).",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS",
        help="Time limit for connecting and for each request (default: 30 s to connect and "
        "60 s per call, or the config's values).",
    ),
    click.option(
        "-v", "--verbose", is_flag=True, help="Show the log (and a stdio server's stderr)."
    ),
    click.argument("server_command", nargs=-1, type=click.UNPROCESSED),
]


def target_options(func: Callable[..., None]) -> Callable[..., None]:
    """Add the target options to a command; it receives a :class:`TargetSpec` first."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> None:
        func(_spec(kwargs), **kwargs)

    decorated: Callable[..., None] = wrapper
    for decorator in reversed(_OPTIONS):
        decorated = decorator(decorated)
    return decorated


def _spec(options: dict[str, Any]) -> TargetSpec:
    config: Path | None = options.pop("config_path")
    url: str | None = options.pop("url")
    headers: dict[str, str] = options.pop("headers")
    transport: str | None = options.pop("transport")
    command_line: str | None = options.pop("command_line")
    env: dict[str, str] = options.pop("env")
    trailing: tuple[str, ...] = options.pop("server_command")
    command: tuple[str, ...] = trailing
    if command_line is not None:
        if trailing:
            raise click.UsageError("give the server command with --command or after '--', not both")
        try:
            command = tuple(shlex.split(command_line))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--command") from exc
        if not command:
            raise click.BadParameter("the command is empty", param_hint="--command")
    if url and command:
        raise click.UsageError("give --url or a command, not both")
    if config is not None and (url or command):
        raise click.UsageError("--config cannot be combined with --url or a command")
    if (headers or transport) and not url:
        raise click.UsageError("--header and --transport need --url")
    if env and not command:
        raise click.UsageError("--env needs --command (or a command after '--')")
    return TargetSpec(
        config=config,
        url=url,
        headers=headers,
        transport=transport,
        command=command,
        env=env,
        era=options.pop("era"),
        timeout=options.pop("timeout"),
        verbose=options.pop("verbose"),
    )


# ---- connecting ----------------------------------------------------------------------------


class Target:
    """A running gateway over the target's servers, with the calls the commands need."""

    def __init__(self, gateway: Gateway, spec: TargetSpec) -> None:
        self.gateway = gateway
        self.spec = spec

    def servers(self) -> list[dict[str, Any]]:
        """Health reports of every started server."""
        return [p.health() for p in self.gateway.registry.providers]

    def down(self) -> list[dict[str, Any]]:
        """Health reports of the servers that are not ready."""
        return [s for s in self.servers() if s["status"] != "ready"]

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        """Every server's ``kind`` under the names clients of the gateway see."""
        return self.gateway.registry.items(kind)

    def require_ready(self, provider: Provider) -> None:
        """Fail with exit code 4 when ``provider`` is not connected."""
        report = provider.health()
        if report["status"] != "ready":
            raise CliError(self._unreachable(report), EXIT_CONNECT)

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Serve one MCP request as the gateway would for a client without sampling etc."""
        ctx = CallContext(era="legacy", protocol_version=LATEST_LEGACY, method=method)
        return await self.gateway.server.handle(method, params, ctx)

    def _unreachable(self, report: dict[str, Any]) -> str:
        error = server_error(report) or f"not ready ({report['status']})"
        where = self.spec.label if self.spec.adhoc else f"server {report['name']!r}"
        hint = (
            " (run with --verbose to see its output)" if report.get("transport") == "stdio" else ""
        )
        return f"cannot connect to {where}: {error}{hint}"


def server_error(report: dict[str, Any]) -> str:
    """A server's last error, without its name in front or the gateway's retry plans."""
    error = str(report.get("error") or "")
    error = error.removeprefix(f"{report['name']}: ")
    for suffix in RETRY_SUFFIXES:
        error = error.removesuffix(suffix)
    return error


@contextlib.asynccontextmanager
async def open_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """A started gateway over ``settings`` (without a listener), stopped on the way out. It
    publishes no events and shares no state: a command's short-lived gateway is not an instance
    of the fleet (it would join the Redis consumer groups, report its own servers' states and
    take part in the instances' shared sessions and announcements). The result cache keeps the
    deployment's Redis (``cache.redis_url``, else ``redis.url``): a command's call may hit it."""
    quiet = settings.model_copy(
        update={
            "events": settings.events.model_copy(update={"enabled": False}),
            "redis": settings.redis.model_copy(update={"url": None}),
            "cache": settings.cache_in_effect(),
        }
    )
    try:
        gateway = Gateway(quiet)
    except ValueError as exc:  # e.g. two servers with the same namespace
        raise CliError(f"invalid configuration: {exc}", EXIT_CONFIG) from exc
    try:
        await gateway.start()
        yield gateway
    finally:
        await gateway.stop()


@contextlib.asynccontextmanager
async def open_target(spec: TargetSpec) -> AsyncIterator[Target]:
    """Connect to the target; a server given on the command line must be reachable (exit 4)."""
    settings = spec.settings()
    async with open_gateway(settings) as gateway:
        target = Target(gateway, spec)
        if spec.adhoc:
            for provider in gateway.registry.providers:
                target.require_ready(provider)
        yield target
