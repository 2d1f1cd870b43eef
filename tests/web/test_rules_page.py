"""The rules page: the rules in force in order (id, file:line, action, priority, scope), the
problems of rule files not in force, and the "test a call" form (which rule fires, and why);
administrators only."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from catalyst_mcp.security.vault import generate_key
from catalyst_mcp.web.pages.rules import call_of
from catalyst_mcp.web.routing import Form, PageError
from tests.api.conftest import settings, start_tools_api
from tests.web.conftest import Dashboard, text_of

RULES = """\
- id: no-drop
  description: Nobody drops tables
  tools: [fake__echo]
  if: '"drop" in arguments.text.lower()'
  action: deny
  message: DROP is not allowed
- id: cap-readers
  roles: [reader]
  tools: [fake__add]
  action: transform
  set: {arguments.b: 1}
- id: urgent
  priority: 10
  tools: ["fake__*"]
  users: ["ops-*"]
  action: alert
  message: ops at work
"""


@pytest.fixture
async def ruled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Dashboard]:
    monkeypatch.setenv("CATALYST_SECRET_KEY", generate_key())
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.yaml").write_text(RULES)
    (folder / "b.yaml").write_text("- id: broken\n  action: deny\n  if: 'arguments.__class__'\n")
    api = await start_tools_api(settings(tmp_path, rules={"path": str(folder), "watch": False}))
    try:
        yield Dashboard(api)
    finally:
        await api.gateway.stop()


def path_of(dashboard: Dashboard) -> Path:
    found = dashboard.gateway.settings.rules.path
    assert isinstance(found, Path)
    return found


async def test_the_rules_in_force_and_the_problems(ruled: Dashboard) -> None:
    root = await ruled.signed_in("root")
    page = await root.get("/ui/rules")
    assert page.status == 200, page.body
    body = html.unescape(text_of(page))
    order = [body.index(f'id="rule-{r}"') for r in ("urgent", "no-drop", "cap-readers")]
    assert order == sorted(order)  # priority first, then the file top to bottom
    assert f"{path_of(ruled)}/a.yaml:1" in body and f"{path_of(ruled)}/a.yaml:12" in body
    assert "action-deny" in body and "action-transform" in body and "action-alert" in body
    assert "tools: fake__echo" in body and "users: ops-*" in body and "roles: reader" in body
    assert 'if <code>"drop" in arguments.text.lower()</code>' in body
    assert "Nobody drops tables" in body
    assert 'id="rule-problems"' in body and "b.yaml:3" in body and "may not start with '_'" in body
    assert '<option value="bob">' in body  # the users, for the test form


async def test_testing_a_call_says_which_rule_fires_and_why(ruled: Dashboard) -> None:
    root = await ruled.signed_in("root")
    await root.get("/ui/rules")
    denied = await root.post(
        "/ui/rules/test",
        {"user": "bob", "tool": "fake__echo", "arguments": '{"text": "DROP <table>"}'},
    )
    assert denied.status == 200, denied.body
    body = text_of(denied)
    assert "denied by rule &#39;no-drop&#39;: DROP is not allowed" in body
    assert "roles: reader, the user's roles here" in body
    assert "verdict-matched" in body and "verdict-out-of-scope" in body
    assert "DROP &lt;table&gt;" in body
    changed = text_of(
        await root.post(
            "/ui/rules/test",
            {
                "user": "ops-ann",
                "roles": "reader, analyst",
                "tool": "fake__add",
                "arguments": '{"a": 1, "b": 5}',
                "at": "2026-01-31T23:00",
                "transport": "rest",
            },
        )
    )
    assert "the call runs" in changed
    assert "Arguments sent" in changed and "&#34;b&#34;:1" in changed.replace(" ", "")
    assert "Alerts</dt><dd>urgent" in changed
    assert "a user this gateway does not know" not in changed  # roles were given
    bad = await root.post("/ui/rules/test", {"user": "bob", "tool": "x", "arguments": "{nope"})
    assert bad.status == 422 and "not JSON" in text_of(bad)
    missing = await root.post("/ui/rules/test", {"user": "", "tool": "x"})
    assert missing.status == 422


async def test_only_administrators_see_or_test_rules(ruled: Dashboard) -> None:
    bob = await ruled.signed_in("bob")
    assert "/ui/rules" not in text_of(await bob.get("/ui/"))
    assert (await bob.get("/ui/rules")).status == 403
    refused = await bob.post("/ui/rules/test", {"user": "bob", "tool": "fake__echo"})
    assert refused.status == 403
    denied = await ruled.api.audit(action="admin.rules.test", outcome="denied")
    assert [r["actor"] for r in denied] == ["bob"]


async def test_no_rules_at_all(tmp_path: Path) -> None:
    api = await start_tools_api(settings(tmp_path))
    try:
        root = await Dashboard(api).signed_in("root")
        body = text_of(await root.get("/ui/rules"))
        assert "No rules are in force" in body and 'id="rule-problems"' not in body
    finally:
        await api.gateway.stop()


@pytest.mark.parametrize(
    ("pairs", "problem"),
    [
        ([("user", "a")], "name the caller"),
        ([("user", "a"), ("tool", "t"), ("arguments", "[1]")], "must be a JSON object"),
        ([("user", "a"), ("tool", "t"), ("result", "{x")], "not JSON"),
        ([("user", "a"), ("tool", "t"), ("at", "tomorrow")], "not a date and time"),
    ],
    ids=["no-tool", "arguments-list", "result-not-json", "bad-time"],
)
def test_the_form_is_checked_before_the_api(pairs: list[tuple[str, str]], problem: str) -> None:
    with pytest.raises(PageError, match=problem) as caught:
        call_of(Form(pairs))
    assert caught.value.status == 422


def test_the_form_becomes_the_apis_body() -> None:
    form = Form(
        [
            ("user", " ann "),
            ("tool", "crm__export"),
            ("roles", "a, b  c"),
            ("server", "crm"),
            ("arguments", '{"limit": 5000}'),
            ("result", '{"structuredContent": {"n": 1}}'),
            ("at", "2026-01-31T23:00"),
            ("transport", "rest"),
        ]
    )
    assert call_of(form) == {
        "user": "ann",
        "tool": "crm__export",
        "roles": ["a", "b", "c"],
        "server": "crm",
        "arguments": {"limit": 5000},
        "result": {"structuredContent": {"n": 1}},
        "at": "2026-01-31T23:00:00",
        "transport": "rest",
    }
