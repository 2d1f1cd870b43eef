"""The modern (2026-07-28, stateless) era on /mcp: header rules, result shape, streams.
In-process: the gateway's ASGI app with a fake provider."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.protocol.versions import (
    CLIENT_CAPS_KEY,
    LEGACY_VERSIONS,
    PROTOCOL_VERSION_KEY,
    SERVER_INFO_KEY,
    SUBSCRIPTION_ID_KEY,
    SUPPORTED_VERSIONS,
)
from catalyst_mcp.settings import Settings
from tests.asgiclient import AsgiClient, Response
from tests.fakes import (
    MODERN,
    FakeProvider,
    encode_header,
    modern_headers,
    modern_request,
    tool,
)


async def call(
    client: AsgiClient, message: dict[str, Any], **header_overrides: str | None
) -> Response:
    return await client.post("/mcp", message, modern_headers(message, **header_overrides))


def error_code(response: Response) -> int:
    code: int = response.message()["error"]["code"]
    return code


# ---- header rules --------------------------------------------------------------------------


async def test_missing_protocol_version_header_is_32020(asgi_client: AsgiClient) -> None:
    message = modern_request("tools/list")
    response = await call(asgi_client, message, mcp_protocol_version=None)
    assert response.status == 400
    assert error_code(response) == -32020
    assert response.json()["id"] == message["id"]


@pytest.mark.parametrize(
    ("header", "body"),
    [("2026-07-28", "2025-11-25"), ("2027-01-01", "2026-07-28"), ("2026-07-28", "2026-07-29")],
)
async def test_header_version_differs_from_meta_is_32020(
    asgi_client: AsgiClient, header: str, body: str
) -> None:
    message = modern_request("tools/list", version=body)
    response = await call(asgi_client, message, mcp_protocol_version=header)
    assert response.status == 400
    assert error_code(response) == -32020


@pytest.mark.parametrize(
    "meta",
    [
        None,
        "not an object",
        {},
        {CLIENT_CAPS_KEY: {}},
        {PROTOCOL_VERSION_KEY: MODERN},
        {PROTOCOL_VERSION_KEY: MODERN, CLIENT_CAPS_KEY: "all"},
        {PROTOCOL_VERSION_KEY: MODERN, CLIENT_CAPS_KEY: None},
        {PROTOCOL_VERSION_KEY: 20260728, CLIENT_CAPS_KEY: {}},
    ],
    ids=[
        "no-meta",
        "meta-string",
        "meta-empty",
        "no-version",
        "no-capabilities",
        "capabilities-string",
        "capabilities-null",
        "version-number",
    ],
)
async def test_missing_meta_keys_is_32602_with_400(asgi_client: AsgiClient, meta: Any) -> None:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}
    if meta is not None:
        message["params"]["_meta"] = meta
    response = await call(asgi_client, message, mcp_protocol_version=MODERN)
    assert response.status == 400
    assert error_code(response) == -32602
    assert response.json()["id"] == 7


async def test_missing_meta_is_reported_before_header_mismatch(asgi_client: AsgiClient) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {}}}
    response = await call(asgi_client, message, mcp_protocol_version=MODERN, mcp_method="other")
    assert response.status == 400
    assert error_code(response) == -32602


async def test_header_mismatch_is_reported_before_unsupported_version(
    asgi_client: AsgiClient,
) -> None:
    message = modern_request("tools/list", version="2030-01-01")
    response = await call(asgi_client, message, mcp_protocol_version="2031-01-01")
    assert response.status == 400
    assert error_code(response) == -32020


@pytest.mark.parametrize("version", ["2027-01-01", "2099-12-31", "2026-07-28-draft"])
async def test_unsupported_version_is_32022_with_data(
    asgi_client: AsgiClient, version: str
) -> None:
    message = modern_request("tools/list", version=version)
    response = await call(asgi_client, message)
    assert response.status == 400
    error = response.message()["error"]
    assert error["code"] == -32022
    assert error["data"] == {"supported": list(SUPPORTED_VERSIONS), "requested": version}
    assert MODERN in error["data"]["supported"]
    assert set(LEGACY_VERSIONS) <= set(error["data"]["supported"])


async def test_legacy_version_in_meta_is_unsupported_for_modern_requests(
    asgi_client: AsgiClient,
) -> None:
    """``_meta`` naming a legacy version (with a matching header) is not served statelessly."""
    message = modern_request("tools/list", version="2025-11-25")
    response = await call(asgi_client, message)
    assert response.status == 400
    assert error_code(response) == -32022


@pytest.mark.parametrize("method_header", [None, "tools/call", "TOOLS/LIST", "tools/lis"])
async def test_mcp_method_missing_or_different_is_32020(
    asgi_client: AsgiClient, method_header: str | None
) -> None:
    message = modern_request("tools/list")
    response = await call(asgi_client, message, mcp_method=method_header)
    assert response.status == 400
    assert error_code(response) == -32020


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/call", {"name": "fake__echo", "arguments": {"text": "x"}}),
        ("prompts/get", {"name": "fake__hello"}),
        ("resources/read", {"uri": "catalyst://fake/mem://a"}),
    ],
)
async def test_mcp_name_missing_or_different_is_32020(
    asgi_client: AsgiClient, method: str, params: dict[str, Any]
) -> None:
    message = modern_request(method, params)
    missing = await call(asgi_client, message, mcp_name=None)
    assert missing.status == 400
    assert error_code(missing) == -32020
    wrong = await call(asgi_client, message, mcp_name="fake__other")
    assert wrong.status == 400
    assert error_code(wrong) == -32020
    wrong_encoded = await call(asgi_client, message, mcp_name=encode_header("fake__other"))
    assert wrong_encoded.status == 400
    assert error_code(wrong_encoded) == -32020
    right = await call(asgi_client, message)
    assert right.status == 200
    assert "result" in right.message()


async def test_mcp_name_base64_value_is_decoded(asgi_client: AsgiClient) -> None:
    message = modern_request("tools/call", {"name": "fake__echo", "arguments": {"text": "b64"}})
    response = await call(asgi_client, message, mcp_name=encode_header("fake__echo"))
    assert response.status == 200
    assert response.message()["result"]["content"][0]["text"] == "b64"


async def test_mcp_name_non_ascii_name_via_base64() -> None:
    provider = FakeProvider("fake", tools=[tool("grüße")], handler=_echo_name)
    client = AsgiClient(Gateway(Settings(), [provider]).asgi)
    message = modern_request("tools/call", {"name": "fake__grüße", "arguments": {}})
    response = await call(client, message, mcp_name=encode_header("fake__grüße"))
    assert response.status == 200
    assert response.message()["result"]["content"][0]["text"] == "grüße"


async def _echo_name(method: str, params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": params["name"]}]}


@pytest.mark.parametrize(
    "value",
    ["=?base64?not base64!?=", "=?base64?/w==?=", "=?base64?Zm9v"],
    ids=["chars", "utf8", "open"],
)
async def test_mcp_name_malformed_base64_is_32020(asgi_client: AsgiClient, value: str) -> None:
    message = modern_request("tools/call", {"name": "fake__echo", "arguments": {}})
    response = await call(asgi_client, message, mcp_name=value)
    assert response.status == 400
    assert error_code(response) == -32020


async def test_mcp_name_not_required_for_other_methods(asgi_client: AsgiClient) -> None:
    message = modern_request("tools/list")
    response = await call(asgi_client, message, mcp_name="whatever")
    assert response.status == 200


async def test_session_id_header_is_ignored_in_modern_requests(asgi_client: AsgiClient) -> None:
    message = modern_request("tools/list")
    response = await call(asgi_client, message, mcp_session_id="no-such-session")
    assert response.status == 200
    assert "mcp-session-id" not in response.headers


@pytest.mark.parametrize("level", ["verbose", "", "INFO", 3])
async def test_invalid_log_level_in_meta_is_32602(asgi_client: AsgiClient, level: Any) -> None:
    message = modern_request("tools/list", log_level=level)
    response = await call(asgi_client, message)
    assert response.status == 400
    assert error_code(response) == -32602


async def test_modern_header_without_meta_is_not_routed_to_legacy(asgi_client: AsgiClient) -> None:
    """A modern MCP-Protocol-Version header with no ``_meta`` is a malformed modern request."""
    message = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    response = await call(asgi_client, message, mcp_protocol_version=MODERN)
    assert response.status == 400
    assert error_code(response) == -32602


# ---- notifications and responses -----------------------------------------------------------


async def test_modern_notification_is_202(asgi_client: AsgiClient) -> None:
    message = modern_request("notifications/cancelled", {"requestId": 99})
    del message["id"]
    response = await asgi_client.post("/mcp", message, modern_headers(message, mcp_method=None))
    assert response.status == 202
    assert response.body == b""


async def test_modern_client_response_is_rejected(asgi_client: AsgiClient) -> None:
    message = {"jsonrpc": "2.0", "id": 5, "result": {}}
    response = await asgi_client.post(
        "/mcp", message, modern_headers(message, mcp_protocol_version=MODERN)
    )
    assert response.status == 400
    assert error_code(response) == -32600


# ---- result shape --------------------------------------------------------------------------


def assert_modern_result(result: dict[str, Any], *, cacheable: bool) -> None:
    assert result["resultType"] == "complete"
    assert result["_meta"][SERVER_INFO_KEY]["name"] == "catalyst"
    assert isinstance(result["_meta"][SERVER_INFO_KEY]["version"], str)
    if cacheable:
        assert result["ttlMs"] == 0
        assert result["cacheScope"] == "private"
    else:
        assert "ttlMs" not in result
        assert "cacheScope" not in result


@pytest.mark.parametrize(
    ("method", "params", "cacheable"),
    [
        ("tools/list", {}, True),
        ("resources/list", {}, True),
        ("resources/templates/list", {}, True),
        ("prompts/list", {}, True),
        ("resources/read", {"uri": "catalyst://fake/mem://a"}, True),
        ("server/discover", {}, True),
        ("tools/call", {"name": "fake__echo", "arguments": {"text": "x"}}, False),
        ("prompts/get", {"name": "fake__hello"}, False),
        (
            "completion/complete",
            {
                "ref": {"type": "ref/prompt", "name": "fake__hello"},
                "argument": {"name": "a", "value": ""},
            },
            False,
        ),
    ],
)
async def test_modern_results_carry_result_type_cache_hints_and_server_info(
    asgi_client: AsgiClient, method: str, params: dict[str, Any], cacheable: bool
) -> None:
    response = await call(asgi_client, modern_request(method, params))
    assert response.status == 200
    assert response.content_type == "application/json"
    assert_modern_result(response.message()["result"], cacheable=cacheable)


async def test_modern_result_keeps_provider_meta_but_names_the_gateway() -> None:
    async def handler(method: str, params: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {
            "content": [],
            "_meta": {"x.test/keep": 1, SERVER_INFO_KEY: {"name": "upstream", "version": "9"}},
        }

    client = AsgiClient(Gateway(Settings(), [FakeProvider(handler=handler)]).asgi)
    message = modern_request("tools/call", {"name": "fake__echo", "arguments": {}})
    result = (await call(client, message)).message()["result"]
    assert result["_meta"]["x.test/keep"] == 1
    assert result["_meta"][SERVER_INFO_KEY]["name"] == "catalyst"


async def test_discover_describes_the_gateway(asgi_client: AsgiClient) -> None:
    result = (await call(asgi_client, modern_request("server/discover"))).message()["result"]
    assert result["supportedVersions"] == list(SUPPORTED_VERSIONS)
    capabilities = result["capabilities"]
    assert capabilities["tools"] == {"listChanged": True}
    assert capabilities["resources"] == {"subscribe": True, "listChanged": True}
    assert "prompts" in capabilities and "completions" in capabilities


async def test_lists_are_namespaced(asgi_client: AsgiClient) -> None:
    tools = (await call(asgi_client, modern_request("tools/list"))).message()["result"]["tools"]
    assert [t["name"] for t in tools] == [
        "fake__echo",
        "fake__link",
        "fake__progress",
        "fake__log",
        "fake__ask",
        "fake__fail",
        "fake__boom",
        "fake__wait",
    ]
    assert "nextCursor" not in (await call(asgi_client, modern_request("tools/list"))).json()
    resources = (await call(asgi_client, modern_request("resources/list"))).message()["result"]
    assert [r["uri"] for r in resources["resources"]] == ["catalyst://fake/mem://a"]
    templates = (await call(asgi_client, modern_request("resources/templates/list"))).message()
    assert [t["uriTemplate"] for t in templates["result"]["resourceTemplates"]] == [
        "catalyst://fake/mem://t/{x}"
    ]
    prompts = (await call(asgi_client, modern_request("prompts/list"))).message()["result"]
    assert [p["name"] for p in prompts["prompts"]] == ["fake__hello"]


async def test_calls_use_the_provider_names_and_rewrite_uris(
    asgi_client: AsgiClient, fake_provider: FakeProvider
) -> None:
    message = modern_request("tools/call", {"name": "fake__link", "arguments": {}})
    result = (await call(asgi_client, message)).message()["result"]
    assert fake_provider.calls[-1][1]["name"] == "link"
    assert result["content"] == [
        {"type": "resource_link", "uri": "catalyst://fake/mem://a", "name": "a"},
        {"type": "resource", "resource": {"uri": "catalyst://fake/mem://b", "text": "b"}},
        {"type": "text", "text": "plain"},
    ]
    read = modern_request("resources/read", {"uri": "catalyst://fake/mem://t/42"})
    contents = (await call(asgi_client, read)).message()["result"]["contents"]
    assert fake_provider.calls[-1][1]["uri"] == "mem://t/42"
    assert contents == [
        {
            "uri": "catalyst://fake/mem://t/42",
            "mimeType": "text/plain",
            "text": "text of mem://t/42",
        }
    ]
    prompt = modern_request("prompts/get", {"name": "fake__hello"})
    messages = (await call(asgi_client, prompt)).message()["result"]["messages"]
    assert messages[1]["content"]["uri"] == "catalyst://fake/mem://a"


async def test_unknown_resource_is_32602_in_modern_era(asgi_client: AsgiClient) -> None:
    for uri in ("catalyst://fake/mem://missing", "catalyst://nope/mem://a", "mem://a"):
        response = await call(asgi_client, modern_request("resources/read", {"uri": uri}))
        assert response.status == 200
        assert error_code(response) == -32602, uri


async def test_completion_for_provider_without_completions_is_empty() -> None:
    provider = FakeProvider(capabilities={"prompts": {}})
    client = AsgiClient(Gateway(Settings(), [provider]).asgi)
    ref = {"type": "ref/prompt", "name": "fake__hello"}
    message = modern_request(
        "completion/complete", {"ref": ref, "argument": {"name": "a", "value": "x"}}
    )
    result = (await call(client, message)).message()["result"]
    assert result["completion"] == {"values": [], "hasMore": False}
    assert provider.calls == []


async def test_completion_is_routed_with_original_names(
    asgi_client: AsgiClient, fake_provider: FakeProvider
) -> None:
    ref = {"type": "ref/resource", "uri": "catalyst://fake/mem://t/{x}"}
    message = modern_request(
        "completion/complete", {"ref": ref, "argument": {"name": "x", "value": ""}}
    )
    result = (await call(asgi_client, message)).message()["result"]
    assert result["completion"]["values"] == ["one", "two"]
    assert fake_provider.calls[-1][1]["ref"] == {"type": "ref/resource", "uri": "mem://t/{x}"}


async def test_server_down_is_a_tool_error_not_a_protocol_error(asgi_client: AsgiClient) -> None:
    message = modern_request("tools/call", {"name": "fake__fail", "arguments": {}})
    result = (await call(asgi_client, message)).message()["result"]
    assert result["isError"] is True
    assert result["content"] == [{"type": "text", "text": "fake is down"}]


# ---- pagination ----------------------------------------------------------------------------


async def test_pagination_walks_every_item_once() -> None:
    provider = FakeProvider(tools=[tool(f"t{i:04d}") for i in range(2500)])
    client = AsgiClient(Gateway(Settings(), [provider]).asgi)
    names: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {} if cursor is None else {"cursor": cursor}
        result = (await call(client, modern_request("tools/list", params))).message()["result"]
        names += [t["name"] for t in result["tools"]]
        pages += 1
        cursor = result.get("nextCursor")
        if cursor is None:
            break
    assert pages == 3
    assert names == [f"fake__t{i:04d}" for i in range(2500)]


@pytest.mark.parametrize("cursor", ["garbage", "", "bzot", "o:10", 10, {"o": 1}, "b206LTE="])
async def test_invalid_cursor_is_32602(asgi_client: AsgiClient, cursor: Any) -> None:
    response = await call(asgi_client, modern_request("tools/list", {"cursor": cursor}))
    assert error_code(response) == -32602
    assert "cursor" in response.message()["error"]["message"].lower()


# ---- streams: progress, logs, subscriptions ------------------------------------------------


async def test_progress_is_relayed_with_the_clients_token(asgi_client: AsgiClient) -> None:
    message = modern_request(
        "tools/call", {"name": "fake__progress", "arguments": {}}, progressToken="tok-1"
    )
    response = await call(asgi_client, message)
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    assert response.headers["cache-control"].startswith("no-cache")
    messages = response.messages()
    assert [m.get("method") for m in messages] == [
        "notifications/progress",
        "notifications/progress",
        None,
    ]
    assert [m["params"]["progressToken"] for m in messages[:2]] == ["tok-1", "tok-1"]
    assert messages[2]["id"] == message["id"]
    assert messages[2]["result"]["content"][0]["text"] == "progressed"


async def test_no_progress_without_a_token(asgi_client: AsgiClient) -> None:
    message = modern_request("tools/call", {"name": "fake__progress", "arguments": {}})
    response = await call(asgi_client, message)
    assert response.content_type == "application/json"
    assert len(response.messages()) == 1


async def test_logs_only_when_the_request_asks_for_them(asgi_client: AsgiClient) -> None:
    quiet = await call(
        asgi_client, modern_request("tools/call", {"name": "fake__log", "arguments": {}})
    )
    assert quiet.content_type == "application/json"
    assert [m.get("method") for m in quiet.messages()] == [None]

    chatty = modern_request("tools/call", {"name": "fake__log", "arguments": {}}, log_level="info")
    messages = (await call(asgi_client, chatty)).messages()
    logs = [m["params"]["level"] for m in messages if m.get("method") == "notifications/message"]
    assert logs == ["info", "error"]
    assert messages[-1]["result"]["content"][0]["text"] == "logged"


async def test_subscriptions_listen_acknowledges_and_delivers_changes(
    asgi_client: AsgiClient, fake_provider: FakeProvider, inproc_gateway: Gateway
) -> None:
    message = modern_request(
        "subscriptions/listen",
        {"notifications": {"toolsListChanged": True, "bogus": True, "promptsListChanged": 1}},
        request_id="listen-1",
    )
    async with asgi_client.stream(
        "POST", "/mcp", headers=modern_headers(message), body=orjson.dumps(message)
    ) as stream:
        ack = await stream.next_message()
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["notifications"] == {"toolsListChanged": True}
        assert ack["params"]["_meta"][SUBSCRIPTION_ID_KEY] == "listen-1"
        assert len(inproc_gateway.hub.listeners) == 1

        fake_provider.set_items("prompts", [])  # not asked for: nothing is sent
        fake_provider.set_items("tools", [tool("new")])
        changed = await stream.next_message()
        assert changed["method"] == "notifications/tools/list_changed"
        assert changed["params"]["_meta"][SUBSCRIPTION_ID_KEY] == "listen-1"
    assert inproc_gateway.hub.listeners == set()


async def test_subscriptions_listen_resource_updates(
    asgi_client: AsgiClient, fake_provider: FakeProvider, inproc_gateway: Gateway
) -> None:
    uri = "catalyst://fake/mem://a"
    message = modern_request(
        "subscriptions/listen", {"notifications": {"resourceSubscriptions": [uri, uri]}}
    )
    async with asgi_client.stream(
        "POST", "/mcp", headers=modern_headers(message), body=orjson.dumps(message)
    ) as stream:
        ack = await stream.next_message()
        assert ack["params"]["notifications"] == {"resourceSubscriptions": [uri]}
        assert fake_provider.subscribed == ["mem://a"]
        await fake_provider.on_resource_updated(fake_provider, "mem://other")
        await fake_provider.on_resource_updated(fake_provider, "mem://a")
        update = await stream.next_message()
        assert update["method"] == "notifications/resources/updated"
        assert update["params"]["uri"] == uri
        assert update["params"]["_meta"][SUBSCRIPTION_ID_KEY] == message["id"]
    assert fake_provider.unsubscribed == ["mem://a"]


async def test_client_leaving_cancels_the_call(
    asgi_client: AsgiClient, fake_provider: FakeProvider
) -> None:
    """Modern HTTP cancellation is the client closing its request's response stream."""
    message = modern_request("tools/call", {"name": "fake__wait", "arguments": {}})
    async with asgi_client.stream(
        "POST", "/mcp", headers=modern_headers(message), body=orjson.dumps(message)
    ) as stream:
        await asyncio.wait_for(fake_provider.entered.wait(), 5)
        # The app armed its WATCH_AFTER_SECONDS (0.05 s) timer before the provider was entered;
        # a later, longer timer of ours fires after it, so the disconnect watcher is running.
        await asyncio.sleep(0.1)
    await asyncio.wait_for(fake_provider.cancelled.wait(), 5)
    assert stream.status == 0  # nothing was sent to a client that left
    fake_provider.release.set()
    await assert_serving(asgi_client)


async def test_concurrent_calls_get_their_own_answers(asgi_client: AsgiClient) -> None:
    message = modern_request("tools/call", {"name": "fake__echo", "arguments": {"text": "a"}})
    responses = await asyncio.gather(*(call(asgi_client, dict(message, id=i)) for i in range(20)))
    assert [r.message()["id"] for r in responses] == list(range(20))


async def assert_serving(client: AsgiClient) -> None:
    message = modern_request("tools/call", {"name": "fake__echo", "arguments": {"text": "ok"}})
    assert (await call(client, message)).message()["result"]["content"][0]["text"] == "ok"


# ---- Mcp-Param-* headers mirrored from x-mcp-header arguments ------------------------------

ROUTED = tool(
    "routed",
    inputSchema={
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "dry": {"type": "boolean", "x-mcp-header": "Dry-Run"},
            "note": {"type": "string"},
        },
    },
)


@pytest.fixture
def routed_client() -> AsgiClient:
    provider = FakeProvider(tools=[ROUTED], handler=_echo_name)
    return AsgiClient(Gateway(Settings(), [provider]).asgi)


def routed_call(**arguments: Any) -> dict[str, Any]:
    return modern_request("tools/call", {"name": "fake__routed", "arguments": arguments})


async def test_param_headers_that_match_pass(routed_client: AsgiClient) -> None:
    message = routed_call(region="eu-west", count=42, dry=True, note="free")
    response = await call(
        routed_client,
        message,
        mcp_param_region="eu-west",
        mcp_param_count="42.0",  # numbers compare as numbers
        mcp_param_dry_run="true",
    )
    assert response.status == 200, response.body
    assert response.message()["result"]["content"][0]["text"] == "routed"


async def test_param_header_values_may_be_base64(routed_client: AsgiClient) -> None:
    message = routed_call(region="zürich")
    response = await call(routed_client, message, mcp_param_region=encode_header("zürich"))
    assert response.status == 200


async def test_absent_or_null_arguments_need_no_header(routed_client: AsgiClient) -> None:
    response = await call(routed_client, routed_call(region=None, note="x"))
    assert response.status == 200


@pytest.mark.parametrize(
    ("arguments", "headers"),
    [
        ({"region": "eu"}, {}),
        ({"region": "eu"}, {"mcp_param_region": "us"}),
        ({"count": 3}, {"mcp_param_count": "three"}),
        ({"count": 3}, {"mcp_param_count": "4"}),
        ({"dry": False}, {"mcp_param_dry_run": "true"}),
        ({"region": "eu"}, {"mcp_param_region": "=?base64?!!?="}),
    ],
    ids=["missing", "different", "not-a-number", "other-number", "other-bool", "bad-base64"],
)
async def test_param_header_missing_or_different_is_32020(
    routed_client: AsgiClient, arguments: dict[str, Any], headers: dict[str, str]
) -> None:
    response = await call(routed_client, routed_call(**arguments), **headers)
    assert response.status == 400
    assert error_code(response) == -32020


async def test_listen_with_an_unknown_resource_is_answered(
    asgi_client: AsgiClient, inproc_gateway: Gateway
) -> None:
    known = "catalyst://fake/mem://a"
    message = modern_request(
        "subscriptions/listen",
        {"notifications": {"resourceSubscriptions": ["catalyst://nope/x", known]}},
    )
    async with asgi_client.stream(
        "POST", "/mcp", headers=modern_headers(message), body=orjson.dumps(message)
    ) as stream:
        first = await stream.next_message()
    if "error" in first:  # refusing the whole request is fine
        assert first["error"]["code"] == -32602
    else:  # so is honouring only the URIs that exist
        assert first["params"]["notifications"] == {"resourceSubscriptions": [known]}
    assert inproc_gateway.hub.listeners == set()
