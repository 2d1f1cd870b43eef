"""Webhooks: signed POSTs of the envelope, retried with backoff, refused by the SSRF guard."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from catalyst_mcp.errors import EventDeliveryError
from catalyst_mcp.net.netguard import Resolver
from catalyst_mcp.orchestration.events.config import WebhookSettings
from catalyst_mcp.orchestration.events.metrics import EventStats
from catalyst_mcp.orchestration.events.types import CallFinished, Envelope, PackReloaded
from catalyst_mcp.orchestration.events.webhooks import Webhook, sign, verify_signature
from tests.orchestration.events.receiver import receiver

SECRET = "a-shared-secret-of-the-receiver"
ENVELOPE = Envelope.wrap(
    CallFinished("crm", "crm__find", "ok", "alice", "user", "mcp", 2.0), "ev_1", 1.7e9, "i1"
)


def hook(url: str, **extra: Any) -> WebhookSettings:
    return WebhookSettings.model_validate(
        {"url": url, "secret": SECRET, "allow_private_network": True, **extra}
    )


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# ---- signatures ------------------------------------------------------------------------------


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"id":"ev_1"}'
    header = sign(SECRET, 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature(SECRET, header, body, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body + b" ", now=1_700_000_100)  # tampered
    assert not verify_signature("another-secret-entirely", header, body, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body, now=1_700_000_301)  # replayed too late
    assert verify_signature(SECRET, header, body, now=1_700_000_600, tolerance=600)
    assert not verify_signature(SECRET, "v1=abc", body)
    assert not verify_signature(SECRET, "t=abc,v1=abc", body)


# ---- deliveries ------------------------------------------------------------------------------


@pytest.mark.network
async def test_a_delivery_is_the_signed_envelope() -> None:
    async with receiver() as got:
        webhook = Webhook("ops", hook(got.url, headers={"X-Token": "t0k"}), EventStats())
        try:
            await webhook.handle(ENVELOPE)
        finally:
            await webhook.aclose()
        [request] = got.got
        assert request.method == "POST" and request.path == "/hooks/catalyst?x=1"
        assert orjson.loads(request.body) == ENVELOPE.to_json()
        headers = request.headers
        assert headers["content-type"] == "application/json"
        assert headers["catalyst-event"] == "call.finished"
        assert headers["catalyst-delivery"] == "ev_1"
        assert headers["x-token"] == "t0k"
        assert headers["user-agent"].startswith("catalyst/")
        assert verify_signature(SECRET, headers["catalyst-signature"], request.body)
        stamp = int(headers["catalyst-signature"].split(",")[0][2:])
        assert abs(stamp - time.time()) < 5
        assert webhook.stats.webhooks[("ops", "ok")] == 1


@pytest.mark.network
async def test_failures_are_retried_with_doubling_backoff() -> None:
    async with receiver() as got:
        got.answers = [500, 503, 429, 200]
        sleeps = Sleeps()
        settings = hook(got.url, retries=5, backoff_seconds=0.5, max_backoff_seconds=1.5)
        webhook = Webhook("ops", settings, EventStats(), sleep=sleeps)
        try:
            await webhook.handle(ENVELOPE)
        finally:
            await webhook.aclose()
        assert len(got.got) == 4 and sleeps.waits == [0.5, 1.0, 1.5]
        assert {r.headers["catalyst-delivery"] for r in got.got} == {"ev_1"}
        stats = webhook.stats.webhooks
        assert stats[("ops", "retry")] == 3 and stats[("ops", "ok")] == 1


@pytest.mark.network
async def test_after_the_last_retry_the_delivery_fails() -> None:
    async with receiver() as got:
        got.answers = [502, 502, 502]
        webhook = Webhook("ops", hook(got.url, retries=2), EventStats(), sleep=Sleeps())
        try:
            with pytest.raises(
                EventDeliveryError, match="failed 3 times, the last: answered HTTP 502"
            ):
                await webhook.handle(ENVELOPE)
        finally:
            await webhook.aclose()
        assert len(got.got) == 3 and webhook.stats.webhooks[("ops", "failed")] == 1


@pytest.mark.network
@pytest.mark.parametrize("status", [400, 401, 404, 302])
async def test_other_answers_fail_at_once_for_good(status: int) -> None:
    async with receiver() as got:
        got.answers = [status]
        webhook = Webhook("ops", hook(got.url, retries=3), EventStats(), sleep=Sleeps())
        try:
            await webhook.handle(ENVELOPE)  # not raised: trying again cannot help
        finally:
            await webhook.aclose()
        assert len(got.got) == 1 and webhook.stats.webhooks[("ops", "failed")] == 1


@pytest.mark.network
async def test_a_slow_receiver_times_out_and_is_retried() -> None:
    async with receiver() as got:
        got.delay = 0.5
        sleeps = Sleeps()
        settings = hook(got.url, retries=1, timeout_seconds=0.1)
        webhook = Webhook("ops", settings, EventStats(), sleep=sleeps)
        try:
            with pytest.raises(EventDeliveryError, match="failed 2 times"):
                await webhook.handle(ENVELOPE)
        finally:
            await webhook.aclose()
        assert len(sleeps.waits) == 1


async def test_nothing_listening_is_a_failure_to_retry() -> None:
    webhook = Webhook("ops", hook("http://127.0.0.1:9/x", retries=1), EventStats(), sleep=Sleeps())
    try:
        with pytest.raises(EventDeliveryError, match="cannot connect"):
            await webhook.handle(ENVELOPE)
    finally:
        await webhook.aclose()


# ---- the SSRF guard --------------------------------------------------------------------------


def resolves_to(address: str) -> Resolver:
    async def resolver(host: str, port: int) -> list[str]:
        return [address]

    return resolver


@pytest.mark.parametrize(
    ("address", "allow", "why"),
    [
        ("127.0.0.1", False, "a loopback address (set allow_private_network: true on webhook"),
        ("10.1.2.3", False, "a private address"),
        ("169.254.169.254", True, "link-local/cloud-metadata"),
        ("100.100.100.200", True, "link-local/cloud-metadata"),
        ("0.0.0.0", True, "unspecified"),
    ],
)
async def test_the_guard_refuses_and_nothing_is_retried(
    address: str, allow: bool, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = WebhookSettings.model_validate(
        {
            "url": "https://hooks.example.com/in",
            "secret": SECRET,
            "allow_private_network": allow,
            "retries": 3,
        }
    )
    sleeps = Sleeps()
    webhook = Webhook("ops", settings, EventStats(), resolver=resolves_to(address), sleep=sleeps)
    await webhook.handle(ENVELOPE)
    assert webhook.stats.webhooks[("ops", "refused")] == 1 and sleeps.waits == []
    assert why in caplog.text and "event ev_1 not delivered" in caplog.text
    assert SECRET not in caplog.text
    await webhook.aclose()


def test_a_webhook_takes_only_its_events() -> None:
    webhook = Webhook("ops", hook("https://x/y", events=["upstream.*", "pack.*"]), EventStats())
    assert webhook.name == "webhook.ops" and webhook.slow
    assert webhook.accepts(PackReloaded.TYPE) and not webhook.accepts(CallFinished.TYPE)


@pytest.mark.network
async def test_https_uses_tls() -> None:
    # a plain-HTTP receiver behind an https URL: the TLS handshake fails, retried, reported
    async with receiver() as got:
        webhook = Webhook(
            "ops",
            hook(f"https://127.0.0.1:{got.port}/", retries=0),
            EventStats(),
            sleep=Sleeps(),
        )
        try:
            with pytest.raises(EventDeliveryError):
                await webhook.handle(ENVELOPE)
        finally:
            await webhook.aclose()
        assert got.got == []
