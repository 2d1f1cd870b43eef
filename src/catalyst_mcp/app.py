"""Composition root: build the whole gateway from :class:`Settings`.

``Gateway`` owns the registry, the upstreams and the protocol objects; ``Gateway.asgi`` routes
HTTP requests to the MCP endpoints and the health checks, and runs start-up and shut-down from
ASGI lifespan events. Nothing here runs at import time.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalyst_mcp.api import AdminApi
from catalyst_mcp.errors import CatalystError, ConfigProblem, InvalidRequest
from catalyst_mcp.observability.telemetry import Telemetry
from catalyst_mcp.orchestration.cache.policy import rules_of
from catalyst_mcp.orchestration.cache.service import ResultCache
from catalyst_mcp.orchestration.rules.service import Rules
from catalyst_mcp.protocol.dispatch import Dispatcher
from catalyst_mcp.protocol.hub import NotificationHub
from catalyst_mcp.protocol.jsonrpc import error_response
from catalyst_mcp.protocol.legacy import SessionStore
from catalyst_mcp.protocol.server import SERVER_INFO, McpServer
from catalyst_mcp.providers import Provider
from catalyst_mcp.registry import Registry
from catalyst_mcp.security.access import Access
from catalyst_mcp.security.injection import SecretInjector
from catalyst_mcp.security.rbac import ADMIN_ROLE
from catalyst_mcp.settings import Settings
from catalyst_mcp.transports.asgi import (
    OriginPolicy,
    Receive,
    Scope,
    Send,
    header_map,
    send_bytes,
    send_json,
)
from catalyst_mcp.transports.authgate import AuthGate
from catalyst_mcp.transports.http import StreamableHttpEndpoint
from catalyst_mcp.transports.sse import LegacySseEndpoints
from catalyst_mcp.transports.websocket import WEBSOCKET_PATH, WebSocketEndpoint
from catalyst_mcp.trust.pinning import Pinning
from catalyst_mcp.upstreams.lifecycle import STOPPED
from catalyst_mcp.upstreams.serverset import ServerSet

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from catalyst_mcp.cluster.state import Cluster
    from catalyst_mcp.configwatch import ConfigFile
    from catalyst_mcp.orchestration.events.room import Events
    from catalyst_mcp.orchestration.workflows.manager import Workflows
    from catalyst_mcp.packs.packset import PackSet
    from catalyst_mcp.packs.watcher import PackWatcher
    from catalyst_mcp.storage.db import Database
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["Gateway"]

log = logging.getLogger("catalyst")

SETTLE_MARGIN_SECONDS = 5.0


class Gateway:
    """Everything one gateway process runs."""

    def __init__(
        self,
        settings: Settings,
        providers: Sequence[Provider] = (),
        *,
        config_file: Path | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """Build from ``settings``; ``providers`` are served next to the configured servers.
        ``config_file`` is the file ``settings`` were loaded from: its ``servers:`` are applied
        again whenever it changes (unless ``gateway.watch_config`` is off).
        ``tracer_provider``: trace with it instead of what ``telemetry`` configures."""
        self.settings = settings
        self.registry = Registry()
        for provider in providers:
            self.registry.add(provider)
        # ${secret:NAME} of pack connections and server entries, resolved for each caller; its
        # store opens with the database at start
        self.secrets = SecretInjector()
        # what servers' tools tell the model, pinned (trust/pinning.py); its database is set
        # below, and catalyst.lock next to the config file names the servers' packages
        self.pinning = Pinning(lock_file=_lock_file(config_file))
        self.servers = ServerSet(
            self.registry, settings.gateway.call_timeout_seconds, self.secrets, pinning=self.pinning
        )
        self.servers.load(settings)
        self.packs: PackSet | None = None
        self.pack_watcher: PackWatcher | None = None
        if settings.packs.path is not None:
            from catalyst_mcp.packs.packset import PackSet

            # A replaced pack may finish its calls in flight for as long as a call may last.
            self.packs = PackSet(
                settings.packs.path,
                self.registry,
                retire_after=settings.gateway.call_timeout_seconds,
                secrets=self.secrets.for_scope,
            )
            self.packs.load_all()
        self.config: ConfigFile | None = None
        self.config_watcher: PackWatcher | None = None
        if config_file is not None and settings.gateway.watch_config:
            from catalyst_mcp.configwatch import ConfigFile

            self.config = ConfigFile(
                config_file, self.servers, settings, after_apply=self._servers_changed
            )
        self.db: Database | None = None
        workflows = settings.workflows.path
        workflows_on = workflows is not None and workflows.is_dir()  # at start: else none
        if (
            settings.audit.enabled
            or (settings.auth.api_keys and settings.auth.enabled)
            or Pinning.wanted(settings.servers)
            or workflows_on  # runs are kept there
        ):
            from catalyst_mcp.storage.db import Database

            self.db = Database(settings.storage.database_url())
        self.pinning.db = self.db
        self.access = Access(settings, db=self.db)
        self.auth = AuthGate(self.access, settings)
        self.server = McpServer(self.registry, access=self.access)
        # policy rules around every tools/call (docs/rules.md)
        self.rules = Rules(settings.rules, self.registry, self.access, self.db)
        self.server.rules = self.rules.hook
        # tools/call results served again, after authorization, rules and rate limits
        self.cache = ResultCache(settings.cache_in_effect(), lambda p: rules_of(p, self.servers))
        self.server.cache = self.cache if settings.cache.enabled else None
        self.sessions = SessionStore(
            settings.gateway.session_idle_seconds,
            settings.gateway.max_legacy_sessions,
            settings.gateway.max_legacy_sessions_per_caller,
        )
        self.hub = NotificationHub(self.registry, self.sessions)
        self.dispatcher = Dispatcher(self.server, self.sessions, self.hub)
        self.workflows: Workflows | None = None
        if workflows_on and self.db is not None:
            from catalyst_mcp.orchestration.workflows.manager import Workflows

            self.workflows = Workflows(settings.workflows, self.db, self.dispatcher)
            self.registry.add(self.workflows.provider)
        self.events: Events | None = None
        if settings.events.enabled:  # the event bus and its consumers (docs/events.md)
            from catalyst_mcp.orchestration.events.room import Events

            self.events = Events(settings)
            self.events.attach(self)
        self.api = AdminApi(
            self.access,
            self.auth,
            self.db,
            dispatcher=self.dispatcher,
            servers=self.servers,
            pinning=self.pinning,
            rules=self.rules,
            workflows=self.workflows,
            packs=self.packs,
            config_file=config_file,
            cache=self.cache,
            events=self.events.bus if self.events is not None else None,
        )
        # a session or connection that ends stops the per-session processes it had
        self.dispatcher.session_listeners.append(self.servers.session_ended)
        self.origins = OriginPolicy.for_settings(settings.gateway)
        self.mcp = StreamableHttpEndpoint(self.dispatcher, settings.gateway)
        self.sse = LegacySseEndpoints(self.dispatcher, settings.gateway)
        self.websocket = WebSocketEndpoint(
            self.dispatcher, self.auth, self.origins, settings.gateway
        )
        self.started = False
        self.stopping = False
        # redis.url: sessions, parked calls and config changes shared with other instances
        self.cluster: Cluster | None = None
        if settings.redis.url is not None:
            from catalyst_mcp.cluster.state import Cluster

            self.cluster = Cluster(self)
        # the worker's number under `catalyst serve --workers N` (workers/), named by /health
        self.worker: int | None = None
        # metrics, traces, /metrics and the dependency checks of /ready (docs/observability.md)
        self.telemetry = Telemetry(self, tracer_provider=tracer_provider)
        self.rules.hook.metrics = self.telemetry.metrics
        self.cache.metrics = self.telemetry.metrics
        if self.events is not None:
            self.events.stats.bind(self.telemetry.metrics)
        self.ui: Dashboard | None = None
        if settings.ui.enabled:  # the web dashboard (docs/dashboard.md)
            from catalyst_mcp.web.dashboard import Dashboard

            self.ui = Dashboard(self)

    @property
    def pack_problems(self) -> list[ConfigProblem]:
        """Why pack files are not served (as they are now, after any reload)."""
        return self.packs.problems if self.packs is not None else []

    @property
    def rule_problems(self) -> list[ConfigProblem]:
        """Why rule files (or stored rules) are not in force as written."""
        return self.rules.problems

    @property
    def workflow_problems(self) -> list[ConfigProblem]:
        """Why workflow files are not served (as they are now, after any reload)."""
        return self.workflows.problems if self.workflows is not None else []

    @property
    def config_problems(self) -> list[ConfigProblem]:
        """Why the config file's last edit is not applied (while it is invalid)."""
        return self.config.problems if self.config is not None else []

    async def _servers_changed(self) -> None:
        if self.packs is not None:  # a removed server may free a namespace a pack wants
            await self.packs.reload(())

    async def start(self) -> None:
        try:
            await self.access.start()
            if self.access.audit is not None:
                self.pinning.audit = self.access.audit.record
            await self.pinning.start()
            if self.db is not None:
                from catalyst_mcp.security.secretstore import SecretStore

                self.secrets.store = SecretStore.from_environ(self.db, os.environ)
            await self.telemetry.start()
            if self.cluster is not None:  # Redis first: without it, nothing else starts
                await self.cluster.connect()
            if self.events is not None:  # before the servers: their first states are events
                await self.events.start()
            await self._start_serving()
            if self.cluster is not None:  # once the servers are up: it follows resources
                await self.cluster.start()
            if self.workflows is not None:  # resumed runs call tools: once servers are up
                await self.workflows.start()
        except BaseException:
            # nothing half-started outlives a failed start: the database and audit writer too
            if self.workflows is not None:
                await self.workflows.stop()
            if self.cluster is not None:
                await self.cluster.stop()
            if self.events is not None:
                await self.events.stop()
            await self._stop_access()
            await self.telemetry.stop()
            raise

    async def _stop_access(self) -> None:
        await self.pinning.stop()
        await self.access.stop()
        if self.db is not None:
            await self.db.close()

    async def _start_serving(self) -> None:
        # Each upstream gives up after its connect timeout and then needs a moment to stop what
        # it started (a stdio process gets a few seconds) before it reports why: wait for that
        # too, so start-up ends with every server ready or failed, none still "starting".
        settle = max(
            (c.connect_timeout_seconds for c in self.settings.servers.values() if c.active),
            default=0.0,
        )
        await self.registry.start(settle + SETTLE_MARGIN_SECONDS if settle else 0.0)
        await self.rules.start()
        self.cache.start()
        if self.packs is not None and self.settings.packs.watch and self.pack_watcher is None:
            from catalyst_mcp.packs.watcher import PackWatcher

            self.pack_watcher = PackWatcher(self.packs)
            self.pack_watcher.start()
        if self.config is not None and self.config_watcher is None:
            self.config_watcher = self.config.watcher()
            self.config_watcher.start()
        if self.ui is not None:
            self.ui.start()
        self.started = True
        ready = sum(1 for p in self.registry.providers if p.health()["status"] == "ready")
        log.info("gateway started: %d/%d servers ready", ready, len(self.registry.providers))

    @staticmethod
    def settle_memory() -> None:
        """After start-up: what exists now lives as long as the process, so move it out of the
        cyclic collector's sight and let young objects pile up longer between collections
        (measured: about 7% less CPU per call; docs/decisions/001-lean-protocol-core.md)."""
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)

    async def stop(self) -> None:
        self.stopping = True
        if self.config_watcher is not None:
            await self.config_watcher.stop()
        if self.pack_watcher is not None:
            await self.pack_watcher.stop()
        await self.rules.stop()
        await self.cache.stop()
        if self.ui is not None:
            await self.ui.stop()
        await self.api.close()
        if self.cluster is not None:  # streams held here hand their messages back to Redis
            await self.cluster.stop()
        self.server.bridge.close()
        self.sessions.close()
        await self.sse.close()
        if self.packs is not None:
            await self.packs.close()
        await self.servers.close()
        if self.workflows is not None:
            await self.workflows.stop()
        await self.registry.stop()
        if self.events is not None:  # after the last runs ended, before the audit trail closes
            await self.events.stop()
        await self._stop_access()
        await self.telemetry.stop()

    # ---- health ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``/health``: the process answers; a worker of ``--workers N`` says which it is."""
        if self.worker is None:
            return {"status": "ok"}
        return {"status": "ok", "worker": self.worker, "pid": os.getpid()}

    def readiness(self) -> dict[str, Any]:
        servers = [p.health() for p in self.registry.providers]
        # a server an administrator stopped is not down: it is off on purpose
        down = [s["name"] for s in servers if s["status"] not in ("ready", STOPPED)]
        degraded = bool(
            down
            or self.pack_problems
            or self.config_problems
            or self.rule_problems
            or self.workflow_problems
        )
        status = "starting" if not self.started else ("degraded" if degraded else "ready")
        if self.stopping:
            status = "stopping"
        report: dict[str, Any] = {"status": status, "gateway": SERVER_INFO, "servers": servers}
        if self.pack_problems:
            report["pack_problems"] = [str(p) for p in self.pack_problems]
        if self.workflow_problems:
            report["workflow_problems"] = [str(p) for p in self.workflow_problems]
        if self.config_problems:
            report["config_problems"] = [str(p) for p in self.config_problems]
        if self.rule_problems:
            report["rule_problems"] = [str(p) for p in self.rule_problems]
        if self.config is not None and self.config.restart_needed:
            report["config_restart_needed"] = sorted(self.config.restart_needed)
        if self.registry.collisions:
            report["collisions"] = self.registry.collisions
        # the last verdicts on the database and Redis (refreshed by each GET /ready)
        for name, verdict in self.telemetry.dependencies.results.items():
            report[name] = verdict
            if verdict["status"] != "ready" and status == "ready":
                report["status"] = "degraded"
        if self.packs is not None:
            report["packs"] = {
                "status": "failed" if self.pack_problems else "ready",
                "served": len(self.packs.providers),
                "problems": len(self.pack_problems),
            }
        if len(self.rules.ruleset.engine) or self.rule_problems:
            report["rules"] = self.rules.readiness()
        return report

    # ---- ASGI --------------------------------------------------------------------------------

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            headers = header_map(scope)
            refusal = self.origins.refusal(headers.get(b"origin"), headers.get(b"host"))
            if refusal is not None:  # DNS rebinding: every path, /ready included
                await send_json(send, 403, error_response(None, InvalidRequest(refusal)))
                return
            if path == self.settings.gateway.mcp_path:
                identity = await self.auth.identify(scope, headers, send)
                if identity is not None:
                    await self.mcp(scope, receive, send, headers, identity)
            elif path == "/health":
                await send_json(send, 200, self.health())
            elif path == "/ready":
                await self.telemetry.check_dependencies()
                report = self.readiness()
                if self.access.required and not await self._admin(headers):
                    # with auth on, what is served stays private: probes get the status only
                    report = {"status": report["status"]}
                strict = b"strict" in scope.get("query_string", b"")
                ok = report["status"] == "ready" or (report["status"] == "degraded" and not strict)
                await send_json(send, 200 if ok else 503, report)
            elif self.settings.gateway.legacy_sse and path == "/sse":
                identity = await self.auth.identify(scope, headers, send)
                if identity is not None:
                    await self.sse.stream(scope, receive, send, identity)
            elif self.settings.gateway.legacy_sse and path.rstrip("/") == "/messages":
                identity = await self.auth.identify(scope, headers, send)
                if identity is not None:
                    await self.sse.messages(scope, receive, send, identity)
            elif self.settings.gateway.websocket and path == WEBSOCKET_PATH:
                await self.websocket.upgrade_required(send)
            elif path == "/metrics":  # open without auth; else a scrape token or an admin
                await self.telemetry.scrape(scope, headers, send)
            elif path.startswith("/api/"):  # authenticated by the API (through self.auth)
                await self.api(scope, receive, send, headers)
            elif self.ui is not None and self.ui.serves(path):  # its own sign-in and CSRF
                await self.ui(scope, receive, send, headers)
            elif self.auth.is_metadata_path(path):
                await self.auth.metadata(scope, headers, send)
            else:
                await send_bytes(send, 404, b'{"error":"not found"}')
        elif kind == "websocket":  # Origin, Host and auth checked by the endpoint
            await self.websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _admin(self, headers: dict[bytes, bytes]) -> bool:
        """Whether the request carries an administrator's valid credentials."""
        authorization = headers.get(b"authorization")
        if authorization is None:
            return False
        try:
            identity = await self.access.authenticate(authorization)
        except CatalystError:
            return False
        return ADMIN_ROLE in self.access.roles_of(identity)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.settle_memory()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _lock_file(config_file: Path | None) -> Path | None:
    """``catalyst.lock`` next to the config file (packages' server entries), if any."""
    if config_file is None:
        return None
    from catalyst_mcp.packages.lockfile import lock_path

    return lock_path(config_file)
