"""/api/v1/rules and /approvals: stored rules are validated like files, in force at once on this
instance, and every change is audited; file rules are read-only here; admins only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import ToolsApi, error_of, settings, start_tools_api


@pytest.fixture
async def api(tmp_path: Path):  # type: ignore[no-untyped-def]
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "base.yaml").write_text(
        "- id: from-file\n  tools: [fake__add]\n  action: deny\n  message: no adding\n"
    )
    served = await start_tools_api(settings(tmp_path, rules={"path": str(folder), "watch": False}))
    try:
        yield served
    finally:
        await served.gateway.stop()


async def test_a_stored_rule_is_in_force_at_once(api: ToolsApi) -> None:
    rule = {
        "tools": ["fake__echo"],
        "if": "arguments.text == 'secret'",
        "action": "deny",
        "message": "not that word",
    }
    put = await api.call("PUT", "/rules/no-secret", rule)
    assert put.status == 200, put.body
    assert put.json()["source"] == "stored"
    assert put.json()["rule"] == {"id": "no-secret", **rule}
    denied = await api.call("POST", "/tools/fake__echo/call", {"text": "secret"}, token="bob")
    assert denied.status == 403
    assert error_of(denied)["message"] == "not that word"
    ok = await api.call("POST", "/tools/fake__echo/call", {"text": "hello"}, token="bob")
    assert ok.status == 200
    listed = (await api.call("GET", "/rules")).json()
    assert [(r["id"], r["source"]) for r in listed["rules"]] == [
        ("from-file", f"{api.gateway.settings.rules.path}/base.yaml:1"),
        ("no-secret", "stored"),
    ]
    assert listed["problems"] == []
    assert (await api.call("GET", "/rules/no-secret")).json()["action"] == "deny"
    assert (await api.call("DELETE", "/rules/no-secret")).status == 204
    again = await api.call("POST", "/tools/fake__echo/call", {"text": "secret"}, token="bob")
    assert again.status == 200
    changes = await api.audit(action="admin.rules.put")
    assert [(r["target"], r["outcome"]) for r in changes] == [("no-secret", "ok")]
    (deny,) = [r for r in await api.audit(action="tools/call") if r["outcome"] == "denied"]
    assert deny["detail"]["note"] == {"rules": [{"id": "no-secret", "action": "deny"}]}


async def test_an_invalid_rule_lists_every_problem(api: ToolsApi) -> None:
    bad = await api.call("PUT", "/rules/x", {"action": "transform", "if": "arguments.__dict__"})
    assert bad.status == 422
    messages = [p["message"] for p in error_of(bad)["problems"]]
    assert any("may not start with '_'" in m for m in messages), messages
    wrong_id = await api.call("PUT", "/rules/x", {"id": "y", "action": "allow"})
    assert wrong_id.status == 422
    assert (await api.call("PUT", "/rules/bad%20id", {"action": "allow"})).status == 422


async def test_file_rules_are_read_only_here(api: ToolsApi) -> None:
    put = await api.call("PUT", "/rules/from-file", {"action": "allow"})
    assert put.status == 409
    assert "base.yaml:1" in error_of(put)["message"]
    delete = await api.call("DELETE", "/rules/from-file")
    assert delete.status == 409
    assert (await api.call("DELETE", "/rules/nothing")).status == 404
    assert (await api.call("GET", "/rules/nothing")).status == 404


async def test_only_administrators_manage_rules_and_approvals(api: ToolsApi) -> None:
    for method, path, body in [
        ("GET", "/rules", None),
        ("PUT", "/rules/x", {"action": "allow"}),
        ("GET", "/approvals", None),
        ("POST", "/approvals/apr_x/approve", {}),
    ]:
        response = await api.call(method, path, body, token="bob")
        assert response.status == 403, (method, path)


async def test_the_openapi_document_describes_the_rules_routes(api: ToolsApi) -> None:
    document = (await api.call("GET", "/openapi.json")).json()
    assert {"/rules", "/rules/{id}", "/approvals", "/approvals/{id}/approve"} <= {
        path.removeprefix("/api/v1") for path in document["paths"]
    }
    body = document["paths"]["/api/v1/rules/{id}"]["put"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert "action" in schema["properties"]


def test_the_rule_schema_has_no_dangling_references() -> None:
    from catalyst_mcp.api.rules import RULE_SCHEMA

    assert "$ref" not in str(RULE_SCHEMA)
    assert "$defs" not in RULE_SCHEMA
    assert RULE_SCHEMA["properties"]["route"]["anyOf"][0]["properties"]["server"]


async def test_a_call_is_tested_against_the_rules_in_force(api: ToolsApi) -> None:
    stored = {
        "tools": ["fake__echo"],
        "roles": ["reader"],
        "if": "arguments.text == 'secret'",
        "action": "deny",
        "message": "not that word",
    }
    assert (await api.call("PUT", "/rules/no-secret", stored)).status == 200
    body = {"user": "bob", "tool": "fake__echo", "arguments": {"text": "secret"}}
    report = await api.call("POST", "/rules/test", body)
    assert report.status == 200, report.body
    found = report.json()
    # bob's roles as the gateway knows them; the server from the registry
    assert (found["roles"], found["roles_from"], found["server"]) == (["reader"], "user", "fake")
    assert found["decision"] == "denied by rule 'no-secret': not that word"
    assert [(v["id"], v["outcome"]) for v in found["rules"]] == [
        ("from-file", "out of scope"),
        ("no-secret", "matched"),
    ]
    other = await api.call("POST", "/rules/test", {**body, "roles": ["analyst"]})
    assert other.json()["roles_from"] == "given"
    assert other.json()["decision"].startswith("the call runs")
    stranger = await api.call("POST", "/rules/test", {**body, "user": "zed"})
    assert (stranger.json()["roles"], stranger.json()["roles_from"]) == ([], "unknown user")
    guessed = await api.call(
        "POST", "/rules/test", {"user": "bob", "tool": "crm__find", "at": "2026-01-31T23:00:00"}
    )
    assert guessed.json()["server"] == "crm"
    far = await api.call("POST", "/rules/test", {**body, "at": "9999-12-31T23:59:59+00:00"})
    assert far.status == 422
    bad = await api.call("POST", "/rules/test", {"user": "bob", "arguments": []})
    assert bad.status == 422
    assert {p["location"] for p in error_of(bad)["problems"]} == {"body.tool", "body.arguments"}
    assert (await api.call("POST", "/rules/test", body, token="bob")).status == 403
    # a read: only the refusal is recorded
    records = await api.audit(action="admin.rules.test")
    assert [(r["actor"], r["outcome"]) for r in records] == [("bob", "denied")]
