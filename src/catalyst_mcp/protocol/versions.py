"""Protocol versions, eras and the ``_meta`` keys of the modern era."""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "CLIENT_CAPS_KEY",
    "CLIENT_INFO_KEY",
    "LATEST_LEGACY",
    "LATEST_MODERN",
    "LEGACY_VERSIONS",
    "LOG_LEVELS",
    "LOG_LEVEL_KEY",
    "MODERN_VERSIONS",
    "PROTOCOL_VERSION_KEY",
    "SERVER_INFO_KEY",
    "SUBSCRIPTION_ID_KEY",
    "SUPPORTED_VERSIONS",
    "Era",
    "era_of",
    "log_level_allows",
]

Era = Literal["modern", "legacy"]

MODERN_VERSIONS = ("2026-07-28",)
LEGACY_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
LATEST_MODERN = MODERN_VERSIONS[0]
LATEST_LEGACY = LEGACY_VERSIONS[0]
SUPPORTED_VERSIONS = MODERN_VERSIONS + LEGACY_VERSIONS

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPS_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"

# RFC 5424 severities, least to most severe.
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
_SEVERITY = {level: i for i, level in enumerate(LOG_LEVELS)}


def era_of(version: str) -> Era:
    """Modern for 2026-07-28 and later (dates compare as strings), legacy before."""
    return "modern" if version >= LATEST_MODERN else "legacy"


def log_level_allows(threshold: str | None, level: Any) -> bool:
    """Whether a message at ``level`` passes a client's ``threshold`` (None: send nothing)."""
    if threshold is None:
        return False
    return _SEVERITY.get(level if isinstance(level, str) else "", 0) >= _SEVERITY.get(threshold, 0)
