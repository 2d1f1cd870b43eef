"""Tool calls, resource reads and prompts over REST: the MCP pipeline's RBAC, rate limits and
audit, arguments checked against the input schema, and the documented answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from catalyst_mcp.errors import UpstreamRejected, UpstreamTimeout
from tests.api.conftest import (
    ToolsApi,
    ToolsProvider,
    error_of,
    say_name,
    settings,
    start_tools_api,
)


async def test_a_call_answers_text_content_and_structured_content(tools_api: ToolsApi) -> None:
    echo = await tools_api.call("POST", "/tools/fake__echo/call", {"text": "hi", "times": 2})
    assert echo.status == 200, echo.body
    assert echo.json() == {
        "isError": False,
        "text": "hi hi",
        "content": [{"type": "text", "text": "hi hi"}],
    }
    assert echo.headers["cache-control"] == "no-store"
    add = await tools_api.call("POST", "/tools/fake__add/call", {"a": 2, "b": 3}, token="bob")
    assert add.json() == {
        "isError": False,
        "text": "5",
        "structuredContent": {"result": 5},
        "content": [{"type": "text", "text": "5"}],
    }


async def test_several_text_blocks_are_joined_and_others_kept(tools_api: ToolsApi) -> None:
    link = (await tools_api.call("POST", "/tools/fake__link/call", {})).json()
    assert link["text"] == "plain"
    assert [b["type"] for b in link["content"]] == ["resource_link", "resource", "text"]
    assert link["content"][0]["uri"] == "catalyst://fake/mem://a"  # public URIs, as over MCP


async def test_a_tool_error_is_a_200_with_is_error(tools_api: ToolsApi) -> None:
    oops = await tools_api.call("POST", "/tools/fake__oops/call", {})
    assert oops.status == 200
    assert oops.json()["isError"] is True
    assert oops.json()["text"] == "no such city"


async def test_arguments_are_checked_against_the_input_schema(tools_api: ToolsApi) -> None:
    bad = await tools_api.call(
        "POST", "/tools/fake__echo/call", {"times": 9, "loud": True}, token="bob"
    )
    assert bad.status == 400
    error = error_of(bad)
    assert error["code"] == "invalid_arguments"
    problems = {(p["path"], p["keyword"]) for p in error["problems"]}
    assert problems == {("", "required"), ("/times", "maximum"), ("", "additionalProperties")}
    located = {p["location"] for p in error["problems"]}
    assert located == {"body", "body.times"}
    assert "fake__echo" in error["message"]
    nested = await tools_api.call(
        "POST", "/tools/fake__nested/call", {"at": {"x": 1, "y": "no"}, "path": [{"x": 1}]}
    )
    paths = {(p["path"], p["keyword"]) for p in error_of(nested)["problems"]}
    assert paths == {("/at/y", "type"), ("/path/0", "required")}
    assert not [c for c in tools_api.fake.calls if c[0] == "tools/call"]  # none of them ran


async def test_a_body_that_is_not_the_arguments(tools_api: ToolsApi) -> None:
    path = "/tools/fake__echo/call"
    cases: list[tuple[Any, dict[str, str], int, str]] = [
        (b"[1, 2]", {}, 400, "bad_request"),
        (b"{nope", {}, 400, "bad_request"),
        (b'{"text": "x"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (b"x" * (300 * 1024), {}, 413, "body_too_large"),
    ]
    for body, headers, status, code in cases:
        response = await tools_api.call("POST", path, body, headers=headers)
        assert (response.status, error_of(response)["code"]) == (status, code), body[:20]
    # no body at all: no arguments (echo needs one)
    empty = await tools_api.call("POST", path)
    assert (empty.status, error_of(empty)["code"]) == (400, "invalid_arguments")
    assert (await tools_api.call("POST", "/tools/fake__oops/call")).status == 200
    assert (await tools_api.call("POST", "/tools/fake__oops/call", b"")).status == 200


async def test_refusals_and_unknown_tools(tools_api: ToolsApi) -> None:
    for who in ("bob", "carol"):
        denied = await tools_api.call("POST", "/tools/other__secret/call", {}, token=who)
        assert (denied.status, error_of(denied)["code"]) == (403, "forbidden")
    # refused before the arguments are looked at: a forbidden tool's schema stays private
    hidden = await tools_api.call("POST", "/tools/fake__nested/call", {}, token="bob")
    assert hidden.status == 403
    missing = await tools_api.call("POST", "/tools/nope/call", {})
    assert (missing.status, error_of(missing)["message"]) == (404, "Unknown tool: nope")
    scoped = await tools_api.key("root", scopes=["tool:fake__add"])
    assert (await tools_api.call("POST", "/tools/fake__oops/call", {}, token=scoped)).status == 403
    admin_only = await tools_api.key("root", scopes=["admin"])
    assert (
        await tools_api.call("POST", "/tools/fake__oops/call", {}, token=admin_only)
    ).status == 403
    assert (await tools_api.call("POST", "/tools/fake__oops/call", {}, token=None)).status == 401


async def test_failures_of_the_server_are_http_errors(tools_api: ToolsApi) -> None:
    down = await tools_api.call("POST", "/tools/fake__fail/call", {})
    assert (down.status, error_of(down)) == (
        503,
        {"code": "unavailable", "message": "fake is down"},
    )
    # over MCP the same failure is a tool error the model can read
    over_mcp = (await tools_api.mcp("tools/call", {"name": "fake__fail"})).message()
    assert over_mcp["result"]["isError"] is True
    bug = await tools_api.call("POST", "/tools/fake__boom/call", {})
    assert (bug.status, error_of(bug)["code"]) == (500, "internal")
    assert b"secret internals" not in bug.body


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (UpstreamRejected("fake", {"code": -32602, "message": "bad a"}), 400, "bad_request"),
        (UpstreamRejected("fake", {"code": -32603, "message": "it broke"}), 502, "bad_gateway"),
        (UpstreamTimeout("fake", "fake did not answer within 30s"), 504, "gateway_timeout"),
    ],
    ids=["rejected-params", "rejected", "timeout"],
)
async def test_upstream_failures_map_to_statuses(
    tools_api: ToolsApi, error: Exception, status: int, code: str
) -> None:
    async def failing(*args: Any) -> dict[str, Any]:
        raise error

    tools_api.fake.handler = failing  # every call of the plain FakeProvider tools fails
    response = await tools_api.call("POST", "/tools/fake__oops/call", {})
    assert response.status == 200  # (oops is served by ToolsProvider itself)
    response = await tools_api.call("POST", "/tools/fake__progress/call", {})
    assert (response.status, error_of(response)["code"]) == (status, code)


async def test_the_provider_sees_a_rest_caller(tools_api: ToolsApi) -> None:
    await tools_api.call("POST", "/tools/fake__echo/call", {"text": "x"}, token="bob")
    method, params, ctx = tools_api.fake.calls[-1]
    assert (method, params) == ("tools/call", {"name": "echo", "arguments": {"text": "x"}})
    assert (ctx.channel, ctx.identity.subject, ctx.ask) == ("rest", "bob", None)
    # a tool that asks the client: nobody to ask over REST
    asked = (await tools_api.call("POST", "/tools/fake__ask/call", {})).json()
    assert (asked["isError"], asked["text"]) == (True, "nobody to ask")


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    detail = {k: v for k, v in record["detail"].items() if k != "request_id"}
    keep = ("actor", "actor_kind", "action", "target", "outcome")
    return {**{k: record[k] for k in keep}, "detail": detail}


async def test_rest_calls_are_audited_as_mcp_calls_are(tools_api: ToolsApi) -> None:
    calls = [
        ("fake__echo", {"text": "hi"}, "bob"),  # ok
        ("other__secret", {}, "bob"),  # denied
        ("fake__echo", {"times": 0}, "bob"),  # invalid arguments: an error, as upstream's
        ("fake__oops", {}, "root"),  # a tool error
    ]
    for name, arguments, who in calls[:2] + calls[3:]:
        await tools_api.call("POST", f"/tools/{name}/call", arguments, token=who)
        await tools_api.mcp("tools/call", {"name": name, "arguments": arguments}, who)
    records = await tools_api.audit(action="tools/call")
    rest, mcp = records[0::2], records[1::2]
    assert [comparable(r) for r in rest] == [comparable(r) for r in mcp]
    assert [(r["actor"], r["target"], r["outcome"]) for r in rest] == [
        ("bob", "fake__echo", "ok"),
        ("bob", "other__secret", "denied"),
        ("root", "fake__oops", "error"),
    ]
    assert rest[0]["detail"]["arguments"] == mcp[0]["detail"]["arguments"]  # the same digest
    name, arguments, who = calls[2]
    await tools_api.call("POST", f"/tools/{name}/call", arguments, token=who)
    (invalid,) = await tools_api.audit(action="tools/call", outcome="error", actor="bob")
    assert invalid["target"] == "fake__echo"
    assert "input schema" in invalid["detail"]["reason"]
    assert "0" not in invalid["detail"]["reason"].split("(")[0]  # no value in the record


async def test_rate_limits_are_shared_with_mcp(tmp_path: Path) -> None:
    limited = {"per_tool": {"rate_per_second": 0.01, "burst": 3}}
    api = await start_tools_api(settings(tmp_path, rate_limits=limited))
    try:
        assert (await api.call("POST", "/tools/fake__oops/call", {})).status == 200
        assert "result" in (await api.mcp("tools/call", {"name": "fake__oops"})).message()
        assert (await api.call("POST", "/tools/fake__oops/call", {})).status == 200
        refused = await api.call("POST", "/tools/fake__oops/call", {})
        assert (refused.status, error_of(refused)["code"]) == (429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1
        assert "error" in (await api.mcp("tools/call", {"name": "fake__oops"})).message()
        other = await api.call("POST", "/tools/fake__echo/call", {"text": "x"})
        assert other.status == 200  # another tool has a bucket of its own
        records = await api.audit(outcome="limited")  # the REST call's and the MCP call's
        assert [(r["actor"], r["target"]) for r in records] == [("root", "fake__oops")] * 2
    finally:
        await api.gateway.stop()


async def test_read_a_resource(tools_api: ToolsApi) -> None:
    uri = "catalyst://fake/mem://a"
    read = await tools_api.call("GET", f"/resources/read?uri={uri}", token="bob")
    assert read.status == 200
    assert read.json() == {
        "contents": [{"uri": uri, "mimeType": "text/plain", "text": "text of mem://a"}]
    }
    templated = await tools_api.call("GET", "/resources/read?uri=catalyst://fake/mem://t/9")
    assert templated.json()["contents"][0]["text"] == "text of mem://t/9"
    denied = await tools_api.call(
        "GET", "/resources/read?uri=catalyst://fake/mem://t/9", token="bob"
    )
    assert denied.status == 403
    missing = await tools_api.call("GET", "/resources/read?uri=catalyst://fake/mem://zz")
    assert (missing.status, error_of(missing)["code"]) == (404, "not_found")
    unnamed = await tools_api.call("GET", "/resources/read")
    assert (unnamed.status, error_of(unnamed)["problems"][0]["location"]) == (422, "query.uri")
    (record,) = await tools_api.audit(action="resources/read", actor="bob", outcome="ok")
    assert record["target"] == uri


async def test_get_a_prompt(tools_api: ToolsApi) -> None:
    got = await tools_api.call("POST", "/prompts/fake__hello/get", {"who": "ada"}, token="bob")
    assert got.status == 200
    messages = got.json()["messages"]
    assert messages[0] == {"role": "user", "content": {"type": "text", "text": "hello there"}}
    assert messages[1]["content"]["uri"] == "catalyst://fake/mem://a"
    method, params, _ = tools_api.fake.calls[-1]
    assert (method, params["arguments"]) == ("prompts/get", {"who": "ada"})
    assert (await tools_api.call("POST", "/prompts/fake__hello/get")).status == 200
    bad = await tools_api.call("POST", "/prompts/fake__hello/get", {"n": 1, "ok": "x"})
    assert bad.status == 400
    assert error_of(bad)["problems"] == [
        {"location": "body.n", "message": "must be a string", "path": "/n", "keyword": "type"}
    ]
    assert (
        await tools_api.call("POST", "/prompts/fake__hello/get", {}, token="carol")
    ).status == 403
    assert (await tools_api.call("POST", "/prompts/fake__nope/get", {})).status == 404
    (record,) = await tools_api.audit(action="prompts/get", outcome="denied")
    assert record["actor"] == "carol"
    required = [{"name": "hello", "arguments": [{"name": "who", "required": True}]}]
    tools_api.fake.set_items("prompts", required)
    missing = await tools_api.call("POST", "/prompts/fake__hello/get", {}, token="bob")
    assert error_of(missing)["problems"] == [
        {
            "location": "body",
            "message": "'who' is a required argument",
            "path": "",
            "keyword": "required",
        }
    ]
    assert tools_api.fake.calls[-1][1]["arguments"] == {}  # the last call that ran: before
    invalid = (await tools_api.audit(action="prompts/get", outcome="error"))[-1]
    assert (invalid["actor"], invalid["target"]) == ("bob", "fake__hello")
    assert "prompt 'fake__hello'" in invalid["detail"]["reason"]


async def test_names_with_slashes_and_long_names(tools_api: ToolsApi) -> None:
    from tests.fakes import tool

    tools_api.fake.handler = say_name
    tools_api.fake.set_items("tools", [tool("a/b"), *tools_api.fake.lists["tools"]])
    called = await tools_api.call("POST", "/tools/fake__a%2Fb/call", {})
    assert (called.status, called.json()["text"]) == (200, "a/b")
    long = await tools_api.call("POST", f"/tools/{'x' * 2049}/call", {})
    assert (long.status, error_of(long)["problems"][0]["location"]) == (422, "path.name")


async def test_methods_and_paths(tools_api: ToolsApi) -> None:
    wrong = await tools_api.call("GET", "/tools/fake__echo/call", token="bob")
    assert (wrong.status, wrong.headers["allow"]) == (405, "POST")
    assert (await tools_api.call("GET", "/tools/fake__echo/calls", token="bob")).status == 404
    body = orjson.loads((await tools_api.call("GET", "/nothing", token="carol")).body)
    assert body["error"]["code"] == "not_found"


async def test_rest_calls_are_counted_and_traced_as_mcp_calls_are(tools_api: ToolsApi) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    await tools_api.call("POST", "/tools/fake__echo/call", {"text": "x"}, token="bob")
    await tools_api.call("POST", "/tools/fake__oops/call", {})
    await tools_api.call("POST", "/tools/other__secret/call", {}, token="bob")  # refused
    await tools_api.call("POST", "/tools/fake__fail/call", {})  # the server is down: 503
    await tools_api.call("GET", "/tools", token="bob")
    await tools_api.mcp("tools/call", {"name": "fake__echo", "arguments": {"text": "y"}})
    scraped = await tools_api.client.get(
        "/metrics", {"authorization": f"Bearer {tools_api.tokens['root']}"}
    )
    assert scraped.status == 200, scraped.body
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.body.decode())
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    rest = {"era": "legacy", "transport": "rest"}
    requests = "catalyst_requests_total"
    assert value(requests, method="tools/call", outcome="ok", **rest) == 1
    assert value(requests, method="tools/call", outcome="tool_error", **rest) == 1
    assert value(requests, method="tools/call", outcome="refused", **rest) == 1
    assert value(requests, method="tools/call", outcome="error", **rest) == 1
    assert value(requests, method="tools/list", outcome="ok", **rest) == 1
    calls = "catalyst_tool_calls_total"  # the tool's own count: REST and MCP together
    assert value(calls, server="fake", tool="fake__echo", outcome="ok") == 2


async def test_a_rest_call_is_a_server_span_in_the_caller_s_trace(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from catalyst_mcp.app import Gateway
    from catalyst_mcp.observability import tracing
    from tests.fakes import FakeProvider

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    settings_ = settings(tmp_path, auth={"enabled": False}, audit={"enabled": False})
    gateway = Gateway(settings_, [FakeProvider()], tracer_provider=provider)
    await gateway.start()
    try:
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        client = ToolsApi(gateway, ToolsProvider()).client
        response = await client.request(
            "POST", "/api/v1/tools/fake__echo/call", headers=headers, body=b""
        )
        assert response.status == 200
        (span,) = [s for s in memory.get_finished_spans() if s.kind == SpanKind.SERVER]
        assert span.name == "tools/call fake__echo"
        assert format(span.context.trace_id, "032x") == trace_id
        assert span.attributes is not None
        assert span.attributes["catalyst.transport"] == "rest"
        assert span.attributes["network.protocol.name"] == "http"
    finally:
        await gateway.stop()
        tracing.deactivate()
