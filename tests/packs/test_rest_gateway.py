"""A REST pack through the whole gateway: a real local API, the official SDK client in both
eras, SSRF refusals, and a canary secret that must appear in no result and no log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from mcp import Client

from tests.live import live_gateway
from tests.packs.conftest import write_pack
from tests.packs.connectors.apiserver import ApiServer, Reply, Seen, echo, json_reply

pytestmark = pytest.mark.network

CANARY = "canary-41d7-TOKEN"
KEY_CANARY = "canary-88e2-HEADER-KEY"


async def issue(seen: Seen) -> Reply:
    number = int(seen.path.rsplit("/", 1)[1])
    if number == 404:
        return json_reply({"message": "Not Found"}, 404)
    if number == 403:  # an API that echoes the credentials it got
        told = f"{seen.headers.get('authorization')} {seen.headers.get('x-api-key')}"
        return json_reply({"message": f"bad credentials {told}"}, 403)
    return json_reply({"number": number, "title": f"Issue {number}", "user": {"login": "ada"}})


async def issues(seen: Seen) -> Reply:
    if seen.method == "POST":
        return await echo(seen)
    return json_reply([{"number": 1, "title": "One"}, {"number": 2, "title": "Two"}])


def tracker_pack(base_url: str, *, allow_private: bool = True) -> dict[str, Any]:
    return {
        "pack": "tracker",
        "connections": {
            "api": {
                "type": "rest",
                "base_url": base_url,
                "auth": {"type": "bearer", "token": "${env:TRACKER_TOKEN}"},
                "headers": {"X-Api-Key": "${env:TRACKER_KEY}"},
                "allow_private_network": allow_private,
                "retries": {"attempts": 1},
            }
        },
        "tools": [
            {
                "name": "get_issue",
                "description": "One issue",
                "parameters": {"number": {"type": "integer", "required": True, "minimum": 1}},
                "rest": {
                    "connection": "api",
                    "path": "/issues/{number}",
                    "project": "{number: number, title: title, author: user.login}",
                    "errors": {"404": "no such issue"},
                },
                "output_schema": {
                    "type": "object",
                    "properties": {"number": {"type": "integer"}, "title": {"type": "string"}},
                    "required": ["number", "title"],
                },
            },
            {
                "name": "list_issues",
                "description": "All issues",
                "rest": {"connection": "api", "path": "/issues", "project": "[].title"},
            },
            {
                "name": "create_issue",
                "description": "A new issue",
                "parameters": {
                    "title": {"type": "string", "required": True},
                    "labels": {"type": "array", "items": {"type": "string"}},
                    "draft": {"type": "boolean"},
                },
                "rest": {
                    "connection": "api",
                    "method": "POST",
                    "path": "/issues",
                    "body": {"title": "{title}", "labels": "{labels}", "draft": "{draft}"},
                },
            },
        ],
        "resources": [
            {
                "uri_template": "tracker://issues/{number}",
                "name": "issue",
                "parameters": {"number": {"type": "integer"}},
                "rest": {"connection": "api", "path": "/issues/{number}"},
            }
        ],
    }


@pytest_asyncio.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with ApiServer({"/issues/": issue, "/issues": issues}).running() as server:
        yield server


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_a_rest_pack_through_the_gateway(
    api: ApiServer,
    tmp_path: Path,
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TRACKER_TOKEN", CANARY)
    monkeypatch.setenv("TRACKER_KEY", KEY_CANARY)
    caplog.set_level(logging.DEBUG)
    write_pack(tmp_path, "tracker.yaml", tracker_pack(api.url))
    async with (
        live_gateway({"packs": {"path": str(tmp_path), "watch": False}}) as gw,
        Client(gw.url, mode=mode, cache=None, read_timeout_seconds=20) as client,
    ):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"tracker__get_issue", "tracker__list_issues", "tracker__create_issue"}
        assert tools["tracker__get_issue"].output_schema is not None
        assert tools["tracker__list_issues"].output_schema is None

        one = await client.call_tool("tracker__get_issue", {"number": 7})
        assert not one.is_error
        assert one.structured_content == {"number": 7, "title": "Issue 7", "author": "ada"}
        assert api.seen("/issues/7")[-1].headers["authorization"] == f"Bearer {CANARY}"

        listed = await client.call_tool("tracker__list_issues", {})
        assert listed.structured_content == {"result": ["One", "Two"]}

        created = await client.call_tool(
            "tracker__create_issue", {"title": 'Quote " and }{ braces', "labels": ["a", "b"]}
        )
        assert created.structured_content is not None
        # built structurally: typed values, the absent `draft` left out, nothing escaped by hand
        assert created.structured_content["body"] == {
            "title": 'Quote " and }{ braces',
            "labels": ["a", "b"],
        }

        missing = await client.call_tool("tracker__get_issue", {"number": 404})
        assert missing.is_error
        assert missing.content[0].text == "no such issue"  # type: ignore[union-attr]

        leaky = await client.call_tool("tracker__get_issue", {"number": 403})
        assert leaky.is_error
        text = leaky.content[0].text  # type: ignore[union-attr]
        assert "HTTP 403" in text and CANARY not in text and KEY_CANARY not in text

        read = await client.read_resource("catalyst://tracker/tracker://issues/5")
        assert '"title": "Issue 5"' in read.contents[0].text  # type: ignore[union-attr]
    assert CANARY not in caplog.text and KEY_CANARY not in caplog.text
    assert all(CANARY not in str(record.args) for record in caplog.records)


async def test_loopback_is_refused_unless_the_connection_allows_it(
    api: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKER_TOKEN", CANARY)
    monkeypatch.setenv("TRACKER_KEY", KEY_CANARY)
    write_pack(tmp_path, "tracker.yaml", tracker_pack(api.url, allow_private=False))
    async with (
        live_gateway({"packs": {"path": str(tmp_path), "watch": False}}) as gw,
        Client(gw.url, mode="2026-07-28", cache=None, read_timeout_seconds=20) as client,
    ):
        refused = await client.call_tool("tracker__get_issue", {"number": 7})
    assert refused.is_error
    text = refused.content[0].text  # type: ignore[union-attr]
    assert "127.0.0.1" in text and "allow_private_network" in text
    assert api.requests == []


async def test_cloud_metadata_is_refused_even_when_private_networks_are_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKER_TOKEN", CANARY)
    monkeypatch.setenv("TRACKER_KEY", KEY_CANARY)
    write_pack(tmp_path, "tracker.yaml", tracker_pack("http://169.254.169.254/latest"))
    async with (
        live_gateway({"packs": {"path": str(tmp_path), "watch": False}}) as gw,
        Client(gw.url, mode="2026-07-28", cache=None, read_timeout_seconds=20) as client,
    ):
        refused = await client.call_tool("tracker__get_issue", {"number": 1})
    assert refused.is_error
    assert "169.254.169.254" in refused.content[0].text  # type: ignore[union-attr]
