"""The gateway on a real socket, driven by the official SDK client in both eras, over real
SDK upstreams in both eras (Streamable HTTP and stdio). One gateway serves the whole module:

* ``up``: HTTP, auto → modern       * ``old``: HTTP, forced legacy
* ``io``: stdio, auto → modern      * ``oldio``: stdio, forced legacy
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as t
import pytest
import pytest_asyncio
from mcp import Client, MCPError
from mcp.client.sse import sse_client
from mcp.client.subscriptions import ToolsListChanged

from tests.conftest import EXTRA_UPSTREAM, stdio_upstream
from tests.live import LiveGateway, live_gateway, poll

pytestmark = [
    pytest.mark.network,
    pytest.mark.subprocess,
    pytest.mark.asyncio(loop_scope="module"),
]

MODERN = "2026-07-28"
MODES = [MODERN, "legacy"]
UPSTREAMS = ["up", "old", "io", "oldio"]
UPSTREAM_ERA = {"up": "modern", "old": "legacy", "io": "modern", "oldio": "legacy"}
UPSTREAM_TOOLS = [
    "echo",
    "add",
    "slow",
    "sleep",
    "crash",
    "greet_user",
    "sample_it",
    "roots",
    "logs",
    "touch",
    "sleep_marked",
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(extra_upstream_http: str) -> AsyncIterator[LiveGateway]:
    config = {
        "servers": {
            "up": {"url": extra_upstream_http},
            "old": {"url": extra_upstream_http, "era": "legacy"},
            "io": stdio_upstream(EXTRA_UPSTREAM),
            "oldio": {**stdio_upstream(EXTRA_UPSTREAM, era="legacy"), "serialize_calls": True},
        }
    }
    async with live_gateway(config) as live:
        yield live


class Recorder:
    """Client callbacks that answer like a user and a model would, and remember what they saw."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, Any]] = []
        self.progress: list[tuple[float, float | None, str | None]] = []
        self.asked: list[str] = []

    async def sampling(
        self, ctx: Any, params: t.CreateMessageRequestParams
    ) -> t.CreateMessageResult:
        self.asked.append("sampling")
        return t.CreateMessageResult(
            role="assistant", content=t.TextContent(type="text", text="hi!"), model="fake"
        )

    async def elicitation(self, ctx: Any, params: Any) -> t.ElicitResult:
        self.asked.append("elicitation")
        return t.ElicitResult(action="accept", content={"name": "Ada"})

    async def roots(self, ctx: Any) -> t.ListRootsResult:
        self.asked.append("roots")
        return t.ListRootsResult(roots=[t.Root(uri="file:///tmp/a", name="a")])

    async def log(self, params: t.LoggingMessageNotificationParams) -> None:
        self.logs.append((params.level, params.data))

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append((progress, total, message))

    def client(self, target: Any, mode: str, **kw: Any) -> Client:
        options: dict[str, Any] = {
            "mode": mode,
            "cache": None,
            "read_timeout_seconds": 20,
            "sampling_callback": self.sampling,
            "elicitation_callback": self.elicitation,
            "list_roots_callback": self.roots,
            "logging_callback": self.log,
        }
        options.update(kw)
        return Client(target, **options)


def text_of(result: Any) -> str:
    assert result.content, result
    text: str = result.content[0].text
    return text


# ---- connecting and listing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "version"), [(MODERN, MODERN), ("auto", MODERN), ("legacy", "2025-11-25")]
)
async def test_connects_in_each_era(gw: LiveGateway, mode: str, version: str) -> None:
    async with Recorder().client(gw.url, mode) as client:
        assert client.protocol_version == version
        if mode != MODERN:  # pinned modern mode sends nothing on connect
            assert client.server_info is not None
            assert client.server_info.name == "catalyst"
            assert client.server_capabilities is not None
            assert client.server_capabilities.tools is not None


async def test_all_upstreams_are_ready(gw: LiveGateway) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{gw.base}/ready?strict")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ready"
    eras = {s["name"]: (s["status"], s["era"], s["transport"]) for s in report["servers"]}
    assert eras == {
        "io": ("ready", "modern", "stdio"),
        "old": ("ready", "legacy", "streamable-http"),
        "oldio": ("ready", "legacy", "stdio"),
        "up": ("ready", "modern", "streamable-http"),
    }


@pytest.mark.parametrize("mode", MODES)
async def test_listing_is_namespaced_in_deterministic_order(gw: LiveGateway, mode: str) -> None:
    expected = [f"{ns}__{name}" for ns in sorted(UPSTREAMS) for name in UPSTREAM_TOOLS]
    async with Recorder().client(gw.url, mode) as client:
        first = [tool.name for tool in (await client.list_tools()).tools]
        second = [tool.name for tool in (await client.list_tools()).tools]
        resources = await client.list_resources()
        templates = await client.list_resource_templates()
        prompts = await client.list_prompts()
    assert first == second == expected
    assert [str(r.uri) for r in resources.resources] == [
        f"catalyst://{ns}/res://hello" for ns in sorted(UPSTREAMS)
    ]
    assert [r.uri_template for r in templates.resource_templates] == [
        f"catalyst://{ns}/res://greet/{{name}}" for ns in sorted(UPSTREAMS)
    ]
    assert [p.name for p in prompts.prompts] == [f"{ns}__greet" for ns in sorted(UPSTREAMS)]


# ---- calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ns", UPSTREAMS)
async def test_tools_call(gw: LiveGateway, mode: str, ns: str) -> None:
    async with Recorder().client(gw.url, mode) as client:
        await client.list_tools()
        echoed = await client.call_tool(f"{ns}__echo", {"text": f"hi {ns}"})
        added = await client.call_tool(f"{ns}__add", {"a": 2, "b": 40})
    assert text_of(echoed) == f"hi {ns}"
    assert not echoed.is_error
    assert added.structured_content == {"result": 42}
    assert text_of(added) == "42"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ns", UPSTREAMS)
async def test_progress_is_relayed_with_the_clients_token(
    gw: LiveGateway, mode: str, ns: str
) -> None:
    recorder = Recorder()
    async with recorder.client(gw.url, mode) as client:
        result = await client.call_tool(
            f"{ns}__slow", {"steps": 3}, progress_callback=recorder.on_progress
        )
    assert text_of(result) == "done 3"
    assert recorder.progress == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


@pytest.mark.parametrize("ns", UPSTREAMS)
@pytest.mark.parametrize(
    ("mode", "log_level", "expected"),
    [
        (MODERN, "debug", [("info", "hello from upstream")]),
        (MODERN, "error", []),
        (MODERN, None, []),
        ("legacy", None, [("info", "hello from upstream")]),
    ],
    ids=["modern-debug", "modern-error", "modern-none", "legacy"],
)
async def test_log_messages_are_relayed(
    gw: LiveGateway, ns: str, mode: str, log_level: str | None, expected: list[Any]
) -> None:
    recorder = Recorder()
    async with recorder.client(gw.url, mode, log_level=log_level) as client:
        result = await client.call_tool(f"{ns}__logs", {})
    assert text_of(result) == "logged"
    assert recorder.logs == expected


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ns", UPSTREAMS)
async def test_client_input_is_bridged_across_eras(gw: LiveGateway, mode: str, ns: str) -> None:
    """Elicitation, sampling and roots in all four combinations of client and upstream era."""
    recorder = Recorder()
    async with recorder.client(gw.url, mode) as client:
        greeted = await client.call_tool(f"{ns}__greet_user", {})
        sampled = await client.call_tool(f"{ns}__sample_it", {})
        rooted = await client.call_tool(f"{ns}__roots", {})
    assert (text_of(greeted), greeted.is_error) == ("Hello, Ada!", False)
    assert (text_of(sampled), sampled.is_error) == ("sampled: hi!", False)
    assert (text_of(rooted), rooted.is_error) == ("file:///tmp/a", False)
    assert recorder.asked == ["elicitation", "sampling", "roots"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ns", UPSTREAMS)
async def test_input_the_client_cannot_give_is_an_error_not_a_hang(
    gw: LiveGateway, mode: str, ns: str
) -> None:
    recorder = Recorder()
    async with recorder.client(gw.url, mode, elicitation_callback=None) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool(f"{ns}__greet_user", {})
    assert "elicitation" in caught.value.message
    assert recorder.asked == []
    if UPSTREAM_ERA[ns] == "modern":  # the upstream's own -32021 is relayed as it is
        assert caught.value.code == -32021
        assert "elicitation" in caught.value.data["requiredCapabilities"]


@pytest.mark.parametrize("ns", ["old", "oldio"])
async def test_missing_capability_is_32021_for_modern_clients(gw: LiveGateway, ns: str) -> None:
    async with Recorder().client(gw.url, MODERN, elicitation_callback=None) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool(f"{ns}__greet_user", {})
    assert caught.value.code == -32021
    assert "elicitation" in caught.value.data["requiredCapabilities"]


async def greet_concurrently(gw: LiveGateway, ns: str, clients: int = 3) -> list[Any]:
    """``clients`` users (both eras) call the eliciting tool of ``ns`` at the same time."""

    async def one(i: int) -> Any:
        async with Recorder().client(gw.url, MODES[i % 2]) as client:
            try:
                return await client.call_tool(f"{ns}__greet_user", {})
            except MCPError as exc:
                return exc

    return await asyncio.gather(*(one(i) for i in range(clients)))


@pytest.mark.parametrize("ns", ["up", "old", "io"])
async def test_concurrent_interactive_calls(gw: LiveGateway, ns: str) -> None:
    outcomes = await greet_concurrently(gw, ns)
    assert [getattr(o, "is_error", o) for o in outcomes] == [False, False, False]
    assert [text_of(o) for o in outcomes] == ["Hello, Ada!"] * 3


async def test_concurrent_interactive_calls_to_a_legacy_stdio_upstream(gw: LiveGateway) -> None:
    outcomes = await greet_concurrently(gw, "oldio")
    assert [getattr(o, "is_error", o) for o in outcomes] == [False, False, False]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ns", UPSTREAMS)
async def test_resources_and_templates_are_read(gw: LiveGateway, mode: str, ns: str) -> None:
    async with Recorder().client(gw.url, mode) as client:
        plain = await client.read_resource(f"catalyst://{ns}/res://hello")
        templated = await client.read_resource(f"catalyst://{ns}/res://greet/bob")
    assert [(str(c.uri), c.text) for c in plain.contents] == [  # type: ignore[union-attr]
        (f"catalyst://{ns}/res://hello", "hello resource")
    ]
    assert [(str(c.uri), c.text) for c in templated.contents] == [  # type: ignore[union-attr]
        (f"catalyst://{ns}/res://greet/bob", "greetings bob")
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ns", ["up", "oldio"])
async def test_prompts_and_completion(gw: LiveGateway, mode: str, ns: str) -> None:
    async with Recorder().client(gw.url, mode) as client:
        prompt = await client.get_prompt(f"{ns}__greet", {"name": "Zed"})
        names = await client.complete(
            t.PromptReference(type="ref/prompt", name=f"{ns}__greet"),
            {"name": "name", "value": "al"},
        )
        template = await client.complete(
            t.ResourceTemplateReference(
                type="ref/resource", uri=f"catalyst://{ns}/res://greet/{{name}}"
            ),
            {"name": "name", "value": ""},
        )
    assert prompt.messages[0].content.text == "Please greet Zed"  # type: ignore[union-attr]
    assert names.completion.values == ["alice", "albert"]
    assert template.completion.values == ["x", "y"]


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_names_are_protocol_errors(gw: LiveGateway, mode: str) -> None:
    async with Recorder().client(gw.url, mode) as client:
        with pytest.raises(MCPError) as tool_error:
            await client.call_tool("nope__echo", {})
        with pytest.raises(MCPError) as resource_error:
            await client.read_resource("catalyst://nope/res://hello")
        with pytest.raises(MCPError) as prompt_error:
            await client.get_prompt("nope__greet", {})
        upstream_says = await client.call_tool("up__nope", {})
    assert tool_error.value.code == -32602
    assert "nope__echo" in tool_error.value.message
    assert resource_error.value.code == (-32602 if mode == MODERN else -32002)
    assert prompt_error.value.code == -32602
    assert upstream_says.is_error  # the upstream's own answer to an unknown tool


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_resource_of_a_known_upstream(gw: LiveGateway, mode: str) -> None:
    async with Recorder().client(gw.url, mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource("catalyst://up/res://missing")
    assert caught.value.code == -32602
    assert "res://missing" in caught.value.message


async def test_many_clients_at_once(gw: LiveGateway) -> None:
    async def one(i: int) -> str:
        mode = MODES[i % 2]
        ns = UPSTREAMS[i % 4]
        async with Recorder().client(gw.url, mode) as client:
            results = await asyncio.gather(
                *(client.call_tool(f"{ns}__echo", {"text": f"{i}-{j}"}) for j in range(5))
            )
        return ",".join(text_of(r) for r in results)

    answers = await asyncio.gather(*(one(i) for i in range(8)))
    assert answers == [",".join(f"{i}-{j}" for j in range(5)) for i in range(8)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ns", UPSTREAMS)
async def test_client_cancellation_reaches_the_upstream(
    gw: LiveGateway, tmp_path: Path, mode: str, ns: str
) -> None:
    """Legacy clients send notifications/cancelled, modern ones close the stream; either way
    the upstream's handler is cancelled (by notifications/cancelled or by the gateway leaving)."""
    marker = tmp_path / "marker"
    async with Recorder().client(gw.url, mode) as client:
        call = asyncio.create_task(
            client.call_tool(f"{ns}__sleep_marked", {"seconds": 60, "marker": str(marker)})
        )
        await poll(Path(f"{marker}.started").exists, what="the upstream started the call")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await poll(
            lambda: marker.exists() and marker.read_text() == "cancelled",
            what="the upstream saw the cancellation",
        )
        echoed = await client.call_tool(f"{ns}__echo", {"text": "after"})
    assert text_of(echoed) == "after"


class ToolChanges:
    """Counts tools/list_changed notifications a legacy client gets on its GET stream."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, message: Any) -> None:
        if isinstance(message, t.ToolListChangedNotification):
            self.count += 1


@pytest.mark.parametrize("ns", UPSTREAMS)
async def test_upstream_list_changes_reach_modern_listeners(gw: LiveGateway, ns: str) -> None:
    async with (
        Recorder().client(gw.url, MODERN) as client,
        client.listen(tools_list_changed=True) as subscription,
    ):
        events: list[Any] = []

        async def collect() -> None:
            async for event in subscription:
                events.append(event)

        collector = asyncio.create_task(collect())
        touched = await client.call_tool(f"{ns}__touch", {})
        assert text_of(touched) == "touched"
        await poll(lambda: events, what=f"list_changed from {ns}")
        collector.cancel()
    assert all(isinstance(e, ToolsListChanged) for e in events)


@pytest.mark.parametrize("ns", UPSTREAMS)
async def test_upstream_list_changes_reach_legacy_sessions(gw: LiveGateway, ns: str) -> None:
    changes = ToolChanges()
    async with Recorder().client(gw.url, "legacy", message_handler=changes) as client:
        touched = await client.call_tool(f"{ns}__touch", {})
        assert text_of(touched) == "touched"
        await poll(lambda: changes.count >= 1, what=f"list_changed from {ns}")


# ---- the deprecated HTTP+SSE transport -----------------------------------------------------


@pytest.mark.parametrize("ns", ["up", "oldio"])
async def test_sse_client(gw: LiveGateway, ns: str) -> None:
    recorder = Recorder()
    async with recorder.client(sse_client(gw.sse_url), "legacy") as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info is not None and client.server_info.name == "catalyst"
        tools = [tool.name for tool in (await client.list_tools()).tools]
        echoed = await client.call_tool(f"{ns}__echo", {"text": "over sse"})
        greeted = await client.call_tool(f"{ns}__greet_user", {})
        slow = await client.call_tool(
            f"{ns}__slow", {"steps": 2}, progress_callback=recorder.on_progress
        )
        read = await client.read_resource(f"catalyst://{ns}/res://hello")
    assert f"{ns}__echo" in tools
    assert text_of(echoed) == "over sse"
    assert text_of(greeted) == "Hello, Ada!"
    assert text_of(slow) == "done 2"
    assert [p[0] for p in recorder.progress] == [1, 2]
    assert read.contents[0].text == "hello resource"  # type: ignore[union-attr]
