"""Conditions: what they can read (data, never Python), what they refuse when loaded, and how
they fail when a value does not fit."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.orchestration.rules.expression import (
    MAX_LENGTH,
    ExpressionError,
    compile_expression,
)

VARIABLES: dict[str, Any] = {
    "user": "alice",
    "roles": ("analyst", "viewer"),
    "tool": "db__query",
    "arguments": {"sql": "SELECT 1", "limit": 50, "rows": [{"id": 1}], "flag": True},
    "result": None,
}


def holds(source: str, variables: dict[str, Any] | None = None) -> bool:
    return compile_expression(source).evaluate(VARIABLES if variables is None else variables)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('arguments.limit > 10 and "analyst" in roles', True),
        ('tool.startswith("db__") and "select" in arguments.sql.lower()', True),
        ('arguments["limit"] == 50', True),
        ("arguments.rows[0].id == 1", True),
        ("arguments.rows[5] == null", True),  # out of range: None
        ("arguments.missing.deeper == null", True),
        ("arguments.flag == true and not false", True),
        ('glob(tool, "db__*") and len(arguments.rows) == 1', True),
        ('user in ["bob", "carol"]', False),
        ("len(arguments.nothing) == 0", True),
        ('arguments.limit + 1 == 51 and str(arguments.limit) == "50"', True),
        ("arguments.limit > 100 if arguments.flag else true", False),
    ],
)
def test_conditions_read_the_call(source: str, expected: bool) -> None:
    assert holds(source) is expected


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("arguments.__class__", "field names may not start with '_'"),
        ("arguments.__class__.__init__.__globals__", "field names may not start with '_'"),
        ("().__class__.__bases__", "field names may not start with '_'"),
        ("tool._secret", "field names may not start with '_'"),
        ('arguments.get("x")', "unknown method 'get'"),
        ('"".join(roles)', "unknown method 'join'"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("__import__('os')", "unknown function '__import__'"),
        ("getattr(arguments, 'x')", "unknown function 'getattr'"),
        ("[r for r in roles]", "a comprehension is not allowed"),
        ("lambda: 1", "a lambda is not allowed"),
        ("(x := 1)", "an assignment (:=) is not allowed"),
        ("9 ** 999999", "'**' is not allowed"),
        ("1 << 99999", "'<<' is not allowed"),
        ("{'a': 1}", "a mapping literal is not allowed"),
        ("f'{arguments}'", "an f-string is not allowed"),
        ("secret", "unknown name 'secret'"),
        ("len", "'len' is a function: call it"),
        ("arguments.limit >", "not a valid expression"),
        ("", "the condition is empty"),
        ("1 + " * MAX_LENGTH + "1", f"longer than {MAX_LENGTH} characters"),
        (" or ".join(["true"] * 250), "too complex"),
    ],
)
def test_what_is_not_data_is_refused_when_loaded(source: str, problem: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    assert problem in caught.value.message


def test_evaluation_never_reaches_a_python_attribute() -> None:
    # even a value that is not JSON only yields its keys (mappings) or nothing
    condition = compile_expression("arguments.items == null and arguments.keys == null")
    assert condition.evaluate({"arguments": {"a": 1}})
    with pytest.raises(ExpressionError, match="has no field"):
        compile_expression("arguments.limit.real").evaluate(VARIABLES)


def test_a_value_that_does_not_fit_is_an_evaluation_error() -> None:
    with pytest.raises(ExpressionError, match="missing value"):
        holds("arguments.nothing > 3")
    with pytest.raises(ExpressionError):
        holds('arguments.sql * 1000000 == ""')  # longer than simpleeval allows


def test_names_read_are_known_at_load() -> None:
    condition = compile_expression('result.rows > 1 and "x" in roles and true')
    assert condition.names == {"result", "roles"}


def test_evaluation_is_reentrant_across_expressions() -> None:
    first = compile_expression("arguments.limit == 50")
    second = compile_expression("user == 'alice'")
    assert first.evaluate(VARIABLES) and second.evaluate(VARIABLES)
    assert not first.evaluate({**VARIABLES, "arguments": {"limit": 1}})
