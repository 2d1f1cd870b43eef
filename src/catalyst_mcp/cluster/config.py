"""The ``redis`` section of the settings: state shared by every instance of one deployment.

Plain validated data; :mod:`catalyst_mcp.cluster.state` builds the shared state from it. The
URL may carry a password: it is hidden from ``repr`` and masked by ``catalyst config show``;
give it from the environment (``CATALYST_REDIS__URL``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["RedisSettings"]


class RedisSettings(BaseModel):
    """Redis, when several gateway instances serve one deployment (docs/scale-out.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    url: str | None = Field(
        None,
        repr=False,
        description="Redis for the state every instance shares (e.g. 'redis://redis:6379/0'): "
        "legacy-era sessions (a client's next request, its GET stream and its DELETE may then "
        "reach any instance), messages for a session's stream, parked cross-era calls, and "
        "announcements of configuration changes made through the API, the event bus's stream "
        "(events.backend auto) and the result cache (unless cache.redis_url). Unset: each instance "
        "keeps this state in its own memory (one instance, or a load balancer with sticky "
        "sessions).",
    )
    prefix: str = Field(
        "catalyst",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Prefix of every key and channel. Instances that serve one deployment share "
        "it; two deployments on one Redis need different ones.",
    )
    timeout_seconds: float = Field(
        2.0,
        gt=0,
        description="How long one Redis command may take (and a connection to open) before "
        "the request that needed it fails.",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            # the value is not shown: it may carry a password
            raise ValueError("must start with redis://, rediss:// (TLS) or unix://")
        return url
