"""An upstream's kept lists, without a server: what they tell when cleared, and the
``Mcp-Param-*`` headers their tools ask for. Fetching through a session is exercised in
tests/upstreams/test_upstream.py."""

from __future__ import annotations

from catalyst_mcp.providers import ListKind
from catalyst_mcp.upstreams.lists import ServerLists


def lists(changes: list[set[ListKind]]) -> ServerLists:
    return ServerLists("up", 5.0, lambda: None, changes.append)


def test_clearing_tells_only_when_something_was_served() -> None:
    changes: list[set[ListKind]] = []
    kept = lists(changes)
    kept.clear()
    assert changes == []
    kept.served["prompts"] = [{"name": "p"}]
    kept.clear()
    assert changes == [{"tools", "resources", "resourceTemplates", "prompts"}]
    assert kept.served["prompts"] == []


def test_released_tools_are_not_served_without_a_connection() -> None:
    changes: list[set[ListKind]] = []
    kept = lists(changes)
    kept._serve_tools([{"name": "t"}])
    assert kept.served["tools"] == []
    assert changes == []


def test_param_headers_come_from_the_served_tools() -> None:
    changes: list[set[ListKind]] = []
    kept = ServerLists("up", 5.0, lambda: object(), changes.append)  # type: ignore[arg-type,return-value]
    schema = {"properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}
    kept._serve_tools([{"name": "t", "inputSchema": schema}])
    assert changes == [{"tools"}]
    assert kept.headers_for({"name": "t", "arguments": {"region": "eu"}}) == {
        "Mcp-Param-Region": "eu"
    }
    assert kept.headers_for({"name": "t", "arguments": {}}) == {}
    assert kept.headers_for({"name": "other"}) is None
