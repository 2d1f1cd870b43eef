"""Protocol versions and log levels."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.protocol.versions import (
    LATEST_LEGACY,
    LATEST_MODERN,
    LEGACY_VERSIONS,
    MODERN_VERSIONS,
    SUPPORTED_VERSIONS,
    era_of,
    log_level_allows,
)


def test_version_lists() -> None:
    assert LATEST_MODERN == "2026-07-28"
    assert LATEST_LEGACY == "2025-11-25"
    assert SUPPORTED_VERSIONS == MODERN_VERSIONS + LEGACY_VERSIONS
    assert list(LEGACY_VERSIONS) == sorted(LEGACY_VERSIONS, reverse=True)


@pytest.mark.parametrize(
    ("version", "era"),
    [
        ("2026-07-28", "modern"),
        ("2027-01-01", "modern"),
        ("2025-11-25", "legacy"),
        ("2024-11-05", "legacy"),
    ],
)
def test_era_of(version: str, era: str) -> None:
    assert era_of(version) == era


@pytest.mark.parametrize(
    ("threshold", "level", "allowed"),
    [
        (None, "emergency", False),
        ("debug", "debug", True),
        ("info", "debug", False),
        ("info", "info", True),
        ("warning", "error", True),
        ("error", "warning", False),
        ("emergency", "alert", False),
        ("debug", "unknown", True),
        ("info", "unknown", False),
        ("info", None, False),
        ("info", 5, False),
    ],
)
def test_log_level_allows(threshold: str | None, level: Any, allowed: bool) -> None:
    assert log_level_allows(threshold, level) is allowed
