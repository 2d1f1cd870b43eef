"""What the admin pages show and do: servers, packs, the overview's figures, users, keys,
roles, secrets (whose values no page ever shows), the audit trail; and the local user while
auth is off."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import Settings
from tests.api.conftest import settings, start_tools_api
from tests.asgiclient import AsgiClient
from tests.web.conftest import HOST, Browser, Dashboard, text_of

SECRET_VALUE = "pages-S3cret-value-never-shown"
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


async def test_no_page_ever_shows_a_secret_value(dashboard: Dashboard) -> None:
    root = await dashboard.signed_in("root")
    await root.get("/ui/secrets")
    put = await root.post(
        "/ui/secrets", {"owner": "bob", "scope": "fake", "name": "TOKEN", "value": SECRET_VALUE}
    )
    assert put.status == 200, put.body
    body = text_of(put)
    assert "secret bob/fake/TOKEN set" in body and SECRET_VALUE not in body
    for page in PAGES:
        response = await root.get(page)
        assert SECRET_VALUE not in text_of(response), page
    listing = text_of(await root.get("/ui/secrets"))
    assert "TOKEN" in listing and 'value="' + SECRET_VALUE not in listing
    await root.get("/ui/secrets")
    deleted = await root.post("/ui/secrets/bob/fake/TOKEN/delete")
    assert "secret bob/fake/TOKEN deleted" in text_of(deleted)
    assert "No secrets." in text_of(deleted)
    empty = await root.post("/ui/secrets", {"owner": "bob", "scope": "fake", "name": "X"})
    assert empty.status == 422


async def test_a_new_key_is_shown_once(dashboard: Dashboard) -> None:
    root = await dashboard.signed_in("root")
    await root.get("/ui/keys")
    created = await root.post("/ui/keys", {"user": "carol", "name": "laptop", "scopes": "mcp"})
    assert created.status == 200, created.body
    token = re.search(r'id="new-token">(cat_[^<]+)<', text_of(created))
    assert token is not None
    again = text_of(await root.get("/ui/keys"))
    assert token.group(1) not in again and "laptop" in again
    # the key works: carol signs in with it
    carol = dashboard.browser()
    await carol.sign_in(token.group(1))
    bad_date = await root.post("/ui/keys", {"user": "carol", "name": "x", "expires": "soon"})
    assert bad_date.status == 422


async def test_users_and_roles_are_managed_through_the_admin_api(dashboard: Dashboard) -> None:
    root = await dashboard.signed_in("root")
    await root.get("/ui/roles")
    saved = await root.post(
        "/ui/roles",
        {
            "name": "auditor",
            "description": "reads",
            "rules": "[{effect: allow, kinds: [tool], match: ['fake__add']}]",
        },
    )
    assert saved.status == 200, saved.body
    assert "role auditor saved" in text_of(saved)
    bad = await root.post("/ui/roles", {"name": "x", "rules": "{effect: allow}"})
    assert bad.status == 422 and "must be a list" in text_of(bad)
    invalid = await root.post("/ui/roles", {"name": "x", "rules": "[{effect: maybe}]"})
    assert invalid.status == 422 and "body.rules" in text_of(invalid)
    await root.get("/ui/users")
    made = await root.post("/ui/users", [("name", "erin"), ("roles", "auditor")])
    assert "user erin created" in text_of(made)
    updated = await root.post("/ui/users/erin/update", [("roles", "reader"), ("disabled", "on")])
    assert updated.status == 200
    users = (await dashboard.api.call("GET", "/users/erin")).json()
    assert users["roles"] == ["reader"] and users["disabled"] is True
    held = await root.post("/ui/roles/reader/delete")
    assert held.status == 409  # bob and erin hold it
    gone = await root.post("/ui/users/erin/delete")
    assert "user erin deleted" in text_of(gone)
    records = await dashboard.api.audit(actor="root")
    actions = [r["action"] for r in records]
    assert {"admin.roles.put", "admin.users.create", "admin.users.update"} <= set(actions)


async def test_root_cannot_lock_themselves_out(dashboard: Dashboard) -> None:
    root = await dashboard.signed_in("root")
    await root.get("/ui/users")
    response = await root.post("/ui/users/root/delete")
    assert response.status == 409
    assert "signed in as" in text_of(response)


async def test_the_audit_pages_newest_first_and_verifies_the_chain(tmp_path: Path) -> None:
    dashboard = Dashboard(await start_tools_api(settings(tmp_path, ui={"page_size": 5})))
    try:
        bob = await dashboard.signed_in("bob")
        for i in range(7):
            await bob.post("/ui/tools/fake__echo/call", {"arg.text": f"call {i}"})
        await dashboard.flush()
        root = await dashboard.signed_in("root")
        first = text_of(await root.get("/ui/audit?action=tools%2Fcall&actor=bob"))
        seqs = [int(s) for s in re.findall(r'id="audit-(\d+)"', first)]
        assert len(seqs) == 5 and seqs == sorted(seqs, reverse=True)
        older = re.search(r'href="/ui/audit\?([^"]*before=\d+[^"]*)"', first)
        assert older is not None
        second = text_of(await root.get("/ui/audit?" + older.group(1).replace("&amp;", "&")))
        more = [int(s) for s in re.findall(r'id="audit-(\d+)"', second)]
        assert len(more) == 2 and max(more) < min(seqs)
        assert "← newest" in second
        verified = text_of(await root.get("/ui/audit/verify", {"hx-request": "true"}))
        assert "The chain holds" in verified
        invalid = await root.get("/ui/audit?outcome=maybe")
        assert invalid.status == 422
    finally:
        await dashboard.gateway.stop()


async def test_the_overview_counts_calls_from_the_metrics_registry(dashboard: Dashboard) -> None:
    bob = await dashboard.signed_in("bob")
    await bob.post("/ui/tools/fake__echo/call", {"arg.text": "x"})
    await bob.post("/ui/tools/fake__echo/call", {"arg.text": "y"})
    root = await dashboard.signed_in("root")
    await root.post("/ui/tools/fake__oops/call", {})
    body = text_of(await root.get("/ui/"))
    calls = re.search(r'id="calls-per-minute">([^<]+)<', body)
    rate = re.search(r'id="error-rate">([^<]+)<', body)
    p50 = re.search(r'id="p50">([^<]+)<', body)
    assert calls is not None and float(calls.group(1).replace(",", "")) > 0
    assert rate is not None and rate.group(1) == "33.3 %"  # 1 tool error in 3 calls
    assert p50 is not None and p50.group(1).endswith(" ms")
    assert "3 calls" not in body or "calls (0 refused)" in body
    bob_home = text_of(await bob.get("/ui/"))
    assert 'id="calls-per-minute"' not in bob_home  # the gateway's figures: administrators


async def test_a_server_is_stopped_and_started_from_its_page(tmp_path: Path) -> None:
    root_dir = tmp_path / "files"
    root_dir.mkdir()
    config = Settings.model_validate(
        {
            "packs": {"path": None},
            "audit": {"enabled": False},
            "servers": {"files": {"filesystem": {"roots": [str(root_dir)]}}},
        }
    )
    gateway = Gateway(config)
    await gateway.start()
    try:
        browser = Browser(AsgiClient(gateway.asgi))
        page = await browser.get("/ui/servers/files")
        assert page.status == 200
        body = text_of(page)
        assert "files__read_file" in body and "builtin" in body
        stopped = await browser.post("/ui/servers/files/stop")
        assert "files: stopped" in text_of(stopped)
        assert gateway.servers.status("files")["state"] == "stopped"
        again = await browser.post("/ui/servers/files/stop")
        assert "files: already stopped" in text_of(again)
        started = await browser.post("/ui/servers/files/start")
        assert "files: started (now ready)" in text_of(started)
        unknown = await browser.post("/ui/servers/files/explode")
        assert unknown.status == 404
        logs = await browser.get("/ui/servers/files/logs?after=x", {"hx-request": "true"})
        assert logs.status == 422
    finally:
        await gateway.stop()


async def test_the_packs_page_names_each_problem_at_its_line(tmp_path: Path) -> None:
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "broken.yaml").write_text("pack: broken\nversion: 1\ntools:\n  - name: [oops\n")
    config = Settings.model_validate({"packs": {"path": str(packs)}, "audit": {"enabled": False}})
    gateway = Gateway(config)
    await gateway.start()
    try:
        browser = Browser(AsgiClient(gateway.asgi))
        body = text_of(await browser.get("/ui/packs"))
        assert "broken.yaml" in body and "failed" in body
        problem = re.search(r'<code class="problem">([^<]+)</code>', body)
        assert problem is not None
        assert re.search(r"broken\.yaml:\d+(:\d+)?: ", problem.group(1)), problem.group(1)
        overview = text_of(await browser.get("/ui/"))
        assert "1 problem(s)" in overview
    finally:
        await gateway.stop()


async def test_without_auth_the_local_user_needs_no_sign_in(tmp_path: Path) -> None:
    config = Settings.model_validate({"packs": {"path": None}, "audit": {"enabled": False}})
    gateway = Gateway(config)
    await gateway.start()
    try:
        browser = Browser(AsgiClient(gateway.asgi))
        home = await browser.get("/ui/")
        assert home.status == 200
        assert "local user" in text_of(home) and 'href="/ui/packs"' in text_of(home)
        login = await browser.get("/ui/login")
        assert login.status == 303 and login.headers["location"] == "/ui/"
        # storage is off: the admin pages that need it say so
        users = await browser.get("/ui/users")
        assert users.status == 503 and "storage is off" in text_of(users)
        # a change still needs the page's CSRF token
        refused = await browser.post("/ui/servers/x/stop", csrf=None)
        assert refused.status == 403
    finally:
        await gateway.stop()


async def test_the_dashboard_can_be_turned_off_or_moved(tmp_path: Path) -> None:
    for ui, path, status in (
        ({"enabled": False}, "/ui/", 404),
        ({"path": "/admin/console"}, "/admin/console/", 200),
        ({"path": "/admin/console"}, "/ui/", 404),
    ):
        config = Settings.model_validate(
            {"packs": {"path": None}, "audit": {"enabled": False}, "ui": ui}
        )
        gateway = Gateway(config)
        client = AsgiClient(gateway.asgi)
        response = await client.get(path, {"host": HOST})
        assert response.status == status, (ui, path)
        if status == 200:
            assert 'href="/admin/console/tools"' in text_of(response)


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/ui/static/htmx.min.js", "text/javascript"), ("/ui/static/ui.css", "text/css")],
)
async def test_static_files_are_served_by_the_gateway(
    dashboard: Dashboard, path: str, expected: str
) -> None:
    response = await dashboard.browser().get(path)
    assert response.status == 200
    assert response.content_type == expected
    assert response.headers["cache-control"].startswith("public")
    for missing in ("/ui/static/nope.js", "/ui/static/../dashboard.py", "/ui/static/"):
        assert (await dashboard.browser().get(missing)).status == 404


async def test_forms_have_limits(dashboard: Dashboard) -> None:
    root = await dashboard.signed_in("root")
    huge: dict[str, Any] = {"arg.text": "x" * (300 * 1024)}
    too_big = await root.post("/ui/tools/fake__echo/call", huge)
    assert too_big.status == 413
    json_body = await root.post(
        "/ui/tools/fake__echo/call", {}, headers={"content-type": "application/json"}
    )
    assert json_body.status in (200, 400)  # an empty body is an empty form
