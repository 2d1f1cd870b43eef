"""Per-request checks of the modern era and the error each era expects."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.errors import (
    HeaderMismatch,
    InvalidParams,
    MalformedMeta,
    ResourceNotFound,
    UnsupportedVersion,
    UpstreamRejected,
)
from catalyst_mcp.protocol.dispatch import check_modern_meta, error_for, modern_meta
from catalyst_mcp.protocol.versions import CLIENT_CAPS_KEY, LOG_LEVEL_KEY, PROTOCOL_VERSION_KEY
from tests.fakes import meta


def test_modern_meta_finds_only_versioned_meta() -> None:
    good = meta()
    assert modern_meta({"params": {"_meta": good}}) is good
    assert modern_meta({"params": {"_meta": {"progressToken": 1}}}) is None
    assert modern_meta({"params": {}}) is None
    assert modern_meta({"params": ["x"]}) is None
    assert modern_meta({}) is None


def test_check_returns_version_and_capabilities() -> None:
    version, caps = check_modern_meta(meta(capabilities={"sampling": {}}), "2026-07-28")
    assert (version, caps) == ("2026-07-28", {"sampling": {}})
    assert check_modern_meta(meta())[0] == "2026-07-28"  # stdio: no header to compare


@pytest.mark.parametrize(
    ("value", "header", "error"),
    [
        (None, None, MalformedMeta),
        ({}, "2030-01-01", MalformedMeta),
        ({PROTOCOL_VERSION_KEY: "2026-07-28"}, None, MalformedMeta),
        ({PROTOCOL_VERSION_KEY: "2030-01-01", CLIENT_CAPS_KEY: []}, "x", MalformedMeta),
        (meta(), "2025-11-25", HeaderMismatch),
        (meta("2030-01-01"), "2031-01-01", HeaderMismatch),
        (meta("2030-01-01"), "2030-01-01", UnsupportedVersion),
        (meta("2030-01-01"), None, UnsupportedVersion),
        (meta(log_level="chatty"), None, InvalidParams),
    ],
)
def test_check_order_and_errors(value: Any, header: str | None, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        check_modern_meta(value, header)
    assert type(caught.value) is error


def test_unsupported_version_data() -> None:
    with pytest.raises(UnsupportedVersion) as caught:
        check_modern_meta(meta("1900-01-01"))
    assert caught.value.to_jsonrpc()["data"]["requested"] == "1900-01-01"
    assert caught.value.http_status == 400


def test_valid_log_level_passes() -> None:
    value = meta()
    value[LOG_LEVEL_KEY] = "critical"
    check_modern_meta(value)


def test_error_for_maps_resource_not_found_per_era() -> None:
    exc = ResourceNotFound("Resource not found: x", data={"uri": "x"})
    assert error_for(exc, "legacy") == {
        "code": -32002,
        "message": "Resource not found: x",
        "data": {"uri": "x"},
    }
    assert error_for(exc, "modern")["code"] == -32602
    rejected = UpstreamRejected("up", {"code": -32002, "message": "gone"})
    # a legacy upstream's not-found reaches modern clients with the modern code
    assert error_for(rejected, "modern")["code"] == -32602
    assert error_for(rejected, "legacy")["code"] == -32002


@pytest.mark.parametrize("code", [-32020, -32022, -32050])
def test_upstream_hop_errors_do_not_pose_as_the_clients(code: int) -> None:
    rejected = UpstreamRejected("up", {"code": code, "message": "hdr", "data": {"x": 1}})
    assert error_for(rejected, "modern") == {"code": -32603, "message": "up: hdr"}


def test_upstream_missing_capability_is_relayed() -> None:
    data = {"requiredCapabilities": {"sampling": {}}}
    rejected = UpstreamRejected("up", {"code": -32021, "message": "needs sampling", "data": data})
    assert error_for(rejected, "modern") == {
        "code": -32021,
        "message": "needs sampling",
        "data": data,
    }
