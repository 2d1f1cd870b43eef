"""The configured upstream servers, kept in step with the ``servers:`` section (hot reload),
and started, stopped and restarted by administrators.

A :class:`ServerSet` serves one provider per active server entry through the registry: an
:class:`~catalyst_mcp.upstreams.upstream.Upstream` (``sharing: shared``), or a
:class:`~catalyst_mcp.upstreams.pool.ProcessPool` (``per-user``, ``per-session``, and entries
whose ``env`` or ``headers`` say ``${secret:NAME}``). Each server's stderr is kept in a
:class:`~catalyst_mcp.upstreams.serverlog.ServerLog` of its own, across restarts.
:meth:`ServerSet.load` serves the servers of the settings the gateway starts with;
:meth:`ServerSet.apply` brings the set in step with new settings while the gateway runs:

* an entry whose validated config and namespace are unchanged is left alone: same process, same
  session, same subscriptions (a reformatted file, or an edit of another server, restarts
  nothing);
* an added entry is started; a changed one gets a new provider started next to the old one, which
  keeps serving meanwhile (make before break);
* once every new provider's first connection attempt has ended (connected, or failed and
  retrying with backoff like at start-up), one registry batch removes the removed and changed
  servers and adds the new ones: no request sees half of an edit, and clients hear
  ``list_changed`` once, for the lists that really differ;
* an entry whose name or namespace another provider (a knowledge pack) already uses is a
  conflict: :meth:`ServerSet.conflicts` finds them first and the caller refuses the whole edit.

A replaced or removed provider is retired: no new call reaches it, the calls it is running may
finish within its call timeout (plus a margin), then it is stopped (a stdio process: close
stdin, SIGTERM, SIGKILL). A call cannot outlast its call timeout, so none is cut off; only calls
of a ``serialize_calls`` server still waiting their turn at the end fail, as "unavailable
(stopped)".

Administrators act on one server at a time (``catalyst servers stop|start|restart``), under the
same lock as reloads:

* :meth:`ServerSet.stop_server` puts a :class:`~catalyst_mcp.upstreams.lifecycle.StoppedServer`
  in its place (lists empty, calls refused saying who stopped it) and retires the running
  provider as above; it returns once that is stopped. A stopped server stays stopped until
  :meth:`ServerSet.start_server`, or until a reload changes its entry (the edit is the newer
  word), or removes it. An unchanged entry leaves it stopped; a gateway restart starts it (put
  ``enabled: false`` in the file to keep it off for good).
* :meth:`ServerSet.restart_server` is make-before-break, like a changed entry: the new provider
  starts next to the old one and takes over once it connected, and the old one finishes its
  calls in flight before it stops. If the new one cannot connect while the old one is ready, the
  old one keeps serving and the restart fails with why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from catalyst_mcp.errors import CatalystError, Missing
from catalyst_mcp.providers import Provider
from catalyst_mcp.registry import Registry
from catalyst_mcp.settings import ServerConfig, Settings
from catalyst_mcp.upstreams.lifecycle import StoppedServer, server_status
from catalyst_mcp.upstreams.pool import ProcessPool
from catalyst_mcp.upstreams.serverlog import ServerLog
from catalyst_mcp.upstreams.upstream import Upstream

if TYPE_CHECKING:
    from catalyst_mcp.security.injection import SecretInjector
    from catalyst_mcp.trust.pinning import Pinning

__all__ = ["Builder", "RestartFailed", "ServerSet"]

log = logging.getLogger("catalyst.upstreams")

# Once its connect timeout is over, a failing server needs a moment to stop what it started (a
# stdio process gets a few seconds) before it reports why (the gateway's start-up waits as long).
SETTLE_MARGIN_SECONDS = 5.0
# A retired server's calls in flight get their call timeout plus this before it is stopped.
RETIRE_MARGIN_SECONDS = 1.0

Builder = Callable[[str, str, ServerConfig], Provider]
"""Makes the provider of one server entry: ``(name, namespace, config)``."""
Key = tuple[ServerConfig, str]  # what makes a server the same: its validated entry, namespace


@dataclass(frozen=True, slots=True)
class _Served:
    key: Key
    provider: Provider


class RestartFailed(CatalystError):
    """A restarted server's new process could not connect; the old one keeps serving."""


class ServerSet:
    """The upstream servers of the configuration, served through ``registry``.

    ``call_timeout`` is ``gateway.call_timeout_seconds`` (for entries without their own);
    ``secrets`` resolves the ``${secret:NAME}`` of per-user servers; ``build`` makes a server's
    provider instead of :meth:`build_upstream` (tests give their own); ``pinning`` pins the
    tools of the servers :meth:`build_upstream` makes.
    """

    def __init__(
        self,
        registry: Registry,
        call_timeout: float,
        secrets: SecretInjector,
        build: Builder | None = None,
        pinning: Pinning | None = None,
    ) -> None:
        self.registry = registry
        self.call_timeout = call_timeout
        self.secrets = secrets
        self.build: Builder = build if build is not None else self.build_upstream
        self.pinning = pinning  # pins the tools of servers built by build_upstream
        self._served: dict[str, _Served] = {}
        # providers started by an apply but not served yet (stopped by close() if it comes first)
        self._starting: set[Provider] = set()
        # replaced or removed providers finishing their calls, and the tasks waiting for them
        self._retiring: dict[Provider, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._lock = asyncio.Lock()  # one apply or administrator's action at a time
        self.logs: dict[str, ServerLog] = {}  # each server's stderr, kept across restarts
        # restarts of the providers a server had before its current one (status reports)
        self._carried: dict[str, int] = {}

    def build_upstream(self, name: str, namespace: str, config: ServerConfig) -> Provider:
        """The provider of one server entry: one process (or client) shared by every caller,
        or one per user or session (``config.mode``); a built-in runs in-process. Its tools
        are pinned as its ``pin`` says (with a ``pinning``; not a built-in's, which are ours)."""
        if config.builtin is not None:
            from catalyst_mcp.servers.builtins import build

            return build(
                name,
                namespace,
                config,
                call_timeout=self.call_timeout,
                secrets=self.secrets.for_scope(name),
            )
        pins = self.pinning.for_server(name, config) if self.pinning is not None else None
        log = self.log_of(name, config)
        if config.mode == "shared":
            upstream = Upstream(name, namespace, config, self.call_timeout, log=log)
            if pins is not None:
                upstream.use_pins(pins)
            return upstream
        pool = ProcessPool(name, namespace, config, self.call_timeout, self.secrets, log=log)
        pool.pins = pins
        return pool

    def log_of(self, name: str, config: ServerConfig) -> ServerLog:
        """The stderr ring buffer of server ``name``, sized by its ``log_lines``."""
        log = self.logs.get(name)
        if log is None:
            log = self.logs[name] = ServerLog(config.log_lines)
        else:
            log.resize(config.log_lines)
        return log

    # ---- state -------------------------------------------------------------------------------

    @property
    def providers(self) -> dict[str, Provider]:
        """The provider serving each server, by server name."""
        return {name: served.provider for name, served in sorted(self._served.items())}

    def config_of(self, name: str) -> ServerConfig | None:
        """The entry server ``name`` is served with now (None: no such server)."""
        served = self._served.get(name)
        return served.key[0] if served is not None else None

    @staticmethod
    def wanted(settings: Settings) -> dict[str, Key]:
        """The servers ``settings`` ask for (active entries), each with what identifies it."""
        return {
            name: (config, settings.namespace_of(name))
            for name, config in settings.servers.items()
            if config.active
        }

    def conflicts(self, settings: Settings) -> dict[str, str]:
        """Servers of ``settings`` (new or changed) whose name or namespace a provider other
        than a server uses, each with why it cannot be served."""
        mine = {id(served.provider) for served in self._served.values()}
        others = [p for p in self.registry.providers if id(p) not in mine]
        found: dict[str, str] = {}
        for name, key in self.wanted(settings).items():
            served = self._served.get(name)
            if served is not None and served.key == key:
                continue
            namespace = key[1]
            for other in others:
                if other.name == name:
                    found[name] = f"the name {name!r} is taken by {other.name}"
                elif namespace and other.namespace == namespace:
                    found[name] = (
                        f"namespace {namespace!r} is already used by {other.name}; give the "
                        "server another `namespace:`"
                    )
        return found

    # ---- loading -----------------------------------------------------------------------------

    def load(self, settings: Settings) -> None:
        """Serve the servers of ``settings`` (at construction, before anything is served);
        :class:`ValueError` if a name or namespace is taken, as :meth:`Registry.add` says."""
        with self.registry.batch():
            for name, key in self.wanted(settings).items():
                provider = self.build(name, key[1], key[0])
                self.registry.add(provider)
                self._served[name] = _Served(key, provider)

    async def apply(self, settings: Settings) -> bool:
        """Bring the served servers in step with ``settings`` (see the module docstring);
        whether anything changed. Check :meth:`conflicts` first: a conflicting entry raises
        :class:`ValueError` here and changes nothing."""
        async with self._lock:
            return await self._apply(settings)

    async def _apply(self, settings: Settings) -> bool:
        if self._closed:
            return False
        wanted = self.wanted(settings)
        removed = [name for name in self._served if name not in wanted]
        changed = [
            n for n, key in wanted.items() if n in self._served and self._served[n].key != key
        ]
        added = [name for name in wanted if name not in self._served]
        if not (removed or changed or added):
            return False
        _refuse(self.conflicts(settings))
        new = {name: self.build(name, wanted[name][1], wanted[name][0]) for name in changed + added}
        if not await self._start_all(new, wanted):
            return False
        try:
            _refuse(self.conflicts(settings))  # a pack may have taken a namespace meanwhile
        except ValueError:
            await _stop_all(new.values())
            raise
        old = {name: self._served.pop(name) for name in removed + changed}
        with self.registry.batch():  # one step: no request sees half of the edit
            for served in old.values():
                self.registry.remove(served.provider)
            for name, provider in new.items():
                self.registry.add(provider)
                self._served[name] = _Served(wanted[name], provider)
        for name, served in old.items():
            self._retire(served)
            log.info("server %s %s", name, "restarted" if name in new else "removed")
        for name in removed:
            self.logs.pop(name, None)
            self._carried.pop(name, None)
        for name in added:
            log.info("server %s added: %s", name, new[name].health().get("status"))
        return True

    async def _start_all(self, new: Mapping[str, Provider], wanted: Mapping[str, Key]) -> bool:
        """Start ``new`` and wait for each first connection attempt to end; False (everything
        stopped again) if the set was closed meanwhile."""
        self._starting.update(new.values())
        try:
            for provider in new.values():
                await provider.start()
            settle = [
                provider.wait_settled(
                    wanted[name][0].connect_timeout_seconds + SETTLE_MARGIN_SECONDS
                )
                for name, provider in new.items()
            ]
            await asyncio.gather(*settle)
        except BaseException:
            await _stop_all(new.values())
            raise
        finally:
            self._starting.difference_update(new.values())
        if self._closed:
            await _stop_all(new.values())
            return False
        return True

    # ---- an administrator's actions ----------------------------------------------------------

    def status(self, name: str, *, detail: bool = False) -> dict[str, object]:
        """What ``catalyst servers status`` shows of server ``name`` (Missing if not served)."""
        served = self._get(name)
        carried = self._carried.get(name, 0)
        return server_status(name, served.provider, served.key[0], carried, detail=detail)

    def log(self, name: str) -> ServerLog | None:
        """The stderr ring buffer of server ``name`` (Missing if not served; None if its
        provider keeps none)."""
        self._get(name)
        return self.logs.get(name)

    def statuses(self) -> list[dict[str, object]]:
        return [self.status(name) for name in sorted(self._served)]

    def _get(self, name: str) -> _Served:
        served = self._served.get(name)
        if served is None:
            raise Missing(
                f"no server named {name!r} is served (configured, enabled servers only: "
                "`catalyst servers status` lists them)"
            )
        return served

    async def stop_server(self, name: str, by: str) -> bool:
        """Stop server ``name`` and keep it stopped; False if it already was. Returns once its
        calls in flight are over (at most its call timeout) and it is stopped."""
        async with self._lock:
            served = self._get(name)
            if isinstance(served.provider, StoppedServer):
                return False
            last = served.provider.health()
            self._carry(name, served.provider)
            stopped = StoppedServer(name, served.provider.namespace, served.key[0], by, last)
            self._swap(name, served, stopped)
            retiring = self._retire(served)
        log.info("server %s stopped by %s", name, by)
        await asyncio.shield(retiring)
        return True

    async def start_server(self, name: str, by: str) -> bool:
        """Start server ``name`` if an administrator stopped it; False if it was not stopped.
        Returns once its first connection attempt has ended (see :meth:`status`)."""
        async with self._lock:
            served = self._get(name)
            if not isinstance(served.provider, StoppedServer):
                return False
            provider = self.build(name, served.key[1], served.key[0])
            if not await self._start_all({name: provider}, {name: served.key}):
                return False
            self._swap(name, served, provider)
        log.info("server %s started by %s", name, by)
        return True

    async def restart_server(self, name: str, by: str) -> None:
        """Restart server ``name`` (start it, if it was stopped): a new provider takes over
        once connected, the old one finishes its calls and stops. RestartFailed (nothing
        changed) if the new one cannot connect while the old one is ready."""
        async with self._lock:
            served = self._get(name)
            old = served.provider
            new = self.build(name, served.key[1], served.key[0])
            if not await self._start_all({name: new}, {name: served.key}):
                return
            ready = new.health().get("status") == "ready"
            if not ready and old.health().get("status") == "ready":
                why = new.health().get("error") or "it did not become ready"
                await _stop(new)
                raise RestartFailed(
                    f"{name} could not be restarted ({why}); the running one keeps serving"
                )
            self._carry(name, old, deliberate=not isinstance(old, StoppedServer))
            self._swap(name, served, new)
            self._retire(served)
        log.info("server %s restarted by %s", name, by)

    def session_ended(self, key: str) -> None:
        """A client session or connection is over: stop the per-session processes it had."""
        for served in self._served.values():
            if isinstance(served.provider, ProcessPool):
                served.provider.session_ended(key)

    def _carry(self, name: str, provider: Provider, *, deliberate: bool = False) -> None:
        """Count the restarts of ``provider`` (and this one, if ``deliberate``) for ``name``."""
        restarts = 0 if isinstance(provider, StoppedServer) else provider.health().get("restarts")
        carried = self._carried.get(name, 0) + int(restarts or 0) + int(deliberate)
        self._carried[name] = carried

    def _swap(self, name: str, served: _Served, provider: Provider) -> None:
        with self.registry.batch():
            self.registry.remove(served.provider)
            self.registry.add(provider)
        self._served[name] = _Served(served.key, provider)

    # ---- retiring ----------------------------------------------------------------------------

    def _retire(self, served: _Served) -> asyncio.Task[None]:
        """Stop ``served`` once its calls in flight are done (they may take their time limit)."""
        provider = served.provider
        patience = (served.key[0].timeout_seconds or self.call_timeout) + RETIRE_MARGIN_SECONDS
        task = asyncio.get_running_loop().create_task(
            self._stop_when_idle(provider, patience), name=f"retire {provider.name}"
        )
        self._retiring[provider] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _stop_when_idle(self, provider: Provider, patience: float) -> None:
        try:
            await provider.drain(patience)
        except Exception:
            log.exception("waiting for the calls of %s failed", provider.name)
        if self._retiring.pop(provider, None) is not None:
            await _stop(provider)

    async def close(self) -> None:
        """Stop the providers being started or retired now (the served ones are the
        registry's to stop)."""
        self._closed = True
        waiting, self._retiring = self._retiring, {}
        for task in waiting.values():
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await _stop_all([*waiting, *self._starting])


def _refuse(conflicts: Mapping[str, str]) -> None:
    if conflicts:
        raise ValueError("; ".join(f"{n}: {why}" for n, why in sorted(conflicts.items())))


async def _stop(provider: Provider) -> None:
    try:
        await provider.stop()
    except Exception:
        log.exception("stopping %s failed", provider.name)


async def _stop_all(providers: Iterable[Provider]) -> None:
    await asyncio.gather(*(_stop(p) for p in providers))
