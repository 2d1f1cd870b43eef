"""An upstream server that runs with each caller's own secrets: one process (or HTTP client) per
user, started on demand and stopped when idle.

A server entry whose ``env`` (stdio) or ``headers`` (HTTP) say ``${secret:NAME}`` is served by a
:class:`PerUserUpstream`. Its *shared* instance runs with the shared values (``catalyst secrets
set NAME --shared --server SERVER``; an unset one is empty) and provides the lists. A caller whose
resolved values differ from the shared ones (they stored their own) gets an instance of their
own, started at their first call with their values in its environment or headers, and stopped
after ``idle_seconds`` without a call; a caller whose values are the shared ones uses the shared
instance. Values are resolved through the secrets store (their own value for this server, else
their own for any server, else the shared one for this server, else the shared one for any
server) and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import CatalystError, UpstreamUnavailable
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.security.references import fill, names_in
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams.upstream import Upstream

if TYPE_CHECKING:
    from catalyst_mcp.security.injection import SecretInjector
    from catalyst_mcp.trust.pinning import ToolPins

__all__ = ["PerUserUpstream", "secret_names"]

log = logging.getLogger("catalyst.upstreams")

SHARED = "*"
MAX_USERS = 200  # processes per server; the least recently used is stopped beyond this


def secret_names(config: ServerConfig) -> list[str]:
    """The ``${secret:NAME}`` names of a server entry's env and headers (sorted)."""
    return sorted(set().union(*map(names_in, (*config.env.values(), *config.headers.values()))))


@dataclass
class _Instance:
    upstream: Upstream
    digest: str  # of the values it runs with
    last_used: float


class PerUserUpstream(Provider):
    def __init__(
        self,
        name: str,
        namespace: str,
        config: ServerConfig,
        call_timeout: float,
        secrets: SecretInjector,
        *,
        idle_seconds: float = 600.0,
        clock: Any = time.monotonic,
    ) -> None:
        super().__init__(name, namespace)
        self.template = config
        self.call_timeout = call_timeout
        self.secrets = secrets
        self.names = secret_names(config)
        self.idle_seconds = idle_seconds
        self.clock = clock
        self.shared: Upstream | None = None
        self._shared_digest = ""
        self.users: dict[str, _Instance] = {}
        # starts in flight, by user and the digest of the values they start with
        self._starting: dict[tuple[str, str], asyncio.Task[_Instance]] = {}
        self._reaper: asyncio.Task[None] | None = None
        # the shared instance's tools lists are reviewed against their pins: they are what is
        # listed (every instance runs the same server; held tools are refused by name)
        self.pins: ToolPins | None = None

    # ---- values -------------------------------------------------------------------------

    async def _values(self, owner: str) -> dict[str, str]:
        values = {}
        for name in self.names:
            value = await self.secrets.resolve(owner, self.name, name)
            values[name] = value or ""
        return values

    def _configured(self, values: dict[str, str]) -> ServerConfig:
        return self.template.model_copy(
            update={
                "env": {k: fill(v, values) for k, v in self.template.env.items()},
                "headers": {k: fill(v, values) for k, v in self.template.headers.items()},
            }
        )

    @staticmethod
    def _digest(values: dict[str, str]) -> str:
        text = "\0".join(f"{k}={v}" for k, v in sorted(values.items()))
        return hashlib.sha256(text.encode()).hexdigest()

    def _upstream(self, values: dict[str, str]) -> Upstream:
        return Upstream(self.name, self.namespace, self._configured(values), self.call_timeout)

    # ---- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        try:
            values = await self._values(SHARED)
        except CatalystError as exc:
            log.warning("%s: shared secrets unavailable (%s); starting without", self.name, exc)
            values = dict.fromkeys(self.names, "")
        self._shared_digest = self._digest(values)
        shared = self.shared = self._upstream(values)
        shared.on_change = lambda _provider, kinds: self.on_change(self, kinds)
        shared.on_resource_updated = lambda _provider, uri: self.on_resource_updated(self, uri)
        if self.pins is not None:
            shared.use_pins(self.pins)
        await shared.start()
        self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def wait_settled(self, timeout: float) -> None:
        if self.shared is not None:
            await self.shared.wait_settled(timeout)

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in list(self._starting.values()):
            task.cancel()
        users, self.users = self.users, {}
        await asyncio.gather(*(i.upstream.stop() for i in users.values()))
        if self.shared is not None:
            await self.shared.stop()

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until no instance has a call running."""
        instances = [i.upstream for i in self.users.values()]
        if self.shared is not None:
            instances.append(self.shared)
        await asyncio.gather(*(u.drain(timeout) for u in instances))

    async def _reap(self) -> None:
        """Stop the instances of users idle for ``idle_seconds`` (a failure is logged and the
        next round tries again: the reaper never stops)."""
        while True:
            await asyncio.sleep(max(1.0, min(60.0, self.idle_seconds / 4)))
            try:
                await self.reap_idle()
            except Exception as exc:
                log.warning("%s: reaping idle instances failed: %s", self.name, exc)

    async def reap_idle(self) -> int:
        """Stop every instance unused for ``idle_seconds``; how many were stopped."""
        cutoff = self.clock() - self.idle_seconds
        idle = [(owner, i) for owner, i in self.users.items() if i.last_used <= cutoff]
        stopped = 0
        for owner, instance in idle:
            # it may have been replaced, evicted or used while earlier ones were stopping
            if self.users.get(owner) is not instance or instance.last_used > cutoff:
                continue
            del self.users[owner]
            log.info("%s: stopping the idle instance of %s", self.name, owner)
            await instance.upstream.stop()
            stopped += 1
        return stopped

    # ---- serving ------------------------------------------------------------------------

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return self.shared.items(kind) if self.shared is not None else []

    async def refresh(self) -> None:
        if self.shared is not None:
            await self.shared.refresh()

    def withheld(self, kind: ListKind, name: str) -> CatalystError | None:
        pins = self.pins
        return pins.refusal(name) if pins is not None and kind == "tools" else None

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        owner = ctx.identity.subject
        values = await self._values(owner)
        digest = self._digest(values)
        if digest == self._shared_digest:
            upstream = self.shared
        else:
            upstream = (await self._instance(owner, digest, values)).upstream
        if upstream is None:
            raise UpstreamUnavailable(self.name, f"{self.name} is not started")
        return await upstream.call(method, params, ctx)

    async def _instance(self, owner: str, digest: str, values: dict[str, str]) -> _Instance:
        instance = self.users.get(owner)
        if instance is not None and instance.digest == digest:
            instance.last_used = self.clock()
            return instance
        key = (owner, digest)
        task = self._starting.get(key)
        if task is None:  # one start per user and values, however many calls arrive meanwhile
            task = asyncio.get_running_loop().create_task(self._start_for(owner, digest, values))
            self._starting[key] = task
            task.add_done_callback(lambda _t: self._starting.pop(key, None))
        return await asyncio.shield(task)

    async def _start_for(self, owner: str, digest: str, values: dict[str, str]) -> _Instance:
        old = self.users.pop(owner, None)
        if old is not None:  # their secrets changed: restart with the new values
            await old.upstream.stop()
        if len(self.users) >= MAX_USERS:
            oldest = min(self.users, key=lambda o: self.users[o].last_used)
            evicted = self.users.pop(oldest, None)
            if evicted is not None:
                await evicted.upstream.stop()
        upstream = self._upstream(values)
        await upstream.start()
        await upstream.wait_settled(self.template.connect_timeout_seconds + 5)
        instance = _Instance(upstream, digest, self.clock())
        replaced = self.users.get(owner)
        self.users[owner] = instance
        if replaced is not None:  # a start with other values finished meanwhile: never orphan it
            await replaced.upstream.stop()
        log.info("%s: started an instance for %s", self.name, owner)
        return instance

    async def subscribe(self, uri: str) -> None:
        if self.shared is not None:
            await self.shared.subscribe(uri)

    async def unsubscribe(self, uri: str) -> None:
        if self.shared is not None:
            await self.shared.unsubscribe(uri)

    @property
    def capabilities(self) -> dict[str, Any]:
        return self.shared.capabilities if self.shared is not None else {}

    @property
    def instructions(self) -> str | None:
        return self.shared.instructions if self.shared is not None else None

    @property
    def may_ask(self) -> bool:
        return self.shared.may_ask if self.shared is not None else False

    def health(self) -> dict[str, Any]:
        if self.shared is None:
            return {"name": self.name, "kind": self.template.kind, "status": "starting"}
        report = dict(self.shared.health())
        report["per_user_instances"] = len(self.users)
        report["per_user_restarts"] = sum(i.upstream.restarts for i in self.users.values())
        return report
