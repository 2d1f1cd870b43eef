"""The REST API's lists: what each caller sees is what the MCP endpoint lists for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import ROLES, ToolsApi, error_of, settings, start_tools_api
from tests.conftest import ROOT
from tests.fakes import tool


async def mcp_names(api: ToolsApi, method: str, kind: str, field: str, token: str) -> list[str]:
    response = await api.mcp(method, {}, token)
    return [item[field] for item in response.message()["result"][kind]]


async def names(api: ToolsApi, path: str, kind: str, field: str, token: str) -> list[str]:
    response = await api.call("GET", path, token=token)
    assert response.status == 200, response.body
    return [item[field] for item in response.json()[kind]]


@pytest.mark.parametrize(
    ("path", "method", "kind", "field"),
    [
        ("/tools", "tools/list", "tools", "name"),
        ("/resources", "resources/list", "resources", "uri"),
        ("/resources/templates", "resources/templates/list", "resourceTemplates", "uriTemplate"),
        ("/prompts", "prompts/list", "prompts", "name"),
    ],
    ids=["tools", "resources", "templates", "prompts"],
)
async def test_lists_are_the_mcp_lists_of_the_same_caller(
    tools_api: ToolsApi, path: str, method: str, kind: str, field: str
) -> None:
    for who in ("root", "bob", "carol"):
        rest = await names(tools_api, path, kind, field, who)
        assert rest == await mcp_names(tools_api, method, kind, field, who), who
    assert "other__secret" in await names(tools_api, "/tools", "tools", "name", "root")


async def test_a_role_sees_only_what_it_allows(tools_api: ToolsApi) -> None:
    assert await names(tools_api, "/tools", "tools", "name", "bob") == ["fake__echo", "fake__add"]
    assert await names(tools_api, "/resources", "resources", "uri", "bob") == [
        "catalyst://fake/mem://a"
    ]
    assert await names(tools_api, "/prompts", "prompts", "name", "bob") == ["fake__hello"]
    assert await names(tools_api, "/tools", "tools", "name", "carol") == []


async def test_a_key_s_scopes_narrow_the_lists(tools_api: ToolsApi) -> None:
    scoped = await tools_api.key("root", scopes=["tool:fake__add"])
    assert await names(tools_api, "/tools", "tools", "name", scoped) == ["fake__add"]
    assert await names(tools_api, "/prompts", "prompts", "name", scoped) == []


async def test_tools_carry_their_schemas(tools_api: ToolsApi) -> None:
    tools = (await tools_api.call("GET", "/tools", token="bob")).json()["tools"]
    add = next(t for t in tools if t["name"] == "fake__add")
    assert add["outputSchema"]["required"] == ["result"]
    assert add["title"] == "Add two integers"
    assert "nextCursor" not in (await tools_api.call("GET", "/tools")).json()


async def test_one_tool(tools_api: ToolsApi) -> None:
    echo = await tools_api.call("GET", "/tools/fake__echo", token="bob")
    assert echo.status == 200
    assert echo.json()["inputSchema"]["required"] == ["text"]
    for name in ("other__secret", "nope"):  # hidden, or not there: the same answer
        missing = await tools_api.call("GET", f"/tools/{name}", token="bob")
        assert (missing.status, error_of(missing)["code"]) == (404, "not_found")
        assert error_of(missing)["message"] == f"Unknown tool: {name}"
    assert (await tools_api.call("GET", "/tools/other__secret")).status == 200


async def test_servers_show_what_each_caller_may_use(tools_api: ToolsApi) -> None:
    root = (await tools_api.call("GET", "/servers")).json()["servers"]
    assert [(s["name"], s["namespace"], s["status"], s["tools"]) for s in root] == [
        ("fake", "fake", "ready", 11),
        ("other", "other", "ready", 1),
    ]
    (fake,) = (await tools_api.call("GET", "/servers", token="bob")).json()["servers"]
    assert fake == {
        "name": "fake",
        "namespace": "fake",
        "status": "ready",
        "tools": 2,
        "resources": 1,
        "resourceTemplates": 0,
        "prompts": 1,
    }
    assert (await tools_api.call("GET", "/servers", token="carol")).json() == {"servers": []}


async def test_a_server_allowed_by_rbac_is_listed_even_when_empty(tmp_path: Path) -> None:
    roles = {"ops": {"rules": [{"effect": "allow", "kinds": ["server"], "match": ["other"]}]}}
    api = await start_tools_api(settings(tmp_path, rbac={"roles": {**ROLES, **roles}}))
    try:
        await api.user("olga", "ops")
        servers = (await api.call("GET", "/servers", token="olga")).json()["servers"]
        assert [(s["name"], s["tools"]) for s in servers] == [("other", 0)]
        api.gateway.registry.provider("other").status = "failed"  # type: ignore[union-attr]
        servers = (await api.call("GET", "/servers", token="olga")).json()["servers"]
        assert servers[0]["status"] == "failed"
    finally:
        await api.gateway.stop()


async def test_lists_page_like_mcp(tools_api: ToolsApi) -> None:
    tools_api.fake.set_items("tools", [tool(f"t{i:04}") for i in range(1500)])
    first = (await tools_api.call("GET", "/tools")).json()
    assert len(first["tools"]) == 1000
    cursor = first["nextCursor"]
    second = (await tools_api.call("GET", f"/tools?cursor={cursor}")).json()
    assert second["tools"][0]["name"] == "fake__t1000"
    assert len(second["tools"]) == 501  # and other__secret
    assert "nextCursor" not in second
    # the tool pages of /servers and /tools/{name} go past the first page too
    servers = (await tools_api.call("GET", "/servers")).json()["servers"]
    assert servers[0]["tools"] == 1500
    assert (await tools_api.call("GET", "/tools/fake__t1499")).status == 200
    bad = await tools_api.call("GET", "/tools?cursor=nonsense")
    assert (bad.status, error_of(bad)["code"]) == (400, "bad_request")
    assert "cursor" in error_of(bad)["message"]
    unknown = await tools_api.call("GET", "/tools?page=2")
    assert (unknown.status, error_of(unknown)["problems"][0]["location"]) == (422, "query.page")


@pytest.mark.parametrize(
    "path", ["/servers", "/tools", "/tools/fake__echo", "/resources", "/prompts"]
)
async def test_lists_need_credentials(tools_api: ToolsApi, path: str) -> None:
    response = await tools_api.call("GET", path, token=None)
    assert response.status == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert error_of(response)["code"] == "unauthenticated"
    bad = await tools_api.call("GET", path, token="cat_nonsense")
    assert bad.status == 401
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]


async def test_lists_follow_changes_at_once(tools_api: ToolsApi) -> None:
    tools_api.fake.set_items("tools", [tool("echo"), tool("fresh")])
    listed: Any = await names(tools_api, "/tools", "tools", "name", "root")
    assert listed == ["fake__echo", "fake__fresh", "other__secret"]


async def test_the_docs_list_every_tools_route(tools_api: ToolsApi) -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    table = [r for r in tools_api.gateway.api.router.routes if r.tag == "tools"]
    assert len(table) == 10
    assert all(not r.admin for r in table)
    missing = [f"{r.method} {r.path}" for r in table if f"`{r.method} {r.path}" not in text]
    assert not missing, f"docs/api.md does not list {missing}"
    document = (await tools_api.call("GET", "/openapi.json", token="carol")).json()
    tagged = {
        (path, method)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if op["tags"] == ["tools"]
    }
    assert tagged == {("/api/v1" + r.path, r.method.lower()) for r in table}
