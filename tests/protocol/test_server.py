"""McpServer: routing to providers and shaping results for each era."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import (
    CatalystError,
    MethodNotFound,
    MissingCapability,
    UpstreamRejected,
    UpstreamTimeout,
)
from catalyst_mcp.protocol.server import McpServer
from catalyst_mcp.protocol.versions import SERVER_INFO_KEY
from catalyst_mcp.registry import Registry
from tests.fakes import FakeProvider


def server_with(*providers: FakeProvider, instructions: str | None = None) -> McpServer:
    registry = Registry()
    for provider in providers:
        registry.add(provider)
    return McpServer(registry, instructions)


def ctx(era: str, method: str, **kw: Any) -> CallContext:
    version = "2026-07-28" if era == "modern" else "2025-11-25"
    return CallContext(era=era, protocol_version=version, method=method, **kw)  # type: ignore[arg-type]


async def test_knows_its_methods() -> None:
    server = server_with()
    for method in (
        "tools/list",
        "tools/call",
        "resources/read",
        "completion/complete",
        "server/discover",
    ):
        assert server.knows(method)
    assert not server.knows("ping")
    assert not server.knows("initialize")


async def test_discover_is_modern_only() -> None:
    server = server_with(instructions="Use me.")
    result = await server.handle("server/discover", {}, ctx("modern", "server/discover"))
    assert result["instructions"] == "Use me."
    with pytest.raises(MethodNotFound):
        await server.handle("server/discover", {}, ctx("legacy", "server/discover"))


def test_initialize_result() -> None:
    result = server_with(instructions="Hi").initialize_result("2025-03-26")
    assert result["protocolVersion"] == "2025-03-26"
    assert result["serverInfo"]["name"] == "catalyst"
    assert result["instructions"] == "Hi"
    assert "instructions" not in server_with().initialize_result("2025-03-26")


async def test_lists_refresh_providers_first() -> None:
    provider = FakeProvider()
    refreshed: list[bool] = []

    async def refresh() -> None:
        refreshed.append(True)

    provider.refresh = refresh  # type: ignore[method-assign]
    await server_with(provider).handle("tools/list", {}, ctx("modern", "tools/list"))
    assert refreshed == [True]


async def test_input_required_from_a_modern_provider_passes_to_modern_clients() -> None:
    async def handler(method: str, params: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return {
            "resultType": "input_required",
            "inputRequests": {"k": {"method": "roots/list"}},
            "requestState": "s",
        }

    server = server_with(FakeProvider(handler=handler))
    result = await server.handle("tools/call", {"name": "fake__echo"}, ctx("modern", "tools/call"))
    assert result["resultType"] == "input_required"
    assert result["requestState"] == "s"
    assert "ttlMs" not in result and "cacheScope" not in result
    assert result["_meta"][SERVER_INFO_KEY]["name"] == "catalyst"


async def test_input_required_is_answered_for_legacy_clients() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(method: str, params: dict[str, Any], call: CallContext) -> dict[str, Any]:
        seen.append(params)
        if "inputResponses" not in params:
            return {
                "resultType": "input_required",
                "inputRequests": {"k": {"method": "roots/list", "params": {}}},
                "requestState": "s",
            }
        return {
            "resultType": "complete",
            "content": [{"type": "text", "text": str(params["inputResponses"])}],
        }

    async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"roots": [{"uri": "file:///x"}]}

    server = server_with(FakeProvider(handler=handler))
    call = ctx("legacy", "tools/call", client_capabilities={"roots": {}}, ask=ask)
    result = await server.handle("tools/call", {"name": "fake__echo"}, call)
    assert result == {
        "content": [{"type": "text", "text": "{'k': {'roots': [{'uri': 'file:///x'}]}}"}]
    }
    assert seen[1]["requestState"] == "s"
    assert seen[1]["name"] == "echo"


async def test_legacy_provider_asking_a_modern_client_is_parked() -> None:
    async def handler(method: str, params: dict[str, Any], call: CallContext) -> dict[str, Any]:
        assert call.ask is not None
        answer = await call.ask("sampling/createMessage", {"maxTokens": 5})
        return {"content": [{"type": "text", "text": answer["content"]["text"]}]}

    server = server_with(FakeProvider(handler=handler, may_ask=True))
    sampling = {"client_capabilities": {"sampling": {}}}
    first = await server.handle(
        "tools/call", {"name": "fake__echo"}, ctx("modern", "tools/call", **sampling)
    )
    assert first["resultType"] == "input_required"
    (key,) = first["inputRequests"]
    retry = {
        "name": "fake__echo",
        "requestState": first["requestState"],
        "inputResponses": {key: {"content": {"type": "text", "text": "sampled!"}}},
    }
    final = await server.handle("tools/call", retry, ctx("modern", "tools/call", **sampling))
    assert final["content"][0]["text"] == "sampled!"
    assert final["resultType"] == "complete"


async def test_asking_for_an_undeclared_capability_is_32021() -> None:
    async def handler(method: str, params: dict[str, Any], call: CallContext) -> dict[str, Any]:
        assert call.ask is not None
        await call.ask("sampling/createMessage", {"maxTokens": 5})
        return {"content": []}

    server = server_with(FakeProvider(handler=handler, may_ask=True))
    with pytest.raises(MissingCapability) as caught:
        await server.handle("tools/call", {"name": "fake__echo"}, ctx("modern", "tools/call"))
    assert caught.value.data == {"requiredCapabilities": {"sampling": {}}}


async def test_upstream_rejection_stays_a_protocol_error() -> None:
    async def handler(method: str, params: dict[str, Any], call: CallContext) -> dict[str, Any]:
        raise UpstreamRejected("fake", {"code": -32602, "message": "bad args"})

    server = server_with(FakeProvider(handler=handler))
    with pytest.raises(UpstreamRejected) as caught:
        await server.handle("tools/call", {"name": "fake__echo"}, ctx("modern", "tools/call"))
    assert caught.value.code == -32602


async def test_upstream_failure_is_a_tool_error_for_calls_only() -> None:
    async def handler(method: str, params: dict[str, Any], call: CallContext) -> dict[str, Any]:
        raise UpstreamTimeout("fake", "fake did not answer tools/call within 1s")

    server = server_with(FakeProvider(handler=handler))
    result = await server.handle("tools/call", {"name": "fake__echo"}, ctx("legacy", "tools/call"))
    assert result == {
        "content": [{"type": "text", "text": "fake did not answer tools/call within 1s"}],
        "isError": True,
    }
    with pytest.raises(UpstreamTimeout):
        await server.handle("prompts/get", {"name": "fake__hello"}, ctx("legacy", "prompts/get"))


async def test_legacy_read_without_contents_is_an_error() -> None:
    async def handler(method: str, params: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return {"resultType": "complete"}

    server = server_with(FakeProvider(handler=handler))
    with pytest.raises(CatalystError, match="no contents"):
        await server.handle(
            "resources/read", {"uri": "catalyst://fake/mem://a"}, ctx("legacy", "resources/read")
        )


# ---- callers that do not speak MCP (the REST API) ----------------------------------------------


async def test_serve_calls_with_a_rest_context() -> None:
    from catalyst_mcp.context import Identity

    provider = FakeProvider()
    server = server_with(provider)
    result = await server.serve(
        "tools/call", {"name": "fake__echo", "arguments": {"text": "hi"}}, Identity("ada", "user")
    )
    assert result == {"content": [{"type": "text", "text": "hi"}]}  # no modern-era keys
    _, _, call = provider.calls[-1]
    assert (call.channel, call.era, call.identity.subject, call.ask) == (
        "rest",
        "legacy",
        "ada",
        None,
    )


async def test_a_failing_upstream_is_an_error_for_rest_callers_only() -> None:
    from catalyst_mcp.context import ANONYMOUS
    from catalyst_mcp.errors import UpstreamUnavailable

    server = server_with(FakeProvider())
    params = {"name": "fake__fail", "arguments": {}}
    with pytest.raises(UpstreamUnavailable):
        await server.serve("tools/call", params, ANONYMOUS)
    result = await server.handle("tools/call", params, ctx("modern", "tools/call"))
    assert result["isError"] is True


async def test_rest_arguments_are_checked_after_admission() -> None:
    from catalyst_mcp.context import Identity
    from catalyst_mcp.errors import Forbidden, InvalidArguments
    from catalyst_mcp.security.access import Access
    from catalyst_mcp.settings import Settings

    schema = {"type": "object", "required": ["text"]}
    provider = FakeProvider(
        tools=[{"name": "echo", "inputSchema": schema}, {"name": "fail", "inputSchema": schema}]
    )
    registry = Registry()
    registry.add(provider)
    roles = {"r": {"rules": [{"effect": "allow", "kinds": ["tool"], "match": ["fake__echo"]}]}}
    access = Access(Settings.model_validate({"rbac": {"roles": roles}, "packs": {"path": None}}))
    server = McpServer(registry, access=access)
    ada = Identity("ada", "user", roles=("r",))
    with pytest.raises(InvalidArguments):
        await server.serve("tools/call", {"name": "fake__echo", "arguments": {}}, ada)
    with pytest.raises(Forbidden):  # not InvalidArguments: the schema is not ada's to see
        await server.serve("tools/call", {"name": "fake__fail", "arguments": {}}, ada)
    assert not provider.calls
    # MCP callers are left to the upstream, as before
    mcp = ctx("modern", "tools/call", identity=ada)
    await server.handle("tools/call", {"name": "fake__echo", "arguments": {}}, mcp)
    assert len(provider.calls) == 1


async def test_rest_callers_reach_only_listed_tools_and_prompts() -> None:
    from catalyst_mcp.context import ANONYMOUS
    from catalyst_mcp.errors import NotFound

    provider = FakeProvider()
    server = server_with(provider)
    for method, name in (("tools/call", "fake__unlisted"), ("prompts/get", "fake__unlisted")):
        with pytest.raises(NotFound):
            await server.serve(method, {"name": name, "arguments": {}}, ANONYMOUS)
    assert not provider.calls
    # MCP clients may still call a name the server did not list: it is the upstream's to judge
    with pytest.raises(CatalystError):
        await server.handle("tools/call", {"name": "fake__unlisted"}, ctx("modern", "tools/call"))
    assert provider.calls[-1][1]["name"] == "unlisted"
