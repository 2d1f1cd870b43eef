"""Arguments from a tool's input schema: what each one is, values parsed by type, checks."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.cli.schemaargs import (
    ArgumentError,
    Parameter,
    parameters,
    parse_pairs,
    parse_value,
    schema_problem,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "limit": {"type": "integer", "description": "How many.", "default": 10},
        "query": {"type": "string", "description": "What to   look\nfor."},
        "mode": {"type": "string", "enum": ["fast", "exact"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "when": {"type": ["string", "null"]},
        "anything": {},
        "A": {"type": "number", "title": "A"},
    },
    "required": ["query", "mode"],
}


def test_parameters_required_first_with_a_summary_each() -> None:
    found = parameters(SCHEMA)
    assert [p.name for p in found] == ["query", "mode", "limit", "tags", "when", "anything", "A"]
    summaries = [p.summary() for p in found]
    assert summaries[0] == "query (string, required): What to look for."
    assert summaries[1] == 'mode (string, required) [one of: "fast", "exact"]'
    assert summaries[2] == "limit (integer, optional): How many. [default: 10]"
    assert summaries[3] == "tags (array of string, optional)"
    assert summaries[4] == "when (string or null, optional)"
    assert summaries[5] == "anything (any, optional)"
    assert summaries[6] == "A (number, optional)"  # a title repeating the name is left out
    assert parameters({"type": "object"}) == []
    assert parameters("nonsense") == []


@pytest.mark.parametrize(
    ("schema", "text", "value"),
    [
        ({"type": "integer"}, " 42 ", 42),
        ({"type": "number"}, "2.5", 2.5),
        ({"type": "number"}, "3", 3),
        ({"type": "boolean"}, "Yes", True),
        ({"type": "boolean"}, "false", False),
        ({"type": "string"}, "  spaced  ", "  spaced  "),
        ({"type": "string"}, "42", "42"),
        ({"type": "array"}, "[1, 2]", [1, 2]),
        ({"type": "object"}, '{"a": 1}', {"a": 1}),
        ({"type": ["integer", "string"]}, "7", 7),
        ({"type": ["integer", "string"]}, "seven", "seven"),
        ({"type": ["string", "null"]}, "null", None),
        ({"anyOf": [{"type": "integer"}, {"type": "boolean"}]}, "true", True),
        ({}, '{"x": [1]}', {"x": [1]}),
        ({}, "plain words", "plain words"),
        ({"enum": [1, 2]}, "2", 2),
        ({"type": "null"}, "null", None),
    ],
)
def test_values_are_parsed_by_type(schema: dict[str, Any], text: str, value: Any) -> None:
    parsed = parse_value(Parameter("p", schema, True), text)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("schema", "text", "message"),
    [
        ({"type": "integer"}, "1.5", "p: expected an integer, got '1.5'"),
        ({"type": "number"}, "many", "p: expected a number, got 'many'"),
        ({"type": "boolean"}, "maybe", "p: expected true or false, got 'maybe'"),
        ({"type": "object"}, "[1]", "p: expected a JSON object, got list"),
        ({"type": "array"}, "[1", "p: expected a JSON array: "),
        ({"type": "string", "enum": ["a", "b"]}, "c", 'p: must be one of "a", "b"'),
        ({"type": ["integer", "boolean"]}, "x", "p: expected integer or boolean, got 'x'"),
    ],
)
def test_bad_values_say_why(schema: dict[str, Any], text: str, message: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        parse_value(Parameter("p", schema, True), text)
    assert str(caught.value).startswith(message)


def test_pairs() -> None:
    parsed = parse_pairs(["limit=5", "query=a=b", 'tags=["x"]', "extra=1"], SCHEMA)
    assert parsed == {"limit": 5, "query": "a=b", "tags": ["x"], "extra": 1}
    with pytest.raises(ArgumentError, match="expected key=value, got 'oops'"):
        parse_pairs(["oops"], SCHEMA)
    with pytest.raises(ArgumentError, match="limit: expected an integer"):
        parse_pairs(["limit=lots"], SCHEMA)


def test_schema_problem() -> None:
    assert schema_problem(SCHEMA, {"query": "q", "mode": "fast"}) is None
    assert schema_problem(SCHEMA, {"query": "q"}) == "'mode' is a required property"
    assert schema_problem(SCHEMA, {"query": "q", "mode": "fast", "limit": "x"}) == (
        "limit: 'x' is not of type 'integer'"
    )
    assert schema_problem({"type": "nonsense-type"}, {}) is None  # an invalid schema: not judged
    assert schema_problem({"$ref": "https://example.invalid/s.json"}, {}) is None
    assert schema_problem(None, {"a": 1}) is None
