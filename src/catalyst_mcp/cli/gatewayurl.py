"""Where clients reach the configured gateway: its MCP endpoint URL.

``auth.resource_url`` (the public URL a proxy in front serves) when set, else
``http://<gateway.host>:<gateway.port><gateway.mcp_path>``, with a wildcard bind address
(``0.0.0.0``, ``::``) replaced by the loopback address of the same family.
"""

from __future__ import annotations

from catalyst_mcp.cli.common import EXIT_USAGE, CliError
from catalyst_mcp.settings import Settings

__all__ = ["API_KEY_ENV", "gateway_url"]

# The environment variable client configs and `catalyst connect` read the API key from.
API_KEY_ENV = "CATALYST_API_KEY"
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def gateway_url(settings: Settings) -> str:
    """The MCP endpoint URL of the gateway ``settings`` describe."""
    if settings.auth.resource_url:
        return settings.auth.resource_url
    gateway = settings.gateway
    if gateway.uds is not None:
        raise CliError(
            f"the gateway listens on the Unix socket {gateway.uds}, which this client cannot "
            "reach: give the gateway's URL",
            EXIT_USAGE,
        )
    host = WILDCARDS.get(gateway.host, gateway.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{gateway.port}{gateway.mcp_path}"
