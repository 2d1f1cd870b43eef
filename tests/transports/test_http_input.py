"""Bad input on /mcp: every malformed request gets the right protocol error, nothing crashes,
and other clients are not disturbed. In-process: the gateway's ASGI app, no sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import GatewaySettings, Settings
from tests.asgiclient import AsgiClient, Response
from tests.fakes import (
    JSON_HEADERS,
    FakeProvider,
    initialize_request,
    legacy_request,
    modern_headers,
    modern_request,
)


def error_of(response: Response) -> dict[str, Any]:
    message = response.message()
    assert "result" not in message, message
    assert message["jsonrpc"] == "2.0"
    error: dict[str, Any] = message["error"]
    assert isinstance(error["code"], int)
    assert isinstance(error["message"], str) and error["message"]
    return error


async def post_raw(
    client: AsgiClient, body: bytes, headers: dict[str, str] | None = None
) -> Response:
    return await client.request("POST", "/mcp", headers=headers or JSON_HEADERS, body=body)


async def assert_still_serving(client: AsgiClient) -> None:
    """A well-formed modern call still works."""
    call = modern_request("tools/call", {"name": "fake__echo", "arguments": {"text": "ok"}})
    response = await client.post("/mcp", call, modern_headers(call))
    assert response.status == 200
    assert response.message()["result"]["content"] == [{"type": "text", "text": "ok"}]


# ---- JSON and JSON-RPC envelope ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{", b"", b"not json", b'{"jsonrpc": "2.0",}', b"\xff\xfe{}", b"[" * 5000],
    ids=["truncated", "empty", "text", "trailing-comma", "bad-utf8", "deep-nesting"],
)
async def test_malformed_json_is_parse_error(asgi_client: AsgiClient, body: bytes) -> None:
    response = await post_raw(asgi_client, body)
    assert response.status == 400
    assert response.json()["id"] is None
    assert error_of(response)["code"] == -32700
    await assert_still_serving(asgi_client)


@pytest.mark.parametrize(
    "payload",
    [
        "a string",
        42,
        None,
        True,
        {"id": 1, "method": "tools/list"},
        {"jsonrpc": "1.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": 2.0, "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": True, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": None, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": [1], "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["fake__echo"]},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "fake__echo"},
        {"jsonrpc": "2.0", "id": 1, "method": ""},
        {"jsonrpc": "2.0", "id": 1, "method": 7},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "result": {}, "error": {"code": 1, "message": "x"}},
        {"jsonrpc": "2.0", "id": 1, "error": "oops"},
    ],
    ids=[
        "string",
        "number",
        "null",
        "bool",
        "no-jsonrpc",
        "jsonrpc-1.0",
        "jsonrpc-number",
        "id-bool",
        "id-float",
        "id-null",
        "id-object",
        "id-array",
        "params-array",
        "params-string",
        "method-empty",
        "method-number",
        "neither-method-nor-result",
        "result-and-error",
        "error-not-object",
    ],
)
async def test_invalid_envelope_is_invalid_request(asgi_client: AsgiClient, payload: Any) -> None:
    response = await post_raw(asgi_client, orjson.dumps(payload))
    assert response.status == 400
    assert error_of(response)["code"] == -32600
    await assert_still_serving(asgi_client)


@pytest.mark.parametrize(
    "payload",
    [[], [legacy_request("ping")], [initialize_request(), legacy_request("ping")]],
    ids=["empty", "one", "two"],
)
async def test_batches_are_rejected(asgi_client: AsgiClient, payload: Any) -> None:
    response = await post_raw(asgi_client, orjson.dumps(payload))
    assert response.status == 400
    error = error_of(response)
    assert error["code"] == -32600
    assert "batch" in error["message"].lower()


# ---- HTTP-level checks ---------------------------------------------------------------------


async def test_body_over_limit_by_content_length_is_413() -> None:
    gateway = Gateway(Settings(gateway=GatewaySettings(max_request_bytes=100)), [FakeProvider()])
    client = AsgiClient(gateway.asgi)
    body = orjson.dumps(legacy_request("ping", {"pad": "x" * 200}))
    headers = {**JSON_HEADERS, "content-length": str(len(body))}
    response = await client.request("POST", "/mcp", headers=headers, body=body)
    assert response.status == 413
    error = error_of(response)
    assert error["code"] == -32600
    assert "100" in error["message"]


async def test_body_over_limit_in_chunks_is_413() -> None:
    gateway = Gateway(Settings(gateway=GatewaySettings(max_request_bytes=100)), [FakeProvider()])
    client = AsgiClient(gateway.asgi)
    chunks = [b'{"jsonrpc": "2.0", ', b'"pad": "' + b"x" * 60, b"x" * 60 + b'"}']
    response = await client.request("POST", "/mcp", headers=JSON_HEADERS, chunks=chunks)
    assert response.status == 413
    assert error_of(response)["code"] == -32600


async def test_body_at_limit_is_accepted_in_chunks() -> None:
    call = modern_request("tools/call", {"name": "fake__echo", "arguments": {"text": "hi"}})
    body = orjson.dumps(call)
    settings = Settings(gateway=GatewaySettings(max_request_bytes=len(body)))
    client = AsgiClient(Gateway(settings, [FakeProvider()]).asgi)
    third = len(body) // 3
    chunks = [body[:third], body[third : 2 * third], body[2 * third :]]
    response = await client.request("POST", "/mcp", headers=modern_headers(call), chunks=chunks)
    assert response.status == 200
    assert response.message()["result"]["content"][0]["text"] == "hi"


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"]
)
async def test_wrong_content_type_is_415(asgi_client: AsgiClient, content_type: str | None) -> None:
    headers = {"accept": "application/json, text/event-stream"}
    if content_type is not None:
        headers["content-type"] = content_type
    response = await post_raw(asgi_client, orjson.dumps(initialize_request()), headers)
    assert response.status == 415
    assert error_of(response)["code"] == -32600


async def test_content_type_parameters_are_accepted(asgi_client: AsgiClient) -> None:
    headers = {**JSON_HEADERS, "content-type": "Application/JSON; charset=utf-8"}
    response = await post_raw(asgi_client, orjson.dumps(initialize_request()), headers)
    assert response.status == 200
    assert "mcp-session-id" in response.headers


@pytest.mark.parametrize("accept", ["text/event-stream", "text/html", "application/xml"])
async def test_accept_without_json_is_406(asgi_client: AsgiClient, accept: str) -> None:
    headers = {**JSON_HEADERS, "accept": accept}
    response = await post_raw(asgi_client, orjson.dumps(initialize_request()), headers)
    assert response.status == 406
    assert error_of(response)["code"] == -32600


@pytest.mark.parametrize("accept", ["*/*", "application/*", "application/json"])
async def test_accept_wildcards_are_fine(asgi_client: AsgiClient, accept: str) -> None:
    headers = {**JSON_HEADERS, "accept": accept}
    response = await post_raw(asgi_client, orjson.dumps(initialize_request()), headers)
    assert response.status == 200


async def test_other_http_methods_are_405(asgi_client: AsgiClient) -> None:
    for method in ("PUT", "PATCH", "HEAD", "OPTIONS"):
        response = await asgi_client.request(method, "/mcp")
        assert response.status == 405, method
        assert response.headers["allow"] == "GET, POST, DELETE"


async def test_unknown_path_is_404(asgi_client: AsgiClient) -> None:
    response = await asgi_client.post("/mcp/extra", initialize_request(), JSON_HEADERS)
    assert response.status == 404


# ---- Origin --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://attacker.test:8443",
        "null",
        "http://127.0.0.1.evil.example",
        "http://localhost.evil.example",
        "not a url",
    ],
)
async def test_foreign_origin_is_403(asgi_client: AsgiClient, origin: str) -> None:
    for method, path in (("POST", "/mcp"), ("GET", "/mcp"), ("DELETE", "/mcp"), ("GET", "/sse")):
        headers = {**JSON_HEADERS, "origin": origin}
        body = orjson.dumps(initialize_request()) if method == "POST" else b""
        response = await asgi_client.request(method, path, headers=headers, body=body)
        assert response.status == 403, (method, path)
        assert error_of(response)["code"] == -32600
    response = await asgi_client.request(
        "POST", "/messages?session_id=x", headers={**JSON_HEADERS, "origin": origin}, body=b"{}"
    )
    assert response.status == 403


@pytest.mark.parametrize(
    "origin",
    ["http://localhost", "http://localhost:5173", "http://127.0.0.1:8080", "http://[::1]:3000"],
)
async def test_loopback_origin_is_allowed(asgi_client: AsgiClient, origin: str) -> None:
    headers = {**JSON_HEADERS, "origin": origin}
    response = await post_raw(asgi_client, orjson.dumps(initialize_request()), headers)
    assert response.status == 200


async def test_configured_origins_are_allowed_exactly() -> None:
    settings = Settings(gateway=GatewaySettings(allowed_origins=["https://app.example.com/"]))
    client = AsgiClient(Gateway(settings, [FakeProvider()]).asgi)
    body = orjson.dumps(initialize_request())
    ok = await post_raw(client, body, {**JSON_HEADERS, "origin": "https://app.example.com"})
    assert ok.status == 200
    for other in ("https://app.example.com:444", "http://app.example.com", "https://example.com"):
        response = await post_raw(client, body, {**JSON_HEADERS, "origin": other})
        assert response.status == 403, other


@pytest.mark.parametrize("path", ["/mcp", "/sse", "/messages?session_id=x"])
async def test_foreign_host_is_403_while_bound_to_loopback(
    asgi_client: AsgiClient, path: str
) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    method = "GET" if path == "/sse" else "POST"
    headers = {**JSON_HEADERS, "host": "evil.example:8765"}
    body = b"" if method == "GET" else orjson.dumps(initialize_request())
    response = await asgi_client.request(method, path, headers=headers, body=body)
    assert response.status == 403
    if path == "/mcp":
        assert error_of(response)["message"] == "Forbidden: Host not allowed"


async def test_loopback_and_listed_hosts_are_allowed() -> None:
    settings = Settings(gateway=GatewaySettings(allowed_hosts=["mcp.example.com"]))
    client = AsgiClient(Gateway(settings, [FakeProvider()]).asgi)
    body = orjson.dumps(initialize_request())
    for host in ("127.0.0.1:8765", "localhost", "[::1]:8765", "mcp.example.com"):
        response = await post_raw(client, body, {**JSON_HEADERS, "host": host})
        assert response.status == 200, host


async def test_no_origin_is_allowed(asgi_client: AsgiClient) -> None:
    response = await post_raw(asgi_client, orjson.dumps(initialize_request()))
    assert response.status == 200


# ---- unknown things ------------------------------------------------------------------------


async def test_unknown_method_modern_is_404(asgi_client: AsgiClient) -> None:
    for method in ("no/such", "ping", "initialized", "logging/setLevel", "resources/subscribe"):
        call = modern_request(method)
        response = await asgi_client.post("/mcp", call, modern_headers(call))
        assert response.status == 404, method
        error = error_of(response)
        assert error["code"] == -32601
        assert response.json()["id"] == call["id"]


async def test_unknown_method_legacy_is_32601(asgi_client: AsgiClient) -> None:
    init = await asgi_client.post("/mcp", initialize_request(), JSON_HEADERS)
    headers = {**JSON_HEADERS, "mcp-session-id": init.headers["mcp-session-id"]}
    for method in ("no/such", "server/discover", "subscriptions/listen"):
        call = legacy_request(method, {})
        response = await asgi_client.post("/mcp", call, headers)
        assert response.status == 200
        assert error_of(response)["code"] == -32601, method
        assert response.message()["id"] == call["id"]


@pytest.mark.parametrize("name", ["nope", "nope__x", "other__echo", "Fake__echo", "fake_echo"])
async def test_unknown_tool_is_invalid_params(asgi_client: AsgiClient, name: str) -> None:
    call = modern_request("tools/call", {"name": name, "arguments": {}})
    response = await asgi_client.post("/mcp", call, modern_headers(call))
    assert response.status == 200
    error = error_of(response)
    assert error["code"] == -32602
    assert error["message"] == f"Unknown tool: {name}"


async def test_unlisted_tool_of_a_known_namespace_reaches_its_provider(
    asgi_client: AsgiClient, fake_provider: FakeProvider
) -> None:
    """``<ns>__<name>`` goes to the namespace's provider even before it is listed there."""
    call = modern_request("tools/call", {"name": "fake__nope", "arguments": {}})
    response = await asgi_client.post("/mcp", call, modern_headers(call))
    assert error_of(response)["code"] == -32602
    assert fake_provider.calls[-1][1]["name"] == "nope"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"name": 5},
        {"name": "fake__echo", "arguments": [1]},
        {"name": "fake__echo", "arguments": "x"},
    ],
    ids=["no-name", "name-number", "arguments-array", "arguments-string"],
)
async def test_malformed_tools_call_params(asgi_client: AsgiClient, params: dict[str, Any]) -> None:
    init = await asgi_client.post("/mcp", initialize_request(), JSON_HEADERS)
    headers = {**JSON_HEADERS, "mcp-session-id": init.headers["mcp-session-id"]}
    response = await asgi_client.post("/mcp", legacy_request("tools/call", params), headers)
    assert error_of(response)["code"] == -32602


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("prompts/get", {}),
        ("prompts/get", {"name": "nope"}),
        ("resources/read", {}),
        ("resources/read", {"uri": 5}),
        ("completion/complete", {}),
        ("completion/complete", {"ref": {"type": "ref/other"}, "argument": {}}),
        ("completion/complete", {"ref": {"type": "ref/prompt", "name": "zz__x"}}),
    ],
)
async def test_malformed_params_of_other_methods(
    asgi_client: AsgiClient, method: str, params: dict[str, Any]
) -> None:
    init = await asgi_client.post("/mcp", initialize_request(), JSON_HEADERS)
    headers = {**JSON_HEADERS, "mcp-session-id": init.headers["mcp-session-id"]}
    response = await asgi_client.post("/mcp", legacy_request(method, params), headers)
    assert response.status == 200
    assert error_of(response)["code"] == -32602


async def test_provider_bug_is_internal_error_without_details(asgi_client: AsgiClient) -> None:
    call = modern_request("tools/call", {"name": "fake__boom", "arguments": {}})
    response = await asgi_client.post("/mcp", call, modern_headers(call))
    error = error_of(response)
    assert error["code"] == -32603
    assert error["message"] == "Internal error"
    assert b"passwd" not in response.body
    assert b"Traceback" not in response.body
    await assert_still_serving(asgi_client)


# ---- isolation -----------------------------------------------------------------------------


async def test_bad_requests_do_not_disturb_other_clients(
    asgi_client: AsgiClient, fake_provider: FakeProvider
) -> None:
    """A legacy session and a modern call in flight both survive a barrage of garbage."""
    init = await asgi_client.post("/mcp", initialize_request(), JSON_HEADERS)
    session = {**JSON_HEADERS, "mcp-session-id": init.headers["mcp-session-id"]}
    waiting = modern_request("tools/call", {"name": "fake__wait", "arguments": {}})
    in_flight = asyncio.create_task(asgi_client.post("/mcp", waiting, modern_headers(waiting)))
    await asyncio.wait_for(fake_provider.entered.wait(), 5)

    garbage: list[tuple[bytes, dict[str, str]]] = [
        (b"{", JSON_HEADERS),
        (b"[]", JSON_HEADERS),
        (b'"x"', JSON_HEADERS),
        (orjson.dumps(legacy_request("tools/list")), JSON_HEADERS),
        (orjson.dumps(legacy_request("tools/list")), {**JSON_HEADERS, "mcp-session-id": "nope"}),
        (orjson.dumps(modern_request("tools/list")), JSON_HEADERS),
        (orjson.dumps(initialize_request()), {"content-type": "text/plain"}),
        (b"\x00" * 100, JSON_HEADERS),
    ]
    results = await asyncio.gather(*(post_raw(asgi_client, b, h) for b, h in garbage))
    assert [r.status for r in results] == [400, 400, 400, 400, 404, 400, 415, 400]

    ping = await asgi_client.post("/mcp", legacy_request("ping"), session)
    assert ping.message()["result"] == {}
    assert not in_flight.done()
    fake_provider.release.set()
    response = await asyncio.wait_for(in_flight, 5)
    assert response.message()["result"]["content"][0]["text"] == "released"
    await assert_still_serving(asgi_client)
