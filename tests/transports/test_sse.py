"""The deprecated HTTP+SSE transport (GET /sse, POST /messages), in-process."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import GatewaySettings, Settings
from tests.asgiclient import AsgiClient, Stream
from tests.fakes import FakeProvider, initialize_request, legacy_request


async def endpoint_of(stream: Stream) -> str:
    event = await stream.next_event()
    assert event is not None
    assert event.event == "endpoint"
    return event.data


async def post(client: AsgiClient, endpoint: str, message: Any, **headers: str) -> int:
    body = message if isinstance(message, bytes) else orjson.dumps(message)
    response = await client.request("POST", endpoint, headers=headers, body=body)
    return response.status


async def test_full_exchange_over_sse(asgi_client: AsgiClient, inproc_gateway: Gateway) -> None:
    async with asgi_client.stream("GET", "/sse", headers={"accept": "text/event-stream"}) as stream:
        endpoint = await endpoint_of(stream)
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert endpoint.startswith("/messages?session_id=")
        assert len(inproc_gateway.sessions) == 1

        init = initialize_request("2024-11-05")
        assert await post(asgi_client, endpoint, init) == 202
        answer = await stream.next_message()
        assert answer["id"] == init["id"]
        assert answer["result"]["protocolVersion"] == "2024-11-05"
        assert (
            await post(
                asgi_client, endpoint, {"jsonrpc": "2.0", "method": "notifications/initialized"}
            )
            == 202
        )

        call = legacy_request("tools/call", {"name": "fake__echo", "arguments": {"text": "sse"}})
        assert await post(asgi_client, endpoint, call) == 202
        answer = await stream.next_message()
        assert answer["id"] == call["id"]
        assert answer["result"] == {"content": [{"type": "text", "text": "sse"}]}

        unknown = legacy_request("no/such")
        assert await post(asgi_client, endpoint, unknown) == 202
        assert (await stream.next_message())["error"]["code"] == -32601
    await asyncio.sleep(0)
    assert len(inproc_gateway.sessions) == 0  # leaving the stream ends the session


async def test_progress_and_list_changes_go_on_the_stream(
    asgi_client: AsgiClient, fake_provider: FakeProvider
) -> None:
    async with asgi_client.stream("GET", "/sse") as stream:
        endpoint = await endpoint_of(stream)
        await post(asgi_client, endpoint, initialize_request())
        await stream.next_message()
        call = legacy_request(
            "tools/call", {"name": "fake__progress", "_meta": {"progressToken": "p"}}
        )
        await post(asgi_client, endpoint, call)
        first, second, final = [await stream.next_message() for _ in range(3)]
        assert first["method"] == second["method"] == "notifications/progress"
        assert first["params"]["progressToken"] == "p"
        assert final["id"] == call["id"]
        fake_provider.set_items("prompts", [])
        assert (await stream.next_message())["method"] == "notifications/prompts/list_changed"


async def test_elicitation_round_trip_over_sse(asgi_client: AsgiClient) -> None:
    async with asgi_client.stream("GET", "/sse") as stream:
        endpoint = await endpoint_of(stream)
        await post(asgi_client, endpoint, initialize_request(capabilities={"elicitation": {}}))
        await stream.next_message()
        call = legacy_request("tools/call", {"name": "fake__ask"})
        await post(asgi_client, endpoint, call)
        question = await stream.next_message()
        assert question["method"] == "elicitation/create"
        reply = {
            "jsonrpc": "2.0",
            "id": question["id"],
            "result": {"action": "accept", "content": {}},
        }
        assert await post(asgi_client, endpoint, reply) == 202
        final = await stream.next_message()
        assert final["result"]["content"][0]["text"] == "answer: {}"


async def test_messages_needs_a_known_session(asgi_client: AsgiClient) -> None:
    message = legacy_request("ping")
    assert await post(asgi_client, "/messages", message) == 400
    assert await post(asgi_client, "/messages?session_id=nope", message) == 404
    assert await post(asgi_client, "/messages/?sessionId=nope", message) == 404


async def test_bad_posts_are_rejected_and_the_stream_survives(asgi_client: AsgiClient) -> None:
    async with asgi_client.stream("GET", "/sse") as stream:
        endpoint = await endpoint_of(stream)
        assert await post(asgi_client, endpoint, b"{") == 400
        assert await post(asgi_client, endpoint, b"[]") == 400
        assert await post(asgi_client, endpoint, {"jsonrpc": "1.0", "id": 1, "method": "x"}) == 400
        response = await asgi_client.request("GET", endpoint)
        assert response.status == 405
        ping = legacy_request("ping")
        assert await post(asgi_client, endpoint, ping) == 202
        assert (await stream.next_message()) == {"jsonrpc": "2.0", "id": ping["id"], "result": {}}


async def test_oversized_post_is_413() -> None:
    gateway = Gateway(Settings(gateway=GatewaySettings(max_request_bytes=64)), [FakeProvider()])
    client = AsgiClient(gateway.asgi)
    async with client.stream("GET", "/sse") as stream:
        endpoint = await endpoint_of(stream)
        big = legacy_request("ping", {"pad": "x" * 100})
        assert await post(client, endpoint, big) == 413


async def test_sse_only_accepts_get(asgi_client: AsgiClient) -> None:
    response = await asgi_client.request("POST", "/sse", body=b"{}")
    assert response.status == 405
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize("path", ["/sse", "/messages"])
async def test_sse_can_be_turned_off(path: str) -> None:
    gateway = Gateway(Settings(gateway=GatewaySettings(legacy_sse=False)), [FakeProvider()])
    response = await AsgiClient(gateway.asgi).request("GET", path)
    assert response.status == 404


async def test_a_full_session_store_refuses_a_new_event_stream() -> None:
    """An /sse session lives as long as its stream: it is never evicted, so a caller whose
    streams fill its cap is refused another one, with a status and a reason."""
    settings = Settings(gateway=GatewaySettings(max_legacy_sessions_per_caller=1))
    gateway = Gateway(settings, [FakeProvider()])
    client = AsgiClient(gateway.asgi)
    headers = {"accept": "text/event-stream"}
    async with client.stream("GET", "/sse", headers=headers) as stream:
        await endpoint_of(stream)
        refused = await client.get("/sse", headers=headers)
        assert refused.status == 429
        assert "max_legacy_sessions_per_caller" in refused.message()["error"]["message"]
        assert len(gateway.sessions) == 1
    await asyncio.sleep(0)
    async with client.stream("GET", "/sse", headers=headers) as stream:
        await endpoint_of(stream)  # the first stream ended: room again
