"""Webhooks: events POSTed as JSON to a URL, signed, retried, through the SSRF guard.

One request per event, the body the envelope's JSON (``{"id", "type", "time", "source",
"data"}``), with these headers::

    Content-Type: application/json
    User-Agent: catalyst/<version>
    Catalyst-Event: call.finished
    Catalyst-Delivery: <event id>              (the same on every retry and redelivery)
    Catalyst-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body with the shared
secret, compares in constant time, refuses timestamps older than a few minutes (replays), and
drops event ids it has seen (a delivery may come more than once): :func:`verify_signature` does
the first three.

A 2xx answer is success. Network failures, time-outs, 408, 425, 429 and 5xx are tried again
``retries`` times, waiting ``backoff_seconds``, doubling up to ``max_backoff_seconds``; if they
all fail the handling raises :class:`~catalyst_mcp.errors.EventDeliveryError` (with Redis the
entry is then delivered again after ``events.claim_idle_seconds``, up to
``events.max_deliveries`` times; in memory it is dropped). Any other answer (4xx, a redirect:
they are not followed) and an address the guard refuses fail at once, for good: trying again
cannot help. Connections go through :class:`~catalyst_mcp.net.netguard.NetGuard`, as REST
packs' do: metadata, link-local and reserved addresses never, loopback and private ones only
with ``allow_private_network``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import orjson

from catalyst_mcp import __version__
from catalyst_mcp.errors import EventDeliveryError
from catalyst_mcp.net.httpclient import HttpClient, HttpError
from catalyst_mcp.net.netguard import AddressRefused, NetGuard, Resolver
from catalyst_mcp.orchestration.events.config import WebhookSettings
from catalyst_mcp.orchestration.events.metrics import EventStats
from catalyst_mcp.orchestration.events.types import Envelope, expand_patterns

__all__ = [
    "SIGNATURE_HEADER",
    "TOLERANCE_SECONDS",
    "Webhook",
    "sign",
    "verify_signature",
]

log = logging.getLogger("catalyst.events")

SIGNATURE_HEADER = "Catalyst-Signature"
TOLERANCE_SECONDS = 300  # what verify_signature accepts as the age of a signature
RETRYABLE = frozenset({408, 425, 429})
MAX_BODY = 64 * 1024  # bytes of a receiver's answer read (the rest is not)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Catalyst-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (a ``Catalyst-Signature``) signs ``body`` with ``secret`` and is at
    most ``tolerance`` seconds old (or ahead)."""
    parts = dict(p.strip().partition("=")[::2] for p in header.split(","))
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isdigit() or not given:
        return False
    at = time.time() if now is None else now
    if abs(at - int(stamp)) > tolerance:
        return False
    expected = sign(secret, int(stamp), body).rpartition("v1=")[2]
    return hmac.compare_digest(expected, given)


class _Permanent(Exception):
    """A failure that trying again cannot mend."""


class Webhook:
    """The consumer ``webhook.<name>``: POSTs the events it accepts to ``settings.url``.
    ``resolver`` replaces the system's name lookup (tests); ``sleep`` the wait between tries."""

    slow = True  # retries take a while: the Redis reader keeps the entry claimed meanwhile

    def __init__(
        self,
        name: str,
        settings: WebhookSettings,
        stats: EventStats,
        *,
        resolver: Resolver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.webhook = name
        self.name = f"webhook.{name}"
        self.settings = settings
        self.stats = stats
        self.types = expand_patterns(settings.events)
        self.guard = NetGuard(settings.allow_private_network, resolver)
        self.sleep = sleep
        parts = urlsplit(settings.url)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/"
        self._client: HttpClient | None = None
        self.delivered = 0  # events delivered (tests)

    def accepts(self, event_type: str) -> bool:
        return event_type in self.types

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            https = self._origin.startswith("https:")
            self._client = HttpClient(
                self._origin,
                max_connections=4,
                connect_timeout=self.settings.timeout_seconds,
                ssl_context=ssl.create_default_context() if https else None,
                resolve=self.guard.vet,
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def handle(self, envelope: Envelope) -> None:
        settings, stats, name = self.settings, self.stats, self.webhook
        body = orjson.dumps(envelope.to_json())
        wait = settings.backoff_seconds
        why = ""
        for attempt in range(settings.retries + 1):
            if attempt:
                stats.webhook(name, "retry")
                await self.sleep(wait)
                wait = min(wait * 2, settings.max_backoff_seconds)
            try:
                await self._post(envelope, body)
            except AddressRefused as exc:
                stats.webhook(name, "refused")
                reason = str(exc).replace("on the connection", f"on webhook {name!r}")
                log.error("webhook %s: %s; event %s not delivered", name, reason, envelope.id)
                return
            except _Permanent as exc:
                stats.webhook(name, "failed")
                log.error("webhook %s: %s; event %s not delivered", name, exc, envelope.id)
                return
            except (HttpError, OSError, TimeoutError, EventDeliveryError) as exc:
                why = str(exc) or type(exc).__name__
                continue
            stats.webhook(name, "ok")
            self.delivered += 1
            return
        stats.webhook(name, "failed")
        raise EventDeliveryError(
            f"webhook {name}: {envelope.type} {envelope.id} failed {settings.retries + 1} "
            f"times, the last: {why}"
        )

    async def _post(self, envelope: Envelope, body: bytes) -> None:
        settings = self.settings
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"catalyst/{__version__}",
            "Catalyst-Event": envelope.type,
            "Catalyst-Delivery": envelope.id,
            **settings.headers,
            SIGNATURE_HEADER: sign(settings.secret, int(time.time()), body),
        }
        async with asyncio.timeout(settings.timeout_seconds):
            response = await self.client.request(
                "POST", headers, body, path=self.path, retry_stale=True
            )
            try:
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) <= MAX_BODY:
                    await response.read()  # the connection is kept for the next event
            finally:
                response.aclose_nowait()
        status = response.status
        if 200 <= status < 300:
            return
        if status >= 500 or status in RETRYABLE:
            raise EventDeliveryError(f"answered HTTP {status}")
        if 300 <= status < 400:
            raise _Permanent(f"answered HTTP {status} (redirects are not followed)")
        raise _Permanent(f"answered HTTP {status}")
