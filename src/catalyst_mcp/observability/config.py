"""The observability sections of the settings: ``metrics``, ``telemetry`` and ``log``.

Plain validated data (docs/configuration.md and docs/observability.md describe every field);
:mod:`catalyst_mcp.observability.metrics`, :mod:`~catalyst_mcp.observability.tracing` and
:mod:`~catalyst_mcp.observability.logs` build the working objects from it. The scrape token and
the exporter's headers are secrets: hidden from ``repr`` and masked by ``catalyst config show``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LogSettings", "MetricsSettings", "TelemetrySettings"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MetricsSettings(_Model):
    """Prometheus metrics at ``GET /metrics``."""

    enabled: bool = Field(
        True,
        description="Count requests and calls and serve them at GET /metrics (Prometheus text "
        "format, OpenMetrics when the scraper asks for it). false: no /metrics and nothing "
        "counted on the request path.",
    )
    scrape_token: str | None = Field(
        None,
        repr=False,
        description="With auth.enabled, a bearer token that may read /metrics (and nothing "
        "else) besides administrators' API keys and tokens: give it to Prometheus "
        "(authorization: {credentials: ...}). Give it from the environment: "
        "CATALYST_METRICS__SCRAPE_TOKEN. Without auth, /metrics is open like /ready.",
    )
    max_tool_labels: int = Field(
        500,
        ge=1,
        description="Most distinct tool names used as the `tool` label of the tool-call "
        'metrics; calls of tools first seen after that are counted under tool="other".',
    )


class TelemetrySettings(_Model):
    """OpenTelemetry traces, exported over OTLP/HTTP (off unless an endpoint is given)."""

    otlp_endpoint: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Base URL of an OTLP/HTTP collector (e.g. http://127.0.0.1:4318); spans go "
        "to its /v1/traces. Unset: tracing is off unless the standard OTEL_EXPORTER_OTLP_"
        "ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variable names one (OTEL_SDK_DISABLED="
        "true or OTEL_TRACES_EXPORTER=none keep it off).",
    )
    sample_ratio: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of new traces recorded (0.01: one in a hundred). Parent-based: a "
        "request whose caller sent a traceparent follows the caller's decision. Unset: "
        "OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, else every trace (parentbased_always_on).",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="Extra HTTP headers of every export (e.g. a collector's API key); "
        "OTEL_EXPORTER_OTLP_HEADERS works as well.",
    )
    timeout_seconds: float = Field(
        10.0, gt=0, description="Time allowed for one export request to the collector."
    )

    def endpoint(self) -> str | None:
        """The traces URL of ``otlp_endpoint`` (``/v1/traces`` appended unless present)."""
        if self.otlp_endpoint is None:
            return None
        base = self.otlp_endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class LogSettings(_Model):
    """How the gateway's log lines look (their level is ``gateway.log_level``)."""

    format: Literal["auto", "console", "json"] = Field(
        "auto",
        description="console: aligned, human-readable lines; json: one JSON object per line "
        "(for log shippers); auto: console when stderr is a terminal, else json.",
    )
