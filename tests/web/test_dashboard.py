"""The dashboard's page handlers, in process: who sees what, the security headers, CSRF,
escaping, and what each page shows and does through the REST API."""

from __future__ import annotations

import re
from typing import Any

import pytest

from catalyst_mcp.web.dashboard import CSP
from catalyst_mcp.web.session import COOKIE
from tests.conftest import ROOT
from tests.fakes import tool
from tests.web.conftest import Dashboard, text_of

PAGES = [
    "/ui/",
    "/ui/servers",
    "/ui/servers/fake",
    "/ui/tools",
    "/ui/tools/fake__echo",
    "/ui/packs",
    "/ui/audit",
    "/ui/users",
    "/ui/keys",
    "/ui/roles",
    "/ui/secrets",
    "/ui/packages",
    "/ui/approvals",
    "/ui/tool-changes",
    "/ui/workflows",
    "/ui/rules",
]
ADMIN_PAGES = [
    "/ui/packs",
    "/ui/audit",
    "/ui/users",
    "/ui/keys",
    "/ui/roles",
    "/ui/secrets",
    "/ui/approvals",
    "/ui/tool-changes",
    "/ui/rules",
]


async def audit_records(dashboard: Dashboard, **filters: str) -> list[dict[str, Any]]:
    return await dashboard.api.audit(**filters)


# ---- signing in -------------------------------------------------------------------------------


async def test_nothing_is_shown_without_signing_in(dashboard: Dashboard) -> None:
    browser = dashboard.browser()
    for page in PAGES:
        response = await browser.get(page)
        assert response.status == 303, page
        assert response.headers["location"].startswith("/ui/login?next="), page
        assert response.body == b""
    htmx = await browser.get("/ui/tools", {"hx-request": "true"})
    assert htmx.status == 200
    assert htmx.headers["hx-redirect"] == "/ui/login?next=%2Ftools"


async def test_sign_in_with_an_api_key_sets_a_strict_http_only_cookie(
    dashboard: Dashboard,
) -> None:
    browser = dashboard.browser()
    first = await browser.get("/ui/login")
    assert first.status == 200
    nonce = first.headers["set-cookie"]
    assert nonce.startswith(f"{COOKIE}=n.")
    response = await browser.post(
        "/ui/login", {"credential": dashboard.api.tokens["bob"], "next": "/tools"}
    )
    assert response.status == 200
    assert response.headers["hx-redirect"] == "/ui/tools"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=b.cat_")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/ui"):
        assert attribute in cookie.split("; ")
    page = await browser.get("/ui/tools")
    assert page.status == 200
    assert "bob" in text_of(page)


async def test_a_wrong_key_is_refused_and_audited(dashboard: Dashboard) -> None:
    browser = dashboard.browser()
    await browser.get("/ui/login")
    response = await browser.post("/ui/login", {"credential": "cat_aaaaaaaa_nope"})
    assert response.status == 401
    assert "sign-in refused" in text_of(response)
    assert response.headers["hx-retarget"] == "#flash"
    assert browser.cookie is not None and browser.cookie.startswith("n.")
    records = await audit_records(dashboard, action="ui.login")
    assert [r["outcome"] for r in records] == ["unauthenticated"]


async def test_a_revoked_key_ends_the_session_at_once(dashboard: Dashboard) -> None:
    bob = await dashboard.signed_in("bob")
    assert (await bob.get("/ui/tools")).status == 200
    prefix = dashboard.api.tokens["bob"].split("_")[1][:8]
    root = await dashboard.signed_in("root")
    revoked = await root.post(f"/ui/keys/{prefix}/revoke")
    assert revoked.status == 200, revoked.body
    after = await bob.get("/ui/tools")
    assert after.status == 303
    assert "ended=" in after.headers["location"]
    assert bob.cookie is None  # the cookie holding the revoked key is deleted


async def test_sign_out_forgets_the_credential(dashboard: Dashboard) -> None:
    bob = await dashboard.signed_in("bob")
    out = await bob.post("/ui/logout")
    assert out.headers["hx-redirect"] == "/ui/login"
    assert bob.cookie is None
    assert (await bob.get("/ui/tools")).status == 303


async def test_a_visit_from_another_site_looks_again_before_deciding(
    dashboard: Dashboard,
) -> None:
    """SameSite=Strict keeps the cookie back on a cross-site navigation: the first answer
    reloads the page from this site instead of replacing the session with a new one."""
    browser = dashboard.browser()
    response = await browser.get(
        "/ui/tools", {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
    )
    assert response.status == 200
    assert b'http-equiv="refresh"' in response.body
    assert "set-cookie" not in response.headers


# ---- headers, CSRF, escaping -----------------------------------------------------------------


@pytest.mark.parametrize("page", [*PAGES, "/ui/login", "/ui/static/ui.css", "/ui/nowhere"])
async def test_every_answer_has_a_strict_content_security_policy(
    dashboard: Dashboard, page: str
) -> None:
    root = await dashboard.signed_in("root")
    response = await root.get(page)
    assert response.status in (200, 303, 404), (page, response.status)
    csp = response.headers["content-security-policy"]
    assert csp == CSP
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    if response.content_type == "text/html":
        assert response.headers["cache-control"] == "no-store"
        body = text_of(response)
        assert "<script>" not in body and " on" + "click=" not in body
        assert re.findall(r"<script[^>]*>", body) in (
            [],
            ['<script src="/ui/static/htmx.min.js?v=2.0.11" defer>'],
        )
        assert "style=" not in body


async def test_changes_need_the_csrf_token_and_this_origin(dashboard: Dashboard) -> None:
    root = await dashboard.signed_in("root")
    await root.get("/ui/users")
    form = {"name": "mallory", "roles": "admin"}
    refusals = [
        await root.post("/ui/users", form, csrf=None),
        await root.post("/ui/users", form, csrf="x" * 43),
        await root.post("/ui/users", form, headers={"origin": "http://evil.example"}),
        await root.post("/ui/users", form, headers={"origin": "http://127.0.0.1:9999"}),
        await root.post("/ui/users", form, headers={"sec-fetch-site": "same-site"}),
    ]
    for response in refusals:
        assert response.status == 403, response.body
    users = await dashboard.api.call("GET", "/users")
    assert "mallory" not in {u["name"] for u in users.json()["users"]}
    ok = await root.post("/ui/users", form)
    assert ok.status == 200, ok.body
    assert "user mallory created" in text_of(ok)


async def test_the_token_of_another_session_does_not_do(dashboard: Dashboard) -> None:
    root = await dashboard.signed_in("root")
    bob = await dashboard.signed_in("bob")
    assert root.csrf and bob.csrf and root.csrf != bob.csrf
    response = await root.post("/ui/users", {"name": "x1"}, csrf=bob.csrf)
    assert response.status == 403


async def test_markup_in_descriptions_and_audit_fields_is_shown_as_text(
    dashboard: Dashboard,
) -> None:
    fake = dashboard.api.fake
    fake.lists["tools"].append(
        tool("xss", description="<script>alert(1)</script><img src=x onerror=alert(2)>")
    )
    fake.on_change(fake, {"tools"})
    root = await dashboard.signed_in("root")
    for page in ("/ui/tools?q=xss", "/ui/tools/fake__xss", "/ui/servers/fake"):
        body = text_of(await root.get(page))
        assert "<script>alert(1)" not in body and "<img src=x" not in body, page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body, page
    # an audit record whose target is markup: a prompt name that does not exist
    await dashboard.api.call("POST", "/prompts/<script>alert(3)<%2Fscript>/get", {})
    await dashboard.flush()
    body = text_of(await root.get("/ui/audit"))
    assert "<script>alert(3)" not in body
    assert "&lt;script&gt;alert(3)" in body


# ---- roles -------------------------------------------------------------------------------------


async def test_pages_need_the_admin_role_and_the_refusal_is_audited(
    dashboard: Dashboard,
) -> None:
    bob = await dashboard.signed_in("bob")
    for page in ADMIN_PAGES:
        response = await bob.get(page)
        assert response.status == 403, page
        assert "admin" in text_of(response)
    home = text_of(await bob.get("/ui/"))
    assert 'href="/ui/users"' not in home and 'href="/ui/tools"' in home
    denied = await audit_records(dashboard, actor="bob", outcome="denied")
    assert {r["action"] for r in denied} >= {"admin.users.list", "admin.audit.search"}
    action = await bob.post("/ui/users", {"name": "eve"})
    assert action.status == 403


async def test_everyone_sees_only_the_tools_they_may_use(dashboard: Dashboard) -> None:
    bob = await dashboard.signed_in("bob")
    body = text_of(await bob.get("/ui/tools"))
    assert "fake__echo" in body and "fake__add" in body
    assert "other__secret" not in body
    assert (await bob.get("/ui/tools/other__secret")).status == 404
    carol = await dashboard.signed_in("carol")
    assert "No tools you may use" in text_of(await carol.get("/ui/tools"))


# ---- tools --------------------------------------------------------------------------------------


async def test_a_tool_called_from_its_form_is_audited_like_any_call(
    dashboard: Dashboard,
) -> None:
    bob = await dashboard.signed_in("bob")
    page = text_of(await bob.get("/ui/tools/fake__echo"))
    assert 'name="arg.text"' in page and 'name="arg.times"' in page and 'type="number"' in page
    result = await bob.post("/ui/tools/fake__echo/call", {"arg.text": "hello", "arg.times": "2"})
    assert result.status == 200, result.body
    assert "hello hello" in text_of(result)
    records = await audit_records(dashboard, actor="bob", action="tools/call")
    assert [(r["target"], r["outcome"]) for r in records] == [("fake__echo", "ok")]
    root = await dashboard.signed_in("root")
    audit = text_of(await root.get("/ui/audit?actor=bob&action=tools%2Fcall"))
    assert "fake__echo" in audit and f'id="audit-{records[0]["seq"]}"' in audit


async def test_the_form_parses_values_by_their_types(dashboard: Dashboard) -> None:
    bob = await dashboard.signed_in("bob")
    bad = await bob.post("/ui/tools/fake__echo/call", {"arg.text": "a", "arg.times": "many"})
    assert bad.status == 422
    assert "times: expected an integer" in text_of(bad)
    schema = await bob.post("/ui/tools/fake__echo/call", {"arg.text": "a", "arg.times": "9"})
    assert schema.status == 400  # the API's check against the input schema
    assert "maximum" in text_of(schema)
    added = await bob.post("/ui/tools/fake__add/call", {"json_arguments": '{"a": 2, "b": 3}'})
    assert added.status == 200
    assert "&#34;result&#34;: 5" in text_of(added) or '"result": 5' in text_of(added)
    not_object = await bob.post("/ui/tools/fake__add/call", {"json_arguments": "[1]"})
    assert not_object.status == 422


async def test_a_tool_error_is_shown_as_the_tools_answer(dashboard: Dashboard) -> None:
    root = await dashboard.signed_in("root")
    result = await root.post("/ui/tools/fake__oops/call", {})
    assert result.status == 200
    body = text_of(result)
    assert "tool error" in body and "no such city" in body


async def test_tool_search_and_pages(dashboard: Dashboard) -> None:
    fake = dashboard.api.fake
    fake.lists["tools"].extend(
        tool(f"bulk{i:03}", description=f"bulk tool {i}") for i in range(120)
    )
    fake.on_change(fake, {"tools"})
    root = await dashboard.signed_in("root")
    body = text_of(await root.get("/ui/tools?q=bulk"))
    assert "120 tool(s)" in body and "page 1 of 3" in body
    assert "fake__bulk000" in body and "fake__bulk050" not in body
    last = text_of(await root.get("/ui/tools?q=bulk&page=3"))
    assert "fake__bulk119" in last
    assert (await root.get("/ui/tools?page=x")).status == 422


# ---- the docs ----------------------------------------------------------------------------------


def documented_pages() -> list[str]:
    """The paths docs/dashboard.md's table of pages names (``NAME``, ``ID``: a parameter)."""
    text = (ROOT / "docs" / "dashboard.md").read_text()
    table = text.split("## Pages", 1)[1].split("\n\n", 2)[1]
    found = []
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        found += re.findall(r"`(/ui/[^`]*)`", first)
    return found


async def test_every_documented_page_is_served_and_tested(dashboard: Dashboard) -> None:
    pages = documented_pages()
    assert len(pages) == 17, pages
    assert dashboard.gateway.ui is not None
    router = dashboard.gateway.ui.router
    tests = "\n".join(p.read_text() for p in (ROOT / "tests" / "web").glob("test_*.py"))
    for page in pages:
        concrete = page.replace("NAME", "x").replace("ID", "wr_x")
        route, _ = router.find("GET", concrete.removeprefix("/ui") or "/")
        assert not route.public, page
        # a test asks for it: the path itself, or (with a parameter) the path up to it
        asked = page.split("NAME")[0].split("ID")[0]
        assert asked in tests, f"no test asks for {page}"
