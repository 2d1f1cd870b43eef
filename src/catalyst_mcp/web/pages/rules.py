"""Rules (administrators): the policy rules in force, in the order they are walked (id, where
each is written, action, priority, scope), the rule files and stored rules that are not in force
with their ``file:line:col`` problems, and a form to test a call: ``POST /api/v1/rules/test``,
which says which rule fires for it and why every other one does not (``catalyst rules test``
over the rules this gateway has in force).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from catalyst_mcp.web.routing import Form, PageError, PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["call_of", "routes", "scope_of"]

SCOPE_FIELDS = ("servers", "tools", "roles", "users")


def scope_of(rule: dict[str, Any]) -> list[str]:
    """What a rule (as written) matches, one phrase a field: ``tools: crm__*``."""
    scope = [
        f"{name}: {', '.join(str(v) for v in rule[name])}"
        for name in SCOPE_FIELDS
        if isinstance(rule.get(name), list)
    ]
    if rule.get("during"):
        scope.append("during: " + orjson.dumps(rule["during"]).decode())
    return scope


def _json_object(form: Form, name: str, label: str) -> dict[str, Any] | None:
    text = form.text(name)
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PageError(422, f"the {label} are not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PageError(422, f'the {label} must be a JSON object: {{"name": value, ...}}')
    return value


def call_of(form: Form) -> dict[str, Any]:
    """The API's body for the test form (PageError 422 for what the form cannot say)."""
    user, tool = form.text("user"), form.text("tool")
    if user is None or tool is None:
        raise PageError(422, "name the caller (user) and the tool")
    body: dict[str, Any] = {
        "user": user,
        "tool": tool,
        "arguments": _json_object(form, "arguments", "arguments") or {},
        "transport": form.get("transport") or "mcp",
    }
    roles = form.text("roles")
    if roles is not None:
        body["roles"] = roles.replace(",", " ").split()
    server = form.text("server")
    if server is not None:
        body["server"] = server
    result = _json_object(form, "result", "result's fields")
    if result is not None:
        body["result"] = result
    at = form.text("at")
    if at is not None:
        try:
            body["at"] = datetime.fromisoformat(at).isoformat()
        except ValueError:
            raise PageError(422, f"the time is not a date and time: {at!r}") from None
    return body


class RulePages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.render = dashboard.renderer

    async def list(self, request: PageRequest) -> Reply:
        found = need(await request.api.get("/rules"))
        users = need(await request.api.get("/users"))["users"]
        rules = [{**r, "scope": scope_of(r["rule"])} for r in found["rules"]]
        return self.render.page(
            request,
            "rules.html",
            current="rules",
            rules=rules,
            problems=found["problems"],
            users=[u["name"] for u in users],
        )

    async def test(self, request: PageRequest) -> Reply:
        body = call_of(await request.form())
        report = need(await request.api.post("/rules/test", body))
        return self.render.fragment(request, "ruletest.html", report=report)


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = RulePages(dashboard)
    return [
        PageRoute("GET", "/rules", pages.list),
        PageRoute("POST", "/rules/test", pages.test),
    ]
