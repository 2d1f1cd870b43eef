"""Paths of transform rules: parsed when loaded, set and redact in place on copies."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.orchestration.rules.paths import ALL, parse_path, redact_at, set_at


def test_paths_parse_to_steps() -> None:
    assert parse_path("arguments.a.b").steps == ("a", "b")
    assert parse_path('arguments["odd key"][0].x').steps == ("odd key", 0, "x")
    assert parse_path("result.rows[*].email").steps == ("rows", ALL, "email")
    assert parse_path("result").steps == ()
    assert parse_path("result.*").root == "result"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("foo.x", "must start with 'arguments' or 'result'"),
        ("arguments", "name a field"),
        ("arguments.a..b", "cannot read"),
        ("arguments[x]", "cannot read"),
    ],
)
def test_bad_paths_say_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_path(text)


def test_set_creates_what_is_missing_and_leaves_impossible_places() -> None:
    data: dict[str, Any] = {"rows": [{"a": 1}], "n": 3}
    set_at(data, parse_path("arguments.options.read_only").steps, True)
    set_at(data, parse_path("arguments.rows[*].a").steps, 0)
    set_at(data, parse_path("arguments.rows[9].a").steps, 0)  # no such item: nothing
    set_at(data, parse_path("arguments.n.x").steps, 0)  # not a mapping: nothing
    assert data == {"rows": [{"a": 0}], "n": 3, "options": {"read_only": True}}


def test_redact_masks_what_exists_and_counts_it() -> None:
    data = {"users": [{"email": "a"}, {"name": "b"}], "token": "t"}
    assert redact_at(data, parse_path("result.users[*].email").steps, "***") == 1
    assert redact_at(data, parse_path("result.token").steps, "***") == 1
    assert redact_at(data, parse_path("result.missing.x").steps, "***") == 0
    assert data == {"users": [{"email": "***"}, {"name": "b"}], "token": "***"}
    assert redact_at(data, parse_path("result.*").steps, 0) == 2
