"""The ``events:`` section of the settings and its ``webhooks:`` (docs/configuration.md lists
every field, docs/events.md what they do).

Event patterns are checked when the file is loaded: one that names no event type is a
``file:line`` problem like any other bad value. A webhook's ``secret`` (the HMAC key of its
signatures) and ``headers`` are secrets: hidden from ``repr`` and masked by ``catalyst config
show``; give them from the environment (``CATALYST_EVENTS__WEBHOOKS__OPS__SECRET``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from catalyst_mcp.orchestration.events.types import expand_patterns

__all__ = ["EventsSettings", "WebhookSettings"]

WEBHOOK_NAME = r"^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _patterns(value: list[str]) -> list[str]:
    expand_patterns(value)  # ValueError names the pattern and the known types
    return value


class WebhookSettings(_Model):
    """One webhook: events matching ``events`` are POSTed to ``url``, signed."""

    url: str = Field(
        description="Where events are POSTed (http:// or https://). Connections go through the "
        "SSRF guard of REST packs: cloud-metadata, link-local and reserved addresses are "
        "refused always, loopback and private ones unless allow_private_network."
    )
    events: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Event types delivered, as globs ('call.*', 'upstream.state_changed').",
    )
    secret: str = Field(
        min_length=16,
        repr=False,
        description="The HMAC-SHA256 key of the Catalyst-Signature header (at least 16 "
        "characters; give it from the environment).",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra request headers (e.g. a receiver's token; masked by catalyst config "
        "show).",
    )
    timeout_seconds: float = Field(
        10.0, gt=0, description="Time allowed for one delivery attempt (connect and answer)."
    )
    retries: int = Field(
        5, ge=0, le=20, description="Attempts after the first when a delivery fails."
    )
    backoff_seconds: float = Field(1.0, ge=0, description="Wait before the first retry.")
    max_backoff_seconds: float = Field(
        60.0, ge=0, description="Longest wait between retries (each wait doubles the last)."
    )
    allow_private_network: bool = Field(
        False, description="Allow loopback and private addresses (never metadata)."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/?#]+", value):
            raise ValueError("url must be an http:// or https:// URL with a host")
        return value

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        return _patterns(value)

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {name!r} contains a line break")
        return value


class EventsSettings(_Model):
    """The event bus: what is published, where it travels, and the webhooks."""

    enabled: bool = Field(
        True,
        description="Publish events (calls, upstream states, pack reloads, tool definition "
        "changes, workflow steps and runs, approvals and alerts) to the consumers: audit, "
        "metrics, workflow triggers, webhooks.",
    )
    backend: Literal["auto", "memory", "redis"] = Field(
        "auto",
        description="memory: in this process only. redis: a Redis stream every instance reads "
        "through consumer groups (needs redis.url). auto: redis when redis.url is set.",
    )
    types: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Event types published at all, as globs; others are not even built.",
    )
    queue_size: int = Field(
        10_000,
        ge=1,
        description="Events waiting to be handed on (to Redis, or to each in-process consumer); "
        "past it a new event is dropped and counted (catalyst_events_dropped), never a call "
        "held back.",
    )
    recent: int = Field(
        1000,
        ge=0,
        description="Latest events kept in memory for GET /api/v1/events (memory backend; with "
        "Redis the stream is read).",
    )
    stream: str = Field(
        "catalyst:events", min_length=1, description="The Redis stream's key (redis backend)."
    )
    max_len: int = Field(
        100_000,
        ge=100,
        description="Approximate length the Redis stream is trimmed to (XADD MAXLEN ~).",
    )
    claim_idle_seconds: float = Field(
        30.0,
        gt=0,
        description="A Redis entry delivered but not acknowledged for this long (its instance "
        "died, or its consumer failed) is claimed by another instance and delivered again.",
    )
    max_deliveries: int = Field(
        5,
        ge=1,
        description="Redis backend: deliveries of one entry to one consumer group after which "
        "it is dropped (logged and counted) instead of being tried again.",
    )
    state_poll_seconds: float = Field(
        1.0,
        gt=0,
        description="How often upstream servers' states are compared with the last ones seen "
        "(upstream.state_changed).",
    )
    webhooks: dict[str, WebhookSettings] = Field(
        default_factory=dict,
        description="Webhooks by name: {url, events, secret, headers, timeout_seconds, "
        "retries, backoff_seconds, max_backoff_seconds, allow_private_network}.",
    )

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        return _patterns(value)

    @field_validator("webhooks")
    @classmethod
    def _webhook_names(cls, value: dict[str, WebhookSettings]) -> dict[str, WebhookSettings]:
        for name in value:
            if not re.match(WEBHOOK_NAME, name):
                raise ValueError(
                    f"webhook name {name!r} must be letters and digits joined by single '-' or '_'"
                )
        return value
