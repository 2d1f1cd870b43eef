"""The configured upstream servers, kept in step with the ``servers:`` section (hot reload).

A :class:`ServerSet` serves one provider per active server entry through the registry: an
:class:`~catalyst_mcp.upstreams.upstream.Upstream`, or a
:class:`~catalyst_mcp.upstreams.peruser.PerUserUpstream` for an entry whose ``env`` or
``headers`` say ``${secret:NAME}``. :meth:`ServerSet.load` serves the servers of the settings
the gateway starts with; :meth:`ServerSet.apply` brings the set in step with new settings while
the gateway runs:

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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from catalyst_mcp.providers import Provider
from catalyst_mcp.registry import Registry
from catalyst_mcp.settings import ServerConfig, Settings
from catalyst_mcp.upstreams.peruser import PerUserUpstream, secret_names
from catalyst_mcp.upstreams.upstream import Upstream

if TYPE_CHECKING:
    from catalyst_mcp.security.injection import SecretInjector
    from catalyst_mcp.trust.pinning import Pinning

__all__ = ["Builder", "ServerSet"]

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
        self._lock = asyncio.Lock()  # one apply at a time

    def build_upstream(self, name: str, namespace: str, config: ServerConfig) -> Provider:
        """The provider of one server entry: one process (or client) per user when it needs
        their secrets, else one shared by every caller. Its tools are pinned as its ``pin``
        says (with a ``pinning``)."""
        pins = self.pinning.for_server(name, config) if self.pinning is not None else None
        if secret_names(config):
            per_user = PerUserUpstream(name, namespace, config, self.call_timeout, self.secrets)
            per_user.pins = pins
            return per_user
        upstream = Upstream(name, namespace, config, self.call_timeout)
        if pins is not None:
            upstream.use_pins(pins)
        return upstream

    # ---- state -------------------------------------------------------------------------------

    @property
    def providers(self) -> dict[str, Provider]:
        """The provider serving each server, by server name."""
        return {name: served.provider for name, served in sorted(self._served.items())}

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

    # ---- retiring ----------------------------------------------------------------------------

    def _retire(self, served: _Served) -> None:
        """Stop ``served`` once its calls in flight are done (they may take their time limit)."""
        provider = served.provider
        patience = (served.key[0].timeout_seconds or self.call_timeout) + RETIRE_MARGIN_SECONDS
        task = asyncio.get_running_loop().create_task(
            self._stop_when_idle(provider, patience), name=f"retire {provider.name}"
        )
        self._retiring[provider] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
