"""A gateway's observability, built in one place: metrics, traces, ``/metrics``, dependency checks.

:class:`Telemetry` is made by :class:`~catalyst_mcp.app.Gateway` from the settings and wires
itself into the objects it observes (the dispatcher's observer, the MCP server's and the access
pipeline's metrics, the audit writer's commit hook), so nothing else needs to know it exists.

``GET /metrics`` (:meth:`Telemetry.scrape`): the Prometheus text format, or OpenMetrics when the
``Accept`` header asks for ``application/openmetrics-text``. Open like ``/ready`` while auth is
off; with ``auth.enabled`` it needs ``Authorization: Bearer`` with ``metrics.scrape_token`` or an
administrator's API key or token (else 401 with a ``WWW-Authenticate`` challenge).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from catalyst_mcp.errors import CatalystError, InvalidRequest
from catalyst_mcp.observability import tracing
from catalyst_mcp.observability.health import DependencyCheck
from catalyst_mcp.observability.observer import Observer
from catalyst_mcp.protocol.jsonrpc import error_response
from catalyst_mcp.security.rbac import ADMIN_ROLE
from catalyst_mcp.transports.asgi import Scope, Send, send_bytes, send_json

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from catalyst_mcp.app import Gateway
    from catalyst_mcp.observability.metrics import Metrics
    from catalyst_mcp.observability.statemetrics import StateMirror

__all__ = ["Telemetry"]

log = logging.getLogger("catalyst.observability")

CHALLENGE = (b"www-authenticate", b'Bearer realm="catalyst-metrics"')


class Telemetry:
    """Metrics (unless ``metrics.enabled`` is off) and tracing (when configured) of one gateway.

    ``tracer_provider``: trace with this provider instead of one built from the settings (an
    embedding application's, or a test's in-memory one).
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        tracer_provider: TracerProvider | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        settings = gateway.settings
        self.gateway = gateway
        self.metrics: Metrics | None = None
        self.mirror: StateMirror | None = None
        if settings.metrics.enabled:
            self._build_metrics(gateway)
        gateway.dispatcher.observer = Observer(self.metrics)
        gateway.server.metrics = self.metrics
        gateway.access.metrics = self.metrics
        self.tracer_provider = tracer_provider
        self._own_provider = False
        if tracer_provider is None:
            self.tracer_provider = tracing.build_provider(settings.telemetry, env)
            self._own_provider = self.tracer_provider is not None
        probes: dict[str, Any] = {}
        if gateway.db is not None:
            probes["database"] = (gateway.db.ping, gateway.db.location)
        limiter = gateway.access.limiter
        ping = getattr(limiter, "ping", None)
        if ping is not None:
            probes["redis"] = (ping, getattr(limiter, "where", "Redis"))
        cluster = getattr(gateway, "cluster", None)
        if cluster is not None:  # redis.url: the state instances share (first, if both)
            probes["redis"] = (cluster.ping, cluster.bus.where)
        self.dependencies = DependencyCheck(probes)

    def _build_metrics(self, gateway: Gateway) -> None:
        from catalyst_mcp.observability.metrics import Metrics
        from catalyst_mcp.observability.statemetrics import GatewayCollector, StateMirror

        metrics = self.metrics = Metrics(gateway.settings.metrics.max_tool_labels)
        state = GatewayCollector(gateway)
        if metrics.multiprocess:
            from prometheus_client import ProcessCollector

            self.mirror = StateMirror(state, ProcessCollector(registry=None))
        else:
            from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

            metrics.registry.register(state)
            ProcessCollector(registry=metrics.registry)
            PlatformCollector(registry=metrics.registry)
            GCCollector(registry=metrics.registry)

    # ---- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """After the gateway's own start: trace, hear of audit commits, mirror state."""
        if self.tracer_provider is not None:
            tracing.activate(self.tracer_provider)
        audit = self.gateway.access.audit
        if audit is not None and self.metrics is not None:
            audit.on_written = self.metrics.audit_written
        if self.mirror is not None:
            self.mirror.start()

    async def stop(self) -> None:
        if self.mirror is not None:
            await self.mirror.stop()
        if self.tracer_provider is not None:
            tracing.deactivate()
            if self._own_provider:
                await tracing.shutdown(self.tracer_provider)

    # ---- /metrics --------------------------------------------------------------------------

    async def scrape(self, scope: Scope, headers: dict[bytes, bytes], send: Send) -> None:
        """Serve ``GET /metrics``."""
        metrics = self.metrics
        if metrics is None:
            await send_bytes(send, 404, b'{"error":"not found"}')
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_bytes(send, 405, b"", None, [(b"allow", b"GET, HEAD")])
            return
        if self.gateway.access.required and not await self._may_scrape(headers):
            why = InvalidRequest(
                "Unauthorized: /metrics needs 'Authorization: Bearer <metrics.scrape_token or "
                "an administrator's API key or token>'"
            )
            await send_json(send, 401, error_response(None, why), [CHALLENGE])
            return
        from prometheus_client.exposition import choose_encoder

        if self.mirror is not None:
            self.mirror.refresh()
        encode, content_type = choose_encoder(headers.get(b"accept", b"").decode("latin-1"))
        body = encode(metrics.registry)
        await send_bytes(
            send, 200, body if scope["method"] == "GET" else b"", content_type.encode()
        )

    async def _may_scrape(self, headers: dict[bytes, bytes]) -> bool:
        authorization = headers.get(b"authorization")
        if authorization is None:
            return False
        token = self.gateway.settings.metrics.scrape_token
        if token:
            scheme, _, presented = authorization.strip().partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(
                presented.strip(), token.encode()
            ):
                return True
        access = self.gateway.access
        try:
            identity = await access.authenticate(authorization)
        except CatalystError:
            return False
        return ADMIN_ROLE in access.roles_of(identity)

    # ---- /ready ----------------------------------------------------------------------------

    async def check_dependencies(self) -> dict[str, dict[str, Any]]:
        """Fresh verdicts on the database and Redis (cached for a second), while the gateway
        runs (before its start and after its stop they are not its concern)."""
        gateway = self.gateway
        if not gateway.started or gateway.stopping:
            return self.dependencies.results
        return await self.dependencies.check()
