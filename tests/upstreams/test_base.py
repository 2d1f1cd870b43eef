"""Matching responses to in-flight requests on shared message streams."""

from __future__ import annotations

import pytest

from catalyst_mcp.errors import UpstreamProtocolError, UpstreamUnavailable
from catalyst_mcp.upstreams.base import PendingRequests


async def test_resolve_matches_by_id() -> None:
    pending = PendingRequests("srv")
    one, two = pending.add(1), pending.add("two")
    assert len(pending) == 2
    assert pending.resolve({"id": "two", "result": {"b": 2}}) is True
    assert pending.resolve({"id": 1, "error": {"code": 1, "message": "m"}}) is True
    assert await two == {"id": "two", "result": {"b": 2}}
    assert (await one)["error"]["code"] == 1
    assert pending.resolve({"id": 1, "result": {}}) is False  # already answered
    assert pending.resolve({"id": 99, "result": {}}) is False
    assert len(pending) == 0


@pytest.mark.parametrize("result", [[1], "x", None, 5])
async def test_non_object_result_is_a_protocol_error(result: object) -> None:
    pending = PendingRequests("srv")
    future = pending.add(1)
    pending.resolve({"id": 1, "result": result})
    with pytest.raises(UpstreamProtocolError, match="non-object result"):
        await future


async def test_fail_all_and_discard() -> None:
    pending = PendingRequests("srv")
    kept, dropped = pending.add(1), pending.add(2)
    pending.discard(2)
    pending.fail_all("srv crashed")
    with pytest.raises(UpstreamUnavailable, match="srv crashed"):
        await kept
    assert not dropped.done()
    dropped.cancel()
    assert len(pending) == 0
