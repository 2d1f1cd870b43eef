"""The approvals page: held calls listed for an approver (who, tool, arguments, rule, age),
approved and rejected with a reason through the API (audited), recent decisions; only an
administrator (the API's approver) sees or decides them."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.security.vault import generate_key
from tests.api.conftest import settings, start_tools_api
from tests.web.conftest import Dashboard, text_of

RULES = """\
- id: echo-needs-ok
  tools: [fake__echo]
  action: require_approval
  message: Echoes need an approver
"""


@pytest.fixture
async def held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Dashboard]:
    """The dashboard's gateway with a rule holding every call of ``fake__echo``."""
    monkeypatch.setenv("CATALYST_SECRET_KEY", generate_key())
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "approve.yaml").write_text(RULES)
    api = await start_tools_api(settings(tmp_path, rules={"path": str(folder), "watch": False}))
    try:
        yield Dashboard(api)
    finally:
        await api.gateway.stop()


async def hold(dashboard: Dashboard, text: str) -> dict[str, Any]:
    """bob calls fake__echo through the REST API: held, 403 naming the pending request."""
    answer = await dashboard.api.call("POST", "/tools/fake__echo/call", {"text": text}, token="bob")
    assert answer.status == 403, answer.body
    pending = (await dashboard.api.call("GET", "/approvals?status=pending")).json()["approvals"]
    found = [a for a in pending if a["arguments"] == {"text": text}]
    assert len(found) == 1, pending
    return found[0]


async def test_an_approver_sees_and_approves_a_held_call(held: Dashboard) -> None:
    request = await hold(held, "<script>alert(1)</script> please")
    root = await held.signed_in("root")
    page = await root.get("/ui/approvals")
    assert page.status == 200, page.body
    body = text_of(page)
    assert f'id="approval-{request["id"]}"' in body
    assert "bob" in body and "fake__echo" in body and "echo-needs-ok" in body
    assert "Echoes need an approver" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; please" in body  # the arguments, escaped
    assert "<script>alert" not in body
    assert "left</small>" in body  # age and the time left
    approved = await root.post(f"/ui/approvals/{request['id']}/approve", {"note": "fine once"})
    assert approved.status == 200, approved.body
    body = text_of(approved)
    assert f"{request['id']} (fake__echo for bob) approved" in body
    assert "No calls wait for approval." in body
    assert f'id="decided-{request["id"]}"' in body and "fine once" in body
    shown = (await held.api.call("GET", f"/approvals/{request['id']}")).json()
    decided = (shown["status"], shown["decided_by"], shown["note"])
    assert decided == ("approved", "root", "fine once")
    # the same call made again runs, once
    again = await held.api.call(
        "POST", "/tools/fake__echo/call", {"text": request["arguments"]["text"]}, token="bob"
    )
    assert again.status == 200, again.body
    records = await held.api.audit(action="admin.approvals.approve")
    assert [(r["actor"], r["target"], r["outcome"]) for r in records] == [
        ("root", request["id"], "ok")
    ]


async def test_a_rejection_carries_its_reason_and_a_decided_request_stays_decided(
    held: Dashboard,
) -> None:
    request = await hold(held, "nope")
    root = await held.signed_in("root")
    await root.get("/ui/approvals")
    rejected = await root.post(f"/ui/approvals/{request['id']}/reject", {"note": "use the report"})
    assert rejected.status == 200, rejected.body
    assert "rejected: the call is not run" in text_of(rejected)
    shown = (await held.api.call("GET", f"/approvals/{request['id']}")).json()
    assert (shown["status"], shown["note"]) == ("rejected", "use the report")
    again = await root.post(f"/ui/approvals/{request['id']}/approve", {"note": ""})
    assert again.status == 409  # the API's refusal, shown where the button was
    assert "is rejected, not pending" in text_of(again)
    assert again.headers.get("hx-retarget") == "#flash"
    unknown = await root.post("/ui/approvals/apr_nothing/approve")
    assert unknown.status == 404
    long = await root.post(f"/ui/approvals/{request['id']}/reject", {"note": "x" * 501})
    assert long.status == 422
    other = await root.post(f"/ui/approvals/{request['id']}/maybe")
    assert other.status == 404


async def test_only_an_approver_sees_or_decides(held: Dashboard) -> None:
    request = await hold(held, "let me")
    bob = await held.signed_in("bob")
    home = text_of(await bob.get("/ui/"))
    assert "/ui/approvals" not in home  # not in bob's menu
    page = await bob.get("/ui/approvals")
    assert page.status == 403
    assert "'admin' role" in html.unescape(text_of(page))
    assert request["id"] not in text_of(page)
    refused = await bob.post(f"/ui/approvals/{request['id']}/approve", {"note": "mine"})
    assert refused.status == 403
    shown = (await held.api.call("GET", f"/approvals/{request['id']}")).json()
    assert shown["status"] == "pending"
    denied = await held.api.audit(action="admin.approvals.approve", outcome="denied")
    assert [r["actor"] for r in denied] == ["bob"]
    # an administrator's key narrowed by scopes without "admin" is no approver either
    narrowed = await held.api.key("root", scopes=["mcp"])
    scoped = held.browser()
    await scoped.sign_in(narrowed)
    assert (await scoped.get("/ui/approvals")).status == 403


async def test_an_expired_request_has_no_buttons(held: Dashboard) -> None:
    rules = held.gateway.rules
    record = await rules.approvals.open(
        rule_id="echo-needs-ok",
        subject="carol",
        via="api_key",
        tool="fake__echo",
        server="fake",
        arguments=None,
        message="late",
        timeout=0.0,
    )
    root = await held.signed_in("root")
    body = text_of(await root.get("/ui/approvals"))
    row = body[body.index(f'id="approval-{record.id}"') :]
    row = row[: row.index("</tr>")]
    assert "expired" in row and "/approve" not in row
    assert "none" in row  # no arguments
