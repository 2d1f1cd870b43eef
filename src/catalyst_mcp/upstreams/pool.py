"""A server run as one process (or HTTP client) per caller or per session: ``sharing: per-user``
or ``per-session``, and every entry whose env or headers say ``${secret:NAME}``.

A :class:`ProcessPool` runs one *shared* instance, started with the gateway, which provides the
lists (tools, resources, prompts), and starts one more instance per **key** at the key's first
call:

* ``per-user``: the key is the caller (the authenticated subject);
* ``per-session``: the key is the MCP session: a legacy session's id, or for a modern request on
  a stdio or WebSocket connection, the connection (:attr:`CallContext.session_key`). A modern
  request over HTTP has no session (the era is stateless) and is refused with an error that says
  how to connect instead. When the session ends (DELETE, expiry, a closed connection) its
  instance is stopped (:meth:`ProcessPool.session_ended`).

An instance runs with its caller's ``${secret:...}`` values (resolved through the secrets store:
their own value for this server, else their own for any server, else the shared one for this
server, else the shared one for any server), never logged. When a caller's values change, their
instance is restarted with the new ones. An entry that references secrets without saying
``sharing:`` keeps the older economy: a caller whose values are the shared ones uses the shared
instance. With ``sharing:`` given, every key gets an instance of its own.

Instances unused for ``idle_seconds`` (and with no call in flight) are stopped. Two caps bound
them, and a caller who needs a new instance past either gets :class:`ProcessLimit`, which names
the cap and what to do: ``max_processes`` instances of this server in all, and
``max_processes_per_user`` of them for one user (per-session mode; per-user mode has one per
user by nature). Instances are never evicted to make room: that would cut off another caller.
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
from catalyst_mcp.errors import CatalystError, ProcessLimit, UpstreamUnavailable
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.security.references import fill
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams.upstream import Upstream

if TYPE_CHECKING:
    from catalyst_mcp.security.injection import SecretInjector
    from catalyst_mcp.trust.pinning import ToolPins
    from catalyst_mcp.upstreams.serverlog import ServerLog

__all__ = ["ProcessPool"]

log = logging.getLogger("catalyst.upstreams")

SHARED = "*"
SHOWN_KEY = 8  # characters of a session id shown in labels and logs (it is a bearer of sorts)


@dataclass
class _Instance:
    upstream: Upstream
    digest: str  # of the values it runs with
    last_used: float
    owner: str = ""  # the subject it runs for
    key: str = ""  # the user, or the session


class ProcessPool(Provider):
    def __init__(
        self,
        name: str,
        namespace: str,
        config: ServerConfig,
        call_timeout: float,
        secrets: SecretInjector,
        *,
        log: ServerLog | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        super().__init__(name, namespace)
        self.template = config
        self.mode = config.mode
        self.call_timeout = call_timeout
        self.secrets = secrets
        self.log = log
        self.names = config.secret_names
        # secrets referenced, sharing unset: callers with the shared values use the shared one
        self.economy = config.sharing is None
        self.idle_seconds = config.idle_seconds
        self.max_processes = config.max_processes
        self.max_per_user = config.max_processes_per_user
        self.clock = clock
        self.shared: Upstream | None = None
        self._shared_digest = ""
        self.instances: dict[str, _Instance] = {}
        # starts in flight, by key and the digest of the values they start with
        self._starting: dict[tuple[str, str], asyncio.Task[_Instance]] = {}
        self._owners: dict[tuple[str, str], str] = {}  # whose each start in flight is
        self._reaper: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
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
        if not self.names:
            return self.template
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

    def _upstream(self, values: dict[str, str], instance: str = "shared") -> Upstream:
        return Upstream(
            self.name,
            self.namespace,
            self._configured(values),
            self.call_timeout,
            log=self.log,
            instance=instance,
        )

    def label(self, key: str) -> str:
        """How an instance is named in logs and reports: ``user alice``, ``session 1a2b3c4d``."""
        return f"user {key}" if self.mode == "per-user" else f"session {key[:SHOWN_KEY]}"

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
        instances, self.instances = self.instances, {}
        await asyncio.gather(*(i.upstream.stop() for i in instances.values()))
        await asyncio.gather(*self._stopping, return_exceptions=True)
        if self.shared is not None:
            await self.shared.stop()

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until no instance has a call running."""
        instances = [i.upstream for i in self.instances.values()]
        if self.shared is not None:
            instances.append(self.shared)
        await asyncio.gather(*(u.drain(timeout) for u in instances))

    async def _reap(self) -> None:
        """Stop the instances idle for ``idle_seconds`` (a failure is logged and the next round
        tries again: the reaper never stops)."""
        while True:
            await asyncio.sleep(max(0.2, min(60.0, self.idle_seconds / 4)))
            try:
                await self.reap_idle()
            except Exception as exc:
                log.warning("%s: reaping idle processes failed: %s", self.name, exc)

    async def reap_idle(self) -> int:
        """Stop every instance unused for ``idle_seconds`` and not serving a call; how many
        were stopped."""
        cutoff = self.clock() - self.idle_seconds
        idle = [(key, i) for key, i in self.instances.items() if i.last_used <= cutoff]
        stopped = 0
        for key, instance in idle:
            # it may have been replaced, ended or used while earlier ones were stopping
            if self.instances.get(key) is not instance or instance.last_used > cutoff:
                continue
            if instance.upstream.in_use():
                continue  # a long call: idle once it is over
            del self.instances[key]
            log.info("%s: stopping the idle process of %s", self.name, self.label(key))
            await instance.upstream.stop()
            stopped += 1
        return stopped

    def session_ended(self, key: str) -> bool:
        """The session (or connection) ``key`` is over: stop its instance, if it has one."""
        if self.mode != "per-session":
            return False
        instance = self.instances.pop(key, None)
        if instance is None:
            return False
        log.info("%s: stopping the process of %s (it ended)", self.name, self.label(key))
        task = asyncio.get_running_loop().create_task(instance.upstream.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        return True

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
        key = owner if self.mode == "per-user" else ctx.session_key
        if key is None:
            raise UpstreamUnavailable(
                self.name,
                f"{self.name} runs one process per MCP session (sharing: per-session), and this "
                "request belongs to none: modern-era requests over HTTP are stateless. Connect "
                "over WebSocket (/ws) or stdio, where the connection is the session, or as a "
                "legacy-era client (initialize, Mcp-Session-Id); or ask an administrator for "
                f"sharing: per-user on {self.name}",
            )
        values = await self._values(owner) if self.names else {}
        digest = self._digest(values) if self.names else self._shared_digest
        upstream: Upstream | None
        if self.economy and digest == self._shared_digest:
            upstream = self.shared
        else:
            upstream = (await self._instance(key, owner, digest, values)).upstream
        if upstream is None:
            raise UpstreamUnavailable(self.name, f"{self.name} is not started")
        return await upstream.call(method, params, ctx)

    async def _instance(
        self, key: str, owner: str, digest: str, values: dict[str, str]
    ) -> _Instance:
        instance = self.instances.get(key)
        if instance is not None and instance.digest == digest:
            instance.last_used = self.clock()
            return instance
        start = (key, digest)
        task = self._starting.get(start)
        if task is None:  # one start per key and values, however many calls arrive meanwhile
            if instance is None:
                self._check_caps(key, owner)
            starting = self._start_for(key, owner, digest, values)
            task = asyncio.get_running_loop().create_task(starting)
            self._starting[start] = task
            self._owners[start] = owner
            task.add_done_callback(lambda _t: self._finished_start(start))
        return await asyncio.shield(task)

    def _finished_start(self, start: tuple[str, str]) -> None:
        self._starting.pop(start, None)
        self._owners.pop(start, None)

    def _check_caps(self, key: str, owner: str) -> None:
        """ProcessLimit if a new instance for ``key`` would pass a cap."""
        keys = set(self.instances) | {k for k, _ in self._starting}
        if key in keys:
            return  # replacing or already starting: no new process
        idle = f"idle ones are stopped after {self.idle_seconds:g}s"
        if len(keys) >= self.max_processes:
            per = "user" if self.mode == "per-user" else "session"
            raise ProcessLimit(
                self.name,
                f"{self.name} runs one process per {per} and all {self.max_processes} it may "
                f"run are in use (servers.{self.name}.max_processes): retry later ({idle}), or "
                "ask an administrator to raise the cap",
                data={"cap": "max_processes", "limit": self.max_processes},
            )
        if self.mode != "per-session":
            return
        mine = {k for k, i in self.instances.items() if i.owner == owner}
        mine |= {k for (k, _), who in self._owners.items() if who == owner}
        if len(mine) >= self.max_per_user:
            raise ProcessLimit(
                self.name,
                f"you hold {len(mine)} processes of {self.name}, one per open session, which is "
                f"the most one user may (servers.{self.name}.max_processes_per_user = "
                f"{self.max_per_user}): close a session you no longer use, retry later "
                f"({idle}), or ask an administrator to raise the cap",
                data={"cap": "max_processes_per_user", "limit": self.max_per_user},
            )

    async def _start_for(
        self, key: str, owner: str, digest: str, values: dict[str, str]
    ) -> _Instance:
        old = self.instances.pop(key, None)
        if old is not None:  # their secrets changed: restart with the new values
            await old.upstream.stop()
        upstream = self._upstream(values, self.label(key))
        await upstream.start()
        await upstream.wait_settled(self.template.connect_timeout_seconds + 5)
        instance = _Instance(upstream, digest, self.clock(), owner, key)
        replaced = self.instances.get(key)
        self.instances[key] = instance
        if replaced is not None:  # a start with other values finished meanwhile: never orphan it
            await replaced.upstream.stop()
        log.info("%s: started a process for %s", self.name, self.label(key))
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

    def processes(self) -> list[dict[str, Any]]:
        """One line per caller's instance: whose, its pid, state, restarts, last use."""
        now = self.clock()
        found = []
        for key, instance in sorted(self.instances.items()):
            report = instance.upstream.health()
            found.append(
                {
                    "instance": self.label(key),
                    "status": report["status"],
                    "pid": report.get("pid"),
                    "up_since": report.get("upSince"),
                    "restarts": report["restarts"],
                    "idle_seconds": round(max(0.0, now - instance.last_used), 1),
                    "error": report.get("error"),
                }
            )
        return found

    def health(self) -> dict[str, Any]:
        if self.shared is None:
            return {"name": self.name, "kind": self.template.kind, "status": "starting"}
        report = dict(self.shared.health())
        report["sharing"] = self.mode
        report["processes"] = len(self.instances)
        report["processRestarts"] = sum(i.upstream.restarts for i in self.instances.values())
        return report
