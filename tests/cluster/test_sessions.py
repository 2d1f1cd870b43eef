"""Legacy sessions in Redis: two gateway instances in this process, on the real Redis, serve
one session's requests, GET stream and DELETE whichever instance each reaches."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalyst_mcp.protocol.legacy import SharedSession
from catalyst_mcp.protocol.versions import LATEST_LEGACY
from catalyst_mcp.security import apikeys
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.users import UserRepo
from tests.asgiclient import AsgiClient, Response
from tests.cluster.conftest import Instances, shared_settings, start_instances, stop_instances
from tests.fakes import JSON_HEADERS, initialize_request, legacy_request
from tests.live import poll

pytestmark = pytest.mark.redis

URI = "catalyst://fake/mem://a"


class Session:
    """A legacy client whose every request names the instance it goes to."""

    def __init__(self, instances: Instances) -> None:
        self.instances = instances
        self.session_id = ""
        self.auth: str | None = None  # an API key to send

    @property
    def headers(self) -> dict[str, str]:
        headers = {
            **JSON_HEADERS,
            "mcp-session-id": self.session_id,
            "mcp-protocol-version": LATEST_LEGACY,
        }
        if self.auth is not None:
            headers["authorization"] = f"Bearer {self.auth}"
        return headers

    def client(self, index: int) -> AsgiClient:
        return self.instances.clients[index]

    async def initialize(self, on: int = 0, **caps: Any) -> Session:
        message = initialize_request(capabilities=caps)
        headers = {k: v for k, v in self.headers.items() if not k.startswith("mcp-")}
        response = await self.client(on).post("/mcp", message, headers)
        assert response.status == 200, response.body
        self.session_id = response.headers["mcp-session-id"]
        return self

    async def post(self, on: int, message: dict[str, Any]) -> Response:
        return await self.client(on).post("/mcp", message, self.headers)

    async def request(
        self, on: int, method: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.post(on, legacy_request(method, params))
        assert response.status == 200, response.body
        return response.message()

    async def delete(self, on: int) -> int:
        return (await self.client(on).request("DELETE", "/mcp", headers=self.headers)).status


async def test_any_instance_serves_any_request_of_a_session(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    listed = await session.request(1, "tools/list")
    assert "fake__echo" in {t["name"] for t in listed["result"]["tools"]}
    called = await session.request(1, "tools/call", {"name": "fake__echo", "arguments": {}})
    assert called["result"]["content"][0]["type"] == "text"
    assert (await session.request(0, "ping"))["result"] == {}
    copy = pair.gateways[1].sessions.peek(session.session_id)
    assert isinstance(copy, SharedSession)
    assert copy.client_info == {"name": "tests", "version": "0"}
    assert copy.protocol_version == LATEST_LEGACY


async def test_delete_on_one_instance_ends_the_session_on_every_one(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    await session.request(1, "ping")  # both hold a copy now
    assert await session.delete(1) == 200
    await poll(lambda: pair.gateways[0].sessions.peek(session.session_id) is None)
    for on in (0, 1):
        response = await session.post(on, legacy_request("ping"))
        assert response.status == 404
    assert await session.delete(0) == 404


async def test_a_session_of_another_caller_is_not_found(prefix: str, tmp_path: Path) -> None:
    settings = shared_settings(prefix, tmp_path, auth={"enabled": True})
    instances = await start_instances(settings)
    try:
        tokens = []
        db = instances.gateways[0].db
        assert db is not None
        for user in ("alice", "bob"):
            await UserRepo(db).create(user, roles=("admin",))
            new = apikeys.generate()
            await KeyRepo(db).create(user, "k", new.prefix, new.key_hash)
            tokens.append(new.token)
        session = Session(instances)
        session.auth = tokens[0]
        await session.initialize(on=0)
        await session.request(1, "ping")
        session.auth = tokens[1]  # bob, with alice's session id
        for on in (0, 1):
            assert (await session.post(on, legacy_request("ping"))).status == 404
        assert await session.delete(1) == 404
    finally:
        await stop_instances(instances)


async def test_the_stream_on_one_instance_gets_what_the_other_hears(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    assert (await session.request(1, "resources/subscribe", {"uri": URI}))["result"] == {}
    # every instance follows the resource upstream, whichever one the subscription reached
    await poll(lambda: all("mem://a" in p.subscribed for p in pair.providers))
    headers = {**session.headers, "accept": "text/event-stream"}
    async with session.client(0).stream("GET", "/mcp", headers=headers) as stream:
        await stream.wait_started()
        assert stream.status == 200
        await pair.providers[1].on_resource_updated(pair.providers[1], "mem://a")
        update = await stream.next_message()
        assert update == {
            "jsonrpc": "2.0",
            "method": "notifications/resources/updated",
            "params": {"uri": URI},
        }
        await pair.providers[0].on_resource_updated(pair.providers[0], "mem://a")
        assert (await stream.next_message())["params"] == {"uri": URI}


async def test_updates_wait_in_redis_for_the_next_stream_anywhere(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    await session.request(0, "resources/subscribe", {"uri": URI})
    for provider in pair.providers:  # both hear it: the second says nothing new
        await provider.on_resource_updated(provider, "mem://a")
    headers = {**session.headers, "accept": "text/event-stream"}
    async with session.client(1).stream("GET", "/mcp", headers=headers) as stream:
        await stream.wait_started()
        assert (await stream.next_message())["params"] == {"uri": URI}
        with pytest.raises(TimeoutError):
            await stream.next_message(timeout=0.3)


async def test_unsubscribing_anywhere_stops_following_everywhere(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    await session.request(0, "resources/subscribe", {"uri": URI})
    await poll(lambda: all("mem://a" in p.subscribed for p in pair.providers))
    await session.request(1, "resources/unsubscribe", {"uri": URI})
    await poll(lambda: all("mem://a" in p.unsubscribed for p in pair.providers))


async def test_a_deleted_session_frees_its_resources(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    await session.request(1, "resources/subscribe", {"uri": URI})
    await poll(lambda: all("mem://a" in p.subscribed for p in pair.providers))
    assert await session.delete(0) == 200
    await poll(lambda: all("mem://a" in p.unsubscribed for p in pair.providers))


async def test_subscribing_an_unknown_resource_is_refused(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    answer = await session.request(1, "resources/subscribe", {"uri": "catalyst://nobody/x"})
    assert answer["error"]["code"] in (-32602, -32002)


async def test_the_answer_reaches_the_instance_that_asked(pair: Instances) -> None:
    session = await Session(pair).initialize(on=1, elicitation={})
    message = legacy_request("tools/call", {"name": "fake__ask"})
    async with session.client(0).stream(
        "POST", "/mcp", headers=session.headers, body=orjson.dumps(message)
    ) as stream:
        question = await stream.next_message()
        assert question["method"] == "elicitation/create"
        assert question["id"].startswith(f"catalyst-{pair.gateways[0].cluster.instance}-")  # type: ignore[union-attr]
        answer = {"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept"}}
        assert (await session.post(1, answer)).status == 202
        final = await stream.next_message()
    assert final["id"] == message["id"]
    assert final["result"]["content"][0]["text"] == "answer: None"


async def test_a_cancellation_reaches_the_instance_running_the_request(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    message = legacy_request("tools/call", {"name": "fake__wait"})
    async with session.client(0).stream(
        "POST", "/mcp", headers=session.headers, body=orjson.dumps(message)
    ) as stream:
        await asyncio.wait_for(pair.providers[0].entered.wait(), 5)
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": message["id"]},
        }
        assert (await session.post(1, cancel)).status == 202
        await asyncio.wait_for(pair.providers[0].cancelled.wait(), 5)
        await asyncio.wait_for(stream.finished.wait(), 5)
    assert b"result" not in stream.body


async def test_the_log_level_set_anywhere_applies_everywhere(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    await session.request(0, "ping")
    assert (await session.request(1, "logging/setLevel", {"level": "error"}))["result"] == {}
    copy = pair.gateways[0].sessions.peek(session.session_id)
    assert copy is not None
    await poll(lambda: copy.log_level == "error")
    pair.gateways[0].sessions.remove(session.session_id)  # a fresh copy reads it from Redis
    logged = await session.post(0, legacy_request("tools/call", {"name": "fake__log"}))
    levels = [m["params"]["level"] for m in logged.messages() if "method" in m]
    assert levels == ["error"]


async def test_a_stopped_instance_leaves_its_sessions_to_the_others(
    prefix: str, tmp_path: Path
) -> None:
    instances = await start_instances(shared_settings(prefix, tmp_path))
    try:
        session = await Session(instances).initialize(on=0)
        await instances.gateways[0].stop()
        assert (await session.request(1, "ping"))["result"] == {}
    finally:
        await stop_instances(instances)


async def test_caps_count_the_sessions_of_every_instance(prefix: str, tmp_path: Path) -> None:
    settings = shared_settings(
        prefix,
        tmp_path,
        gateway={"session_idle_seconds": 4, "max_legacy_sessions_per_caller": 2},
    )
    instances = await start_instances(settings)
    try:
        first = await Session(instances).initialize(on=0)
        second = await Session(instances).initialize(on=1)
        # both were just used (busy for 1.5 touch periods of 1 s, from the last touch): no room
        refused = await instances.clients[0].post("/mcp", initialize_request(), JSON_HEADERS)
        assert refused.status == 429
        assert refused.message()["error"]["data"] == {"cap": "per_caller", "limit": 2}
        await asyncio.sleep(3.8)
        # the least recently used goes (as its instance last told Redis: within a touch period)
        third = await Session(instances).initialize(on=1)

        async def one_gone() -> bool:  # on instance 0 once the news of the end arrives there
            statuses = [(await s.post(0, legacy_request("ping"))).status for s in (first, second)]
            return sorted(statuses) == [200, 404]

        await poll(one_gone, timeout=5)
        assert (await third.post(0, legacy_request("ping"))).status == 200
    finally:
        await stop_instances(instances)


async def test_an_idle_session_expires_in_redis(prefix: str, tmp_path: Path) -> None:
    settings = shared_settings(prefix, tmp_path, gateway={"session_idle_seconds": 1})
    instances = await start_instances(settings)
    try:
        session = await Session(instances).initialize(on=0)
        await asyncio.sleep(1.3)
        assert (await session.post(1, legacy_request("ping"))).status == 404
    finally:
        await stop_instances(instances)


async def test_a_used_session_stays_alive(prefix: str, tmp_path: Path) -> None:
    settings = shared_settings(prefix, tmp_path, gateway={"session_idle_seconds": 1})
    instances = await start_instances(settings)
    try:
        session = await Session(instances).initialize(on=0)
        for _ in range(8):  # two seconds of use, on instance 0 only
            await asyncio.sleep(0.25)
            assert (await session.post(0, legacy_request("ping"))).status == 200
        assert (await session.post(1, legacy_request("ping"))).status == 200
    finally:
        await stop_instances(instances)


async def test_the_sse_transport_takes_posts_on_any_instance(pair: Instances) -> None:
    async with pair.clients[0].stream(
        "GET", "/sse", headers={"accept": "text/event-stream"}
    ) as stream:
        await stream.wait_started()
        endpoint = await stream.next_event()
        assert endpoint is not None and endpoint.event == "endpoint"
        path = endpoint.data
        posted = await pair.clients[1].post(path, initialize_request(), JSON_HEADERS)
        assert posted.status == 202
        assert (await stream.next_message())["result"]["serverInfo"]["name"] == "catalyst"
        call = legacy_request("tools/call", {"name": "fake__echo", "arguments": {"text": "x"}})
        assert (await pair.clients[1].post(path, call, JSON_HEADERS)).status == 202
        answer = await stream.next_message()
        assert answer["id"] == call["id"]
        assert answer["result"]["content"][0]["text"] == "x"
        assert pair.providers[0].calls and not pair.providers[1].calls  # served by its stream's
    session_id = path.rsplit("=", 1)[1]
    await poll(lambda: pair.gateways[1].sessions.peek(session_id) is None)
    gone = await pair.clients[1].post(path, legacy_request("ping"), JSON_HEADERS)
    assert gone.status == 404


async def test_concurrent_first_requests_read_the_session_once(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    shared = pair.gateways[1].cluster.sessions  # type: ignore[union-attr]
    first, second = await asyncio.gather(
        shared.load(session.session_id), shared.load(session.session_id)
    )
    assert first is second is not None
    assert await shared.load("0" * 32) is None


async def test_a_cap_never_takes_a_session_with_a_request_in_flight(
    prefix: str, tmp_path: Path
) -> None:
    settings = shared_settings(
        prefix,
        tmp_path,
        gateway={"session_idle_seconds": 4, "max_legacy_sessions_per_caller": 1},
    )
    instances = await start_instances(settings)
    try:
        session = await Session(instances).initialize(on=0)
        await asyncio.sleep(2.5)  # idle for longer than the busy window
        message = legacy_request("tools/call", {"name": "fake__wait"})
        async with session.client(1).stream(
            "POST", "/mcp", headers=session.headers, body=orjson.dumps(message)
        ) as stream:
            await asyncio.wait_for(instances.providers[1].entered.wait(), 5)
            await asyncio.sleep(0.2)  # instance 1 has told Redis in the background
            refused = await instances.clients[0].post("/mcp", initialize_request(), JSON_HEADERS)
            assert refused.status == 429
            instances.providers[1].release.set()
            await asyncio.wait_for(stream.finished.wait(), 5)
        assert orjson.loads(stream.body)["result"]["content"][0]["text"] == "released"
        assert (await session.post(0, legacy_request("ping"))).status == 200
    finally:
        await stop_instances(instances)
