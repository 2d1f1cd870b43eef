"""How commands reach a running gateway's admin API (``catalyst servers status|start|...``).

The gateway is found as ``catalyst health`` finds it (``--url``, its base URL). Credentials are
never given on the command line (the process list shows it): ``--api-key-env NAME`` names an
environment variable holding an administrator's API key or bearer JWT, sent as ``Authorization:
Bearer``; without it ``$CATALYST_API_KEY`` is used when set. A gateway without auth needs none
(its local anonymous user is an administrator unless ``auth.anonymous_roles`` says otherwise).

Answers map to exit codes in one place (:meth:`GatewayApi.call`): unreachable, or not a
Catalyst gateway, is 4; refused credentials, an unknown server or a failed action are 1, with
the gateway's own message.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import click
import orjson

from catalyst_mcp.cli.common import EXIT_CONNECT, EXIT_FAILED, CliError
from catalyst_mcp.cli.gatewayurl import API_KEY_ENV
from catalyst_mcp.cli.targets import safe_url
from catalyst_mcp.net.httpclient import HttpClient, HttpError, split_url

__all__ = ["API_KEY_ENV", "DEFAULT_URL", "GatewayApi", "gateway_options"]

DEFAULT_URL = "http://127.0.0.1:8765"  # the gateway's default listener
API_PREFIX = "/api/v1"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def gateway_options(default_timeout: float) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``--url``, ``--api-key-env`` and ``--timeout``, passed to the command as one
    :class:`GatewayApi` argument named ``api``."""

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(func)
        def wrapper(url: str, api_key_env: str | None, timeout: float, **kwargs: Any) -> None:
            func(api=GatewayApi.from_options(url, api_key_env, timeout), **kwargs)

        options = [
            click.option(
                "--url",
                default=DEFAULT_URL,
                show_default=True,
                help="Base URL of the running gateway (as for `catalyst health`).",
            ),
            click.option(
                "--api-key-env",
                metavar="NAME",
                help="Environment variable holding an administrator's API key (or bearer JWT), "
                f"sent as 'Authorization: Bearer ...' (default: ${API_KEY_ENV} when set; none "
                "needed while the gateway's auth is off).",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(min=0, min_open=True),
                default=default_timeout,
                show_default=True,
                metavar="SECONDS",
                help="Time limit for the gateway's answer.",
            ),
        ]
        decorated: Callable[..., None] = wrapper
        for option in reversed(options):
            decorated = option(decorated)
        return decorated

    return decorate


class GatewayApi:
    """The admin API of the gateway at ``url``, called with ``token`` (if any)."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.url = url
        self.base = split_url(url).path.split("?")[0].rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_options(cls, url: str, api_key_env: str | None, timeout: float) -> GatewayApi:
        try:
            split_url(url)
        except HttpError as exc:
            raise click.BadParameter(str(exc), param_hint="--url") from exc
        if api_key_env is not None:
            if not ENV_NAME.match(api_key_env):
                raise click.BadParameter(
                    "must be an environment variable name", param_hint="--api-key-env"
                )
            token = os.environ.get(api_key_env)
            if not token:
                raise click.BadParameter(f"${api_key_env} is not set", param_hint="--api-key-env")
        else:
            token = os.environ.get(API_KEY_ENV) or None
        return cls(url, token, timeout)

    def path(self, *segments: str, query: Mapping[str, Any] | None = None) -> str:
        """``/api/v1/<segments>`` (each percent-encoded) with ``query``."""
        path = self.base + API_PREFIX + "".join("/" + quote(s, safe="") for s in segments)
        wanted = {k: v for k, v in (query or {}).items() if v is not None}
        return f"{path}?{urlencode(wanted)}" if wanted else path

    async def call(self, method: str, path: str, *, timeout: float | None = None) -> Any:
        """The JSON answer of ``method path``; CliError (exit 4 or 1) when there is none."""
        limit = self.timeout if timeout is None else timeout
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        client = HttpClient(self.url, connect_timeout=min(limit, 10.0))
        where = safe_url(self.url)
        try:
            async with asyncio.timeout(limit):
                response = await client.request(method, headers, path=path, retry_stale=False)
                data = await response.read()
        except TimeoutError as exc:
            raise CliError(f"{where} did not answer within {limit:g}s", EXIT_CONNECT) from exc
        except HttpError as exc:
            raise CliError(f"cannot reach the gateway at {where}: {exc}", EXIT_CONNECT) from exc
        finally:
            await client.aclose()
        try:
            body = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            body = None
        if 200 <= response.status < 300:
            return body
        raise self._refusal(response.status, body)

    def _refusal(self, status: int, body: Any) -> CliError:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str):
            return CliError(
                f"{safe_url(self.url)} answered HTTP {status} without an admin API error: is it "
                "a Catalyst gateway? Give its base URL (not its MCP endpoint)",
                EXIT_CONNECT,
            )
        if status == 401:
            how = (
                "the key or token in use was refused"
                if self.token is not None
                else f"set ${API_KEY_ENV} (or --api-key-env NAME) to an administrator's API key"
            )
            return CliError(f"the gateway wants an administrator's credentials: {how} ({message})")
        return CliError(message, EXIT_FAILED)
