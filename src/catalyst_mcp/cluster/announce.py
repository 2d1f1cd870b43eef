"""Configuration changes made through one instance's API, applied by every instance at once.

The admin API (and the dashboard, which goes through it) changes what is held in the
database (roles, users and keys, rules, approvals, tool pins, secrets) and what an instance
runs (a server stopped, started, restarted). The instance that served the change applies it
before it answers; this module tells every other instance (a broadcast on Redis pub/sub, sent
before the answer) what changed, and each applies it the way the serving one did: it reads
the roles or rules again, forgets the cached keys or secrets, rechecks held tools, wakes the
calls waiting for an approval, or stops, starts or restarts the server. Without Redis, the
other instances pick such changes up on their own schedules (``auth.key_cache_seconds``,
``rules.refresh_seconds``, every 30 s for roles, 2 s for pins), as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from catalyst_mcp.cluster.bus import Bus
from catalyst_mcp.cluster.config import RedisSettings
from catalyst_mcp.context import Identity
from catalyst_mcp.errors import CatalystError, SharedStateUnavailable

if TYPE_CHECKING:
    from catalyst_mcp.app import Gateway

__all__ = ["ANNOUNCED", "Announcements", "announce_from_cli", "appliers_for"]

log = logging.getLogger("catalyst.cluster")

Apply = Callable[[dict[str, str], str], Awaitable[None]]

# the admin API's changes other instances must apply (the others change nothing they hold)
ANNOUNCED = frozenset(
    {
        "admin.roles.put",
        "admin.roles.delete",
        "admin.users.update",
        "admin.users.delete",
        "admin.keys.revoke",
        "admin.rules.put",
        "admin.rules.delete",
        "admin.approvals.approve",
        "admin.approvals.reject",
        "admin.tools.approve",
        "admin.secrets.put",
        "admin.secrets.delete",
        "admin.servers.start",
        "admin.servers.stop",
        "admin.servers.restart",
    }
)


# what the CLI changes straight in the database (its audit actions, by prefix), as the API
# change every instance applies the same way
FROM_CLI = {
    "admin.roles.": "admin.roles.put",
    "admin.users.": "admin.users.update",
    "admin.keys.revoke": "admin.keys.revoke",
    "admin.secrets.": "admin.secrets.put",
    "admin.tools.approve": "admin.tools.approve",
    "admin.approvals.": "admin.approvals.approve",
}


class Announcements:
    """Tells the other instances of each change, and applies theirs here."""

    def __init__(self, bus: Bus, appliers: dict[str, Apply]) -> None:
        self.bus = bus
        self.appliers = appliers
        self.applied = 0  # changes of other instances applied here (for tests and metrics)
        bus.handlers["config"] = self._on_config

    async def changed(self, action: str, params: dict[str, str], identity: Identity) -> None:
        """The API made the change ``action`` (on the objects ``params`` name) for
        ``identity``: tell every other instance."""
        if action not in ANNOUNCED:
            return
        try:
            await self.bus.broadcast(
                {"k": "config", "a": action, "p": params, "by": identity.subject}
            )
        except CatalystError:  # logged; the others catch up on their own schedules
            log.warning("could not announce %s to the other instances", action)

    def _on_config(self, message: dict[str, Any]) -> None:
        apply = self.appliers.get(str(message.get("a")))
        params = message.get("p")
        if apply is None or not isinstance(params, dict):
            return
        self.bus.spawn(self._apply(apply, str(message["a"]), params, str(message.get("by"))))

    async def _apply(self, apply: Apply, action: str, params: dict[str, str], by: str) -> None:
        try:
            await apply(params, by)
        except CatalystError as exc:
            log.warning("applying %s of another instance failed: %s", action, exc.message)
            return
        self.applied += 1
        log.info("applied %s made on another instance", action)


def appliers_for(gateway: Gateway) -> dict[str, Apply]:
    """How this gateway applies each announced change."""
    access = gateway.access

    async def roles(params: dict[str, str], by: str) -> None:
        await access.reload_roles()
        if access.keys is not None:  # cached keys carry their users' roles
            access.keys.forget()

    async def keys(params: dict[str, str], by: str) -> None:
        if access.keys is not None:
            access.keys.forget()

    async def rules(params: dict[str, str], by: str) -> None:
        await gateway.rules.ruleset.load_stored()

    async def approval(params: dict[str, str], by: str) -> None:
        gateway.rules.approvals.wake(params.get("id", ""))

    async def pins(params: dict[str, str], by: str) -> None:
        for pins in gateway.pinning.live(params.get("name", "")):
            await pins.recheck()

    async def secrets(params: dict[str, str], by: str) -> None:
        gateway.secrets.forget()

    async def start(params: dict[str, str], by: str) -> None:
        await gateway.servers.start_server(params["name"], by)

    async def stop(params: dict[str, str], by: str) -> None:
        await gateway.servers.stop_server(params["name"], by)

    async def restart(params: dict[str, str], by: str) -> None:
        await gateway.servers.restart_server(params["name"], by)

    return {
        "admin.roles.put": roles,
        "admin.roles.delete": roles,
        "admin.users.update": keys,
        "admin.users.delete": keys,
        "admin.keys.revoke": keys,
        "admin.rules.put": rules,
        "admin.rules.delete": rules,
        "admin.approvals.approve": approval,
        "admin.approvals.reject": approval,
        "admin.tools.approve": pins,
        "admin.secrets.put": secrets,
        "admin.secrets.delete": secrets,
        "admin.servers.start": start,
        "admin.servers.stop": stop,
        "admin.servers.restart": restart,
    }


async def announce_from_cli(settings: RedisSettings, action: str, target: str) -> bool:
    """Tell the running instances of a change the CLI made in the database (``action`` as
    its audit record names it, on ``target``); False when there is nothing to tell them.
    SharedStateUnavailable when Redis cannot be reached (they catch up on their own
    schedules then)."""
    if settings.url is None:
        return False
    announced = next((a for p, a in FROM_CLI.items() if action.startswith(p)), None)
    if announced is None:
        return False
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.url,
        socket_timeout=settings.timeout_seconds,
        socket_connect_timeout=settings.timeout_seconds,
    )
    message = {
        "k": "config",
        "a": announced,
        "p": {"name": target, "id": target},
        "by": "cli",
        "from": "cli",
    }
    try:
        await client.publish("{" + settings.prefix + "}:all", orjson.dumps(message))
    except RedisError as exc:
        raise SharedStateUnavailable(
            f"Redis (redis.url) cannot be reached: {type(exc).__name__}"
        ) from exc
    finally:
        await client.aclose()
    return True
