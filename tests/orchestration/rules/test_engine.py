"""The decision for one call: order, priority, scope, first terminal rule, failed conditions,
and the explanation `catalyst rules test` prints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from catalyst_mcp.orchestration.rules.engine import Facts, RuleEngine
from catalyst_mcp.orchestration.rules.loader import load_rules_text

MONDAY_10 = datetime(2025, 1, 6, 10, 0, tzinfo=UTC).timestamp()
SUNDAY_10 = datetime(2025, 1, 5, 10, 0, tzinfo=UTC).timestamp()


def engine(text: str) -> RuleEngine:
    return RuleEngine(load_rules_text(text, "r.yaml"))


def facts(tool: str = "db__query", now: float = MONDAY_10, **extra: Any) -> Facts:
    values: dict[str, Any] = {
        "subject": "alice",
        "kind": "user",
        "via": "api_key",
        "roles": ("analyst",),
        "scopes": None,
        "server": tool.partition("__")[0],
        "tool": tool,
        "arguments": {},
        "now": now,
        **extra,
    }
    return Facts(**values)


def decide(rules: RuleEngine, call: Facts) -> list[str]:
    candidates = rules.candidates(call.server, call.tool)
    plan = rules.walk(candidates.before, call, rules.variables(call))
    return [f"{r.id}:{r.action}" for r in plan.matched]


def test_the_first_terminal_rule_decides_and_others_add_up_before_it() -> None:
    rules = engine(
        """
- {id: note, action: alert}
- {id: cap, action: transform, set: {arguments.limit: 10}}
- {id: stop, action: deny, tools: ["db__*"]}
- {id: later, action: alert}
"""
    )
    assert decide(rules, facts()) == ["note:alert", "cap:transform", "stop:deny"]
    assert decide(rules, facts("crm__find")) == ["note:alert", "cap:transform", "later:alert"]


def test_priority_goes_first_then_written_order() -> None:
    rules = engine(
        """
- {id: a, action: deny}
- {id: b, action: allow, priority: 5}
- {id: c, action: allow, priority: 5}
"""
    )
    assert [r.id for r in rules.rules] == ["b", "c", "a"]
    assert decide(rules, facts()) == ["b:allow"]


def test_scope_roles_users_and_time_window() -> None:
    rules = engine(
        """
- {id: roles, action: alert, roles: [admin, analyst]}
- {id: not-mine, action: alert, roles: [admin]}
- {id: users, action: alert, users: ["ali*"]}
- {id: weekdays, action: alert, during: {days: [mon, tue, wed, thu, fri]}}
- {id: servers, action: alert, servers: [crm]}
- {id: tz, action: alert, if: 'time.hour == 11 and time.weekday == "mon"', timezone: Europe/Paris}
"""
    )
    assert decide(rules, facts()) == ["roles:alert", "users:alert", "weekdays:alert", "tz:alert"]
    assert decide(rules, facts(now=SUNDAY_10)) == ["roles:alert", "users:alert"]
    assert rules.candidates("db", "db__query") is rules.candidates("db", "db__query")  # cached


def test_a_failed_condition_fails_closed_for_deny_and_open_for_others() -> None:
    rules = engine(
        """
- {id: count, action: alert, if: arguments.limit > 10}
- {id: strict, action: deny, if: arguments.limit > 10}
"""
    )
    call = facts(arguments={"limit": "a lot"})
    candidates = rules.candidates("db", "db__query")
    plan = rules.walk(candidates.before, call, rules.variables(call))
    assert [r.id for r in plan.matched] == ["strict"]
    assert [r.id for r, _ in plan.errors] == ["count", "strict"]
    lenient = engine("- {id: s, action: deny, if: arguments.limit > 10, on_error: skip}")
    assert decide(lenient, call) == []


def test_rules_on_the_result_are_walked_after_the_call() -> None:
    rules = engine(
        """
- {id: before, action: alert}
- {id: after, action: deny, if: result.rows > 100}
"""
    )
    candidates = rules.candidates("db", "db__query")
    assert [r.id for r in candidates.before] == ["before"]
    assert [r.id for r in candidates.after] == ["after"]


def test_explain_says_why_each_rule_did_or_did_not_apply() -> None:
    rules = engine(
        """
- {id: other-tool, action: deny, tools: [crm__*]}
- {id: admins, action: allow, roles: [admin]}
- {id: small, action: alert, if: arguments.limit < 10}
- {id: big, action: deny, if: arguments.limit > 100, message: too big}
- {id: never, action: alert}
- {id: switched-off, action: deny, enabled: false}
- {id: on-result, action: deny, if: is_error}
"""
    )
    verdicts, before, after = rules.explain(facts(arguments={"limit": 500}))
    outcomes = {v.rule.id: (v.outcome, v.reason) for v in verdicts}
    assert outcomes["other-tool"] == (
        "out of scope",
        "tool 'db__query' is not one of ['crm__*']",
    )
    assert outcomes["admins"] == (
        "not matched",
        "the caller holds none of the roles ['admin']",
    )
    assert outcomes["small"] == ("not matched", "if is false: arguments.limit < 10")
    assert outcomes["big"] == ("matched", "applies before the call: arguments.limit > 100")
    assert outcomes["never"] == ("not reached", "rule 'big' decided first")
    assert outcomes["switched-off"] == ("disabled", "enabled: false")
    assert outcomes["on-result"][0] == "not reached"
    assert before.final is not None and before.final.id == "big"
    assert after is None
    _, _, after = rules.explain(facts(arguments={"limit": 5}), {"isError": True, "content": []})
    assert after is not None and after.final is not None and after.final.id == "on-result"
