"""The legacy era (2024-11-05 … 2025-11-25) on /mcp: sessions, negotiation, session methods,
server→client requests and the GET stream. In-process: the gateway's ASGI app, no sockets."""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

import orjson
import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.protocol.versions import LATEST_LEGACY, LEGACY_VERSIONS, SERVER_INFO_KEY
from catalyst_mcp.settings import Settings
from tests.asgiclient import AsgiClient, Response
from tests.fakes import (
    JSON_HEADERS,
    FakeProvider,
    initialize_request,
    legacy_request,
    modern_headers,
    modern_request,
    tool,
)
from tests.live import poll


class LegacyClient:
    """A legacy client over the in-process app: initialize, then POST with the session id."""

    def __init__(self, client: AsgiClient) -> None:
        self.client = client
        self.session_id = ""
        self.init_result: dict[str, Any] = {}

    @property
    def headers(self) -> dict[str, str]:
        return {
            **JSON_HEADERS,
            "mcp-session-id": self.session_id,
            "mcp-protocol-version": self.init_result.get("protocolVersion", LATEST_LEGACY),
        }

    async def initialize(self, version: str = LATEST_LEGACY, **caps: Any) -> LegacyClient:
        response = await self.client.post("/mcp", initialize_request(version, caps), JSON_HEADERS)
        assert response.status == 200, response.body
        self.session_id = response.headers["mcp-session-id"]
        self.init_result = response.message()["result"]
        return self

    async def post(self, message: dict[str, Any]) -> Response:
        return await self.client.post("/mcp", message, self.headers)

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(legacy_request(method, params))
        assert response.status == 200
        return response.message()


@pytest.fixture
async def legacy(asgi_client: AsgiClient) -> LegacyClient:
    return await LegacyClient(asgi_client).initialize()


# ---- initialize and negotiation ------------------------------------------------------------


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
async def test_initialize_echoes_a_supported_legacy_version(
    asgi_client: AsgiClient, version: str
) -> None:
    response = await asgi_client.post("/mcp", initialize_request(version), JSON_HEADERS)
    assert response.status == 200
    assert response.content_type == "application/json"
    result = response.message()["result"]
    assert result["protocolVersion"] == version
    assert result["serverInfo"]["name"] == "catalyst"
    assert set(result["capabilities"]) >= {"tools", "resources", "prompts", "logging"}
    assert "resultType" not in result
    session_id = response.headers["mcp-session-id"]
    assert len(session_id) >= 32
    assert all(0x21 <= ord(c) <= 0x7E for c in session_id)


@pytest.mark.parametrize("version", ["2026-07-28", "2024-01-01", "1.0", "", 20251125, None])
async def test_initialize_offers_latest_legacy_otherwise(
    asgi_client: AsgiClient, version: Any
) -> None:
    message = initialize_request()
    message["params"]["protocolVersion"] = version
    response = await asgi_client.post("/mcp", message, JSON_HEADERS)
    assert response.status == 200
    assert response.message()["result"]["protocolVersion"] == LATEST_LEGACY


async def test_initialize_needs_params(asgi_client: AsgiClient) -> None:
    response = await asgi_client.post("/mcp", legacy_request("initialize"), JSON_HEADERS)
    assert response.status == 400
    assert response.message()["error"]["code"] == -32600


async def test_initialize_ignores_a_modern_header(asgi_client: AsgiClient) -> None:
    headers = {**JSON_HEADERS, "mcp-protocol-version": "2026-07-28"}
    response = await asgi_client.post("/mcp", initialize_request(), headers)
    assert response.status == 200
    assert response.message()["result"]["protocolVersion"] == LATEST_LEGACY


async def test_each_initialize_creates_its_own_session(
    asgi_client: AsgiClient, inproc_gateway: Gateway
) -> None:
    first = await LegacyClient(asgi_client).initialize()
    second = await LegacyClient(asgi_client).initialize("2025-03-26")
    assert first.session_id != second.session_id
    assert len(inproc_gateway.sessions) == 2
    assert inproc_gateway.sessions.get(second.session_id).protocol_version == "2025-03-26"  # type: ignore[union-attr]


async def test_initialize_with_a_session_id_starts_a_new_session(
    legacy: LegacyClient, inproc_gateway: Gateway
) -> None:
    response = await legacy.post(initialize_request())
    assert response.status == 200
    assert response.headers["mcp-session-id"] != legacy.session_id
    assert len(inproc_gateway.sessions) == 2


async def test_initialize_with_modern_meta_is_a_removed_method(asgi_client: AsgiClient) -> None:
    message = modern_request("initialize", initialize_request()["params"])
    response = await asgi_client.post("/mcp", message, modern_headers(message))
    assert response.status == 404
    assert response.message()["error"]["code"] == -32601


# ---- session rules -------------------------------------------------------------------------


async def test_request_without_session_is_400(asgi_client: AsgiClient) -> None:
    message = legacy_request("tools/list")
    response = await asgi_client.post("/mcp", message, JSON_HEADERS)
    assert response.status == 400
    assert response.json()["error"]["code"] == -32600
    assert response.json()["id"] == message["id"]


async def test_unknown_session_is_404(asgi_client: AsgiClient) -> None:
    headers = {**JSON_HEADERS, "mcp-session-id": "0" * 32}
    response = await asgi_client.post("/mcp", legacy_request("tools/list"), headers)
    assert response.status == 404
    assert response.json()["error"]["code"] == -32600


async def test_unsupported_protocol_version_header_is_400(legacy: LegacyClient) -> None:
    headers = {**legacy.headers, "mcp-protocol-version": "1999-01-01"}
    response = await legacy.client.post("/mcp", legacy_request("tools/list"), headers)
    assert response.status == 400


async def test_missing_protocol_version_header_is_accepted(legacy: LegacyClient) -> None:
    headers = {k: v for k, v in legacy.headers.items() if k != "mcp-protocol-version"}
    response = await legacy.client.post("/mcp", legacy_request("ping"), headers)
    assert response.status == 200
    assert response.message()["result"] == {}


async def test_delete_ends_the_session(legacy: LegacyClient, inproc_gateway: Gateway) -> None:
    response = await legacy.client.request("DELETE", "/mcp", headers=legacy.headers)
    assert response.status == 200
    assert len(inproc_gateway.sessions) == 0
    later = await legacy.post(legacy_request("ping"))
    assert later.status == 404
    again = await legacy.client.request("DELETE", "/mcp", headers=legacy.headers)
    assert again.status == 404
    stream = await legacy.client.get("/mcp", {**legacy.headers, "accept": "text/event-stream"})
    assert stream.status == 404


async def test_delete_without_session_is_405(asgi_client: AsgiClient) -> None:
    response = await asgi_client.request("DELETE", "/mcp")
    assert response.status == 405
    assert response.headers["allow"] == "POST"


async def test_get_without_session_is_405(asgi_client: AsgiClient) -> None:
    response = await asgi_client.get("/mcp", {"accept": "text/event-stream"})
    assert response.status == 405
    assert response.headers["allow"] == "POST"


async def test_get_with_unknown_session_is_404(asgi_client: AsgiClient) -> None:
    headers = {"accept": "text/event-stream", "mcp-session-id": "nope"}
    response = await asgi_client.get("/mcp", headers)
    assert response.status == 404


async def test_get_needs_event_stream_accept(legacy: LegacyClient) -> None:
    response = await legacy.client.get("/mcp", {**legacy.headers, "accept": "application/json"})
    assert response.status == 406


# ---- session methods -----------------------------------------------------------------------


async def test_ping(legacy: LegacyClient) -> None:
    message = legacy_request("ping", request_id="p-1")
    response = await legacy.post(message)
    assert response.message() == {"jsonrpc": "2.0", "id": "p-1", "result": {}}
    assert response.headers["mcp-session-id"] == legacy.session_id


@pytest.mark.parametrize("level", ["debug", "info", "notice", "warning", "emergency"])
async def test_set_level(legacy: LegacyClient, inproc_gateway: Gateway, level: str) -> None:
    answer = await legacy.request("logging/setLevel", {"level": level})
    assert answer["result"] == {}
    assert inproc_gateway.sessions.get(legacy.session_id).log_level == level  # type: ignore[union-attr]


@pytest.mark.parametrize("params", [{"level": "verbose"}, {"level": "INFO"}, {"level": 3}, {}])
async def test_set_level_invalid_is_32602(legacy: LegacyClient, params: dict[str, Any]) -> None:
    answer = await legacy.request("logging/setLevel", params)
    assert answer["error"]["code"] == -32602


async def test_logs_follow_the_session_level(legacy: LegacyClient) -> None:
    everything = await legacy.post(legacy_request("tools/call", {"name": "fake__log"}))
    levels = [m["params"]["level"] for m in everything.messages() if "method" in m]
    assert levels == ["debug", "info", "error"]  # forwarded until the client sets a level
    await legacy.request("logging/setLevel", {"level": "error"})
    some = await legacy.post(legacy_request("tools/call", {"name": "fake__log"}))
    levels = [m["params"]["level"] for m in some.messages() if "method" in m]
    assert levels == ["error"]


async def test_progress_uses_the_clients_token(legacy: LegacyClient) -> None:
    message = legacy_request(
        "tools/call", {"name": "fake__progress", "_meta": {"progressToken": 17}}
    )
    response = await legacy.post(message)
    assert response.content_type == "text/event-stream"
    messages = response.messages()
    assert [m["params"]["progressToken"] for m in messages[:-1]] == [17, 17]
    assert messages[-1]["id"] == message["id"]


async def test_notifications_are_202(legacy: LegacyClient) -> None:
    for method in ("notifications/initialized", "notifications/roots/list_changed", "x/unknown"):
        response = await legacy.post({"jsonrpc": "2.0", "method": method})
        assert response.status == 202, method
        assert response.body == b""


async def test_client_responses_are_202(legacy: LegacyClient) -> None:
    for message in (
        {"jsonrpc": "2.0", "id": "catalyst-99", "result": {}},
        {"jsonrpc": "2.0", "id": 5, "error": {"code": -1, "message": "no"}},
    ):
        response = await legacy.post(message)
        assert response.status == 202
        assert response.body == b""


async def test_legacy_results_carry_no_modern_fields(legacy: LegacyClient) -> None:
    for method, params in (
        ("tools/list", {}),
        ("resources/read", {"uri": "catalyst://fake/mem://a"}),
        ("tools/call", {"name": "fake__echo", "arguments": {"text": "x"}}),
    ):
        result = (await legacy.request(method, params))["result"]
        assert not {"resultType", "ttlMs", "cacheScope"} & set(result), method
        assert SERVER_INFO_KEY not in result.get("_meta", {}), method


async def test_legacy_results_drop_upstream_server_info() -> None:
    """A modern upstream's result carries its own serverInfo; legacy clients must not see it."""

    async def modern_upstream(method: str, params: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {
            "content": [],
            "resultType": "complete",
            "_meta": {SERVER_INFO_KEY: {"name": "upstream", "version": "1"}},
        }

    client = AsgiClient(Gateway(Settings(), [FakeProvider(handler=modern_upstream)]).asgi)
    legacy = await LegacyClient(client).initialize()
    result = (await legacy.request("tools/call", {"name": "fake__echo"}))["result"]
    assert "resultType" not in result
    assert SERVER_INFO_KEY not in result.get("_meta", {})


async def test_unknown_resource_is_32002_in_legacy_era(legacy: LegacyClient) -> None:
    answer = await legacy.request("resources/read", {"uri": "catalyst://fake/mem://zzz"})
    assert answer["error"]["code"] == -32002
    unknown_ns = await legacy.request("resources/read", {"uri": "catalyst://nope/mem://a"})
    assert unknown_ns["error"]["code"] == -32002
    assert unknown_ns["error"]["data"] == {"uri": "catalyst://nope/mem://a"}


async def test_invalid_cursor_is_32602(legacy: LegacyClient) -> None:
    answer = await legacy.request("tools/list", {"cursor": "nope"})
    assert answer["error"]["code"] == -32602


# ---- subscriptions and the GET stream ------------------------------------------------------


async def test_subscribe_and_unsubscribe(legacy: LegacyClient, fake_provider: FakeProvider) -> None:
    uri = "catalyst://fake/mem://a"
    assert (await legacy.request("resources/subscribe", {"uri": uri}))["result"] == {}
    assert (await legacy.request("resources/subscribe", {"uri": uri}))["result"] == {}
    assert fake_provider.subscribed == ["mem://a"]
    assert (await legacy.request("resources/unsubscribe", {"uri": uri}))["result"] == {}
    assert fake_provider.unsubscribed == ["mem://a"]
    bad = await legacy.request("resources/subscribe", {})
    assert bad["error"]["code"] == -32602
    unknown = await legacy.request("resources/subscribe", {"uri": "catalyst://nope/x"})
    assert unknown["error"]["code"] == -32002


async def test_delete_drops_the_sessions_subscriptions(
    legacy: LegacyClient, fake_provider: FakeProvider
) -> None:
    await legacy.request("resources/subscribe", {"uri": "catalyst://fake/mem://a"})
    await legacy.client.request("DELETE", "/mcp", headers=legacy.headers)
    await poll(lambda: fake_provider.unsubscribed == ["mem://a"], what="unsubscribed")


async def test_get_stream_carries_list_changes_and_updates(
    legacy: LegacyClient, fake_provider: FakeProvider
) -> None:
    await legacy.request("resources/subscribe", {"uri": "catalyst://fake/mem://a"})
    headers = {**legacy.headers, "accept": "text/event-stream"}
    async with legacy.client.stream("GET", "/mcp", headers=headers) as stream:
        await stream.wait_started()
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["mcp-session-id"] == legacy.session_id
        fake_provider.set_items("tools", [tool("x")])
        fake_provider.set_items("resourceTemplates", [])
        await fake_provider.on_resource_updated(fake_provider, "mem://a")
        first = await stream.next_message()
        second = await stream.next_message()
        third = await stream.next_message()
    assert first == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    assert second == {"jsonrpc": "2.0", "method": "notifications/resources/list_changed"}
    assert third["method"] == "notifications/resources/updated"
    assert third["params"] == {"uri": "catalyst://fake/mem://a"}


async def test_delete_ends_an_open_get_stream(legacy: LegacyClient) -> None:
    headers = {**legacy.headers, "accept": "text/event-stream"}
    async with legacy.client.stream("GET", "/mcp", headers=headers) as stream:
        await stream.wait_started()
        await legacy.client.request("DELETE", "/mcp", headers=legacy.headers)
        assert await stream.next_event() is None  # the stream ends; no event was sent
        assert stream.finished.is_set()


# ---- cancellation and server→client requests -----------------------------------------------


async def test_notifications_cancelled_stops_the_request(
    legacy: LegacyClient, fake_provider: FakeProvider
) -> None:
    message = legacy_request("tools/call", {"name": "fake__wait"})
    async with legacy.client.stream(
        "POST", "/mcp", headers=legacy.headers, body=orjson.dumps(message)
    ) as stream:
        await asyncio.wait_for(fake_provider.entered.wait(), 5)
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": message["id"], "reason": "changed my mind"},
        }
        assert (await legacy.post(cancel)).status == 202
        await asyncio.wait_for(fake_provider.cancelled.wait(), 5)
        await asyncio.wait_for(stream.finished.wait(), 5)
    assert b"result" not in stream.body  # a cancelled request gets no response
    assert (await legacy.request("ping"))["result"] == {}


async def test_cancelling_an_unknown_request_is_harmless(legacy: LegacyClient) -> None:
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 404}}
    assert (await legacy.post(cancel)).status == 202
    assert (await legacy.request("ping"))["result"] == {}


async def test_server_to_client_request_is_answered_on_another_post(
    asgi_client: AsgiClient,
) -> None:
    legacy = await LegacyClient(asgi_client).initialize(elicitation={})
    message = legacy_request("tools/call", {"name": "fake__ask"})
    async with asgi_client.stream(
        "POST", "/mcp", headers=legacy.headers, body=orjson.dumps(message)
    ) as stream:
        question = await stream.next_message()
        assert question["method"] == "elicitation/create"
        assert question["params"]["message"] == "name?"
        answer = {
            "jsonrpc": "2.0",
            "id": question["id"],
            "result": {"action": "accept", "content": {"n": 1}},
        }
        assert (await legacy.post(answer)).status == 202
        final = await stream.next_message()
    assert final["id"] == message["id"]
    assert final["result"]["content"][0]["text"] == "answer: {'n': 1}"


async def test_client_refusing_a_server_request_is_a_clear_error(asgi_client: AsgiClient) -> None:
    legacy = await LegacyClient(asgi_client).initialize(elicitation={})
    message = legacy_request("tools/call", {"name": "fake__ask"})
    async with asgi_client.stream(
        "POST", "/mcp", headers=legacy.headers, body=orjson.dumps(message)
    ) as stream:
        question = await stream.next_message()
        refusal = {
            "jsonrpc": "2.0",
            "id": question["id"],
            "error": {"code": -1, "message": "user said no"},
        }
        assert (await legacy.post(refusal)).status == 202
        final = await stream.next_message()
    assert final["id"] == message["id"]
    assert final["error"]["message"] == "user said no"


# ---- session caps ----------------------------------------------------------------------------


def capped(limit: int, per_caller: int) -> tuple[Gateway, AsgiClient]:
    settings = Settings(
        gateway={"max_legacy_sessions": limit, "max_legacy_sessions_per_caller": per_caller}
    )
    gateway = Gateway(settings, [FakeProvider()])
    return gateway, AsgiClient(gateway.asgi)


async def test_an_evicted_session_gets_404_and_may_initialize_again() -> None:
    gateway, client = capped(limit=100, per_caller=2)
    first = await LegacyClient(client).initialize()
    await LegacyClient(client).initialize()
    await LegacyClient(client).initialize()  # the anonymous caller's third: first is evicted
    assert len(gateway.sessions) == 2
    response = await first.post(legacy_request("ping"))
    assert response.status == 404
    assert response.message()["error"]["message"] == "Session not found: initialize a new session"
    stream_headers = {**first.headers, "accept": "text/event-stream"}
    assert (await client.get("/mcp", headers=stream_headers)).status == 404
    await first.initialize()  # what a client does on 404
    assert (await first.request("ping"))["result"] == {}


@pytest.mark.parametrize(
    ("limit", "per_caller", "status", "setting"),
    [
        (100, 2, 429, "gateway.max_legacy_sessions_per_caller"),
        (2, 100, 503, "gateway.max_legacy_sessions"),
    ],
    ids=["per-caller", "global"],
)
async def test_initialize_is_refused_while_every_session_has_an_open_stream(
    limit: int, per_caller: int, status: int, setting: str
) -> None:
    gateway, client = capped(limit, per_caller)
    one, two = await LegacyClient(client).initialize(), await LegacyClient(client).initialize()
    streams = [{**c.headers, "accept": "text/event-stream"} for c in (one, two)]
    async with (
        client.stream("GET", "/mcp", headers=streams[0]) as first,
        client.stream("GET", "/mcp", headers=streams[1]) as second,
    ):
        await first.wait_started()
        await second.wait_started()
        refused = await client.post("/mcp", initialize_request(), JSON_HEADERS)
        assert refused.status == status
        error = refused.message()["error"]
        assert error["code"] == -32000
        assert setting in error["message"]
        assert "all are busy" in error["message"]
        assert (await one.request("ping"))["result"] == {}  # nobody was evicted
        assert (await two.request("ping"))["result"] == {}
    # streams closed: the least recently used idle session makes room
    await poll(lambda: not any(s.listening for s in gateway.sessions))
    assert (await client.post("/mcp", initialize_request(), JSON_HEADERS)).status == 200
    assert len(gateway.sessions) == 2


async def test_a_session_with_a_request_in_flight_is_not_evicted(
    fake_provider: FakeProvider,
) -> None:
    settings = Settings(gateway={"max_legacy_sessions_per_caller": 1})
    client = AsgiClient(Gateway(settings, [fake_provider]).asgi)
    busy = await LegacyClient(client).initialize()
    message = legacy_request("tools/call", {"name": "fake__wait"})
    async with client.stream("POST", "/mcp", headers=busy.headers, body=orjson.dumps(message)):
        await asyncio.wait_for(fake_provider.entered.wait(), 5)
        refused = await client.post("/mcp", initialize_request(), JSON_HEADERS)
        assert refused.status == 429
        assert (await busy.request("ping"))["result"] == {}
        fake_provider.release.set()


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_an_initialize_flood_stays_within_the_caps() -> None:
    """10,000 initializes that never come back: the store holds the cap, and memory stays flat
    (each session used to be kept an hour: ~3 KB each, 30 MB for this flood)."""
    gateway, client = capped(limit=100, per_caller=1000)
    body = orjson.dumps(initialize_request())
    for _ in range(1000):  # warm-up: caches, allocator arenas
        await client.request("POST", "/mcp", headers=JSON_HEADERS, body=body)
    gc.collect()
    before = resident_bytes()
    for _ in range(10_000):
        response = await client.request("POST", "/mcp", headers=JSON_HEADERS, body=body)
        assert response.status == 200
        assert len(gateway.sessions) <= 100
    gc.collect()
    grown = resident_bytes() - before
    assert len(gateway.sessions) == 100
    assert grown < 20 * 1024 * 1024, f"RSS grew {grown / 1024 / 1024:.1f} MiB"
