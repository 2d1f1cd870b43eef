"""What an administrator sees of a configured server, and what stands in for a stopped one.

:class:`StoppedServer` takes the place of a server an administrator stopped (``catalyst servers
stop``): it lists nothing, refuses calls with an error that says who stopped it and how to
start it again, and reports ``status: stopped`` to ``/ready``. It holds no process.

:func:`server_status` is the one report ``catalyst servers status`` and ``GET
/api/v1/servers[/{name}]`` show: state, pid, uptime, restarts, the last error and when, the
circuit breaker, the sharing mode, how many per-user or per-session processes run, and how many
tools it offers.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import UpstreamUnavailable
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams.pool import ProcessPool

__all__ = ["STOPPED", "StoppedServer", "iso", "server_status"]

STOPPED = "stopped"


def iso(at: float) -> str:
    """A ``time.time()`` as ISO 8601 UTC, to the second."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StoppedServer(Provider):
    """A configured server an administrator stopped; ``by`` is who, ``at`` when
    (``time.time()``). ``last`` is the health report of the provider it replaced."""

    def __init__(
        self,
        name: str,
        namespace: str,
        config: ServerConfig,
        by: str,
        last: dict[str, Any],
        at: float | None = None,
    ) -> None:
        super().__init__(name, namespace)
        self.config = config
        self.by = by
        self.at = time.time() if at is None else at
        self.last = last

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return []

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        raise UpstreamUnavailable(self.name, self.why())

    def why(self) -> str:
        return (
            f"{self.name} was stopped by an administrator ({self.by}, {iso(self.at)}); "
            f"`catalyst servers start {self.name}` starts it again"
        )

    async def drain(self, timeout: float) -> None:
        return None  # nothing runs

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "name": self.name,
            "kind": "server",
            "status": STOPPED,
            "transport": self.config.kind,
            "stoppedBy": self.by,
            "stoppedAt": iso(self.at),
            "restarts": self.last.get("restarts", 0),
            "tools": 0,
            "resources": 0,
            "prompts": 0,
        }
        if "lastFailure" in self.last:
            report["lastFailure"] = self.last["lastFailure"]
        return report


def server_status(
    name: str,
    provider: Provider,
    config: ServerConfig,
    carried_restarts: int = 0,
    *,
    detail: bool = False,
) -> dict[str, Any]:
    """The administrator's report of one served server (``detail``: with each per-user or
    per-session process)."""
    health = provider.health()
    state = health.get("status", "unknown")
    up_since = health.get("upSince") if state == "ready" else None
    last = health.get("lastFailure")
    status: dict[str, Any] = {
        "name": name,
        "state": state,
        "transport": health.get("transport", config.kind),
        "era": health.get("era"),
        "sharing": config.mode,
        "sandboxed": config.kind == "stdio" and config.sandbox.enabled,
        "pid": health.get("pid"),
        "up_since": up_since,
        "uptime_seconds": None,
        # a stopped server's restarts are all carried (its report repeats the last provider's)
        "restarts": carried_restarts + (0 if state == STOPPED else int(health.get("restarts", 0))),
        "error": health.get("error"),
        "last_error": {"error": last["error"], "at": last["at"]} if last else None,
        "circuit": health.get("circuit"),
        "processes": int(health.get("processes", 0)),
        "tools": int(health.get("tools", 0)),
        "stopped_by": health.get("stoppedBy"),
        "stopped_at": health.get("stoppedAt"),
    }
    if up_since is not None:
        since = datetime.fromisoformat(up_since.replace("Z", "+00:00")).timestamp()
        status["uptime_seconds"] = max(0, round(time.time() - since))
    if detail:
        status["instances"] = provider.processes() if isinstance(provider, ProcessPool) else []
    return status
