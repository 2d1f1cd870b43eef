"""Rule files: every problem located as file:line:col, ids unique, each action's fields."""

from __future__ import annotations

import pytest

from catalyst_mcp.errors import ConfigError
from catalyst_mcp.orchestration.rules.loader import load_rules_text, load_stored


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_rules_text(text, "r.yaml")
    return [str(p) for p in caught.value.problems]


def test_a_file_is_a_list_or_a_rules_mapping() -> None:
    listed = load_rules_text("- {id: a, action: allow}\n", "r.yaml")
    mapped = load_rules_text("rules:\n  - {id: a, action: allow}\n", "r.yaml")
    assert [r.spec.id for r in listed] == [r.spec.id for r in mapped] == ["a"]
    assert listed[0].source == "r.yaml:1" and mapped[0].source == "r.yaml:2"
    assert load_rules_text("", "r.yaml") == []
    assert problems("other: 1\n") == [
        "r.yaml:1:1: unknown key 'other' (a rules file has 'rules:', a list of rules)"
    ]


def test_every_problem_is_located() -> None:
    found = problems(
        """
- id: a
  action: deny
  if: arguments.x >
- id: b
  actoin: deny
- id: c
  action: transform
- id: d
  action: route
  route: {server: x, tool: y}
- id: a
  action: allow
"""
    )
    assert found == [
        "r.yaml:4:3: rule 'a': if: not a valid expression: invalid syntax "
        "(column 14 of the condition)",
        "r.yaml:5:3: rule 'b': action: required field missing",
        "r.yaml:6:3: rule 'b': actoin: unknown field (check the spelling; docs/rules.md lists "
        "them)",
        "r.yaml:7:3: rule 'c': a transform rule needs 'set' or 'redact'",
        "r.yaml:11:3: rule 'd': route: give exactly one of 'server' and 'tool'",
    ]


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("{id: a, action: deny, set: {arguments.x: 1}}", "set does not apply to action 'deny'"),
        ("{id: a, action: transform, set: {result.x: 1}}", "only arguments can be set"),
        ("{id: a, action: route, if: result.x == 1, route: {server: s}}", "after the call"),
        ("{id: a, action: transform, if: is_error, redact: [arguments.x]}", "only redact"),
        ("{id: a, action: rate}", "needs 'rate:"),
        ("{id: a, action: rate, rate: {rate_per_second: 0, burst: 1}}", "greater than 0"),
        ("{id: 'a b', action: allow}", "rule id 'a b' must be"),
        ("{id: a, action: allow, tools: []}", "no globs given"),
        ("{id: a, action: allow, tools: ['[a']}", "is never closed"),
        ("{id: a, action: allow, timezone: Mars/Base}", "unknown timezone"),
        ("{id: a, action: allow, during: {days: [funday]}}", "unknown day"),
    ],
)
def test_action_fields_are_checked(rule: str, problem: str) -> None:
    (found,) = problems(f"- {rule}\n")
    assert problem in found, found


def test_a_duplicate_id_in_one_file() -> None:
    assert problems("- {id: a, action: allow}\n- {id: a, action: deny}\n") == [
        "r.yaml:2:4: rule id 'a' is used twice (first on line 1)"
    ]


def test_stored_rules_are_checked_again_when_loaded() -> None:
    rules, found = load_stored([("ok", {"action": "allow"}), ("bad", {"action": "fly"})])
    assert [r.spec.id for r in rules] == ["ok"]
    assert len(found) == 1 and str(found[0]).startswith("stored rule 'bad': action:")
