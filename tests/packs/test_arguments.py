"""Declared parameters become the inputSchema; call arguments are checked against them."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.arguments import check_arguments, input_schema
from catalyst_mcp.packs.schema import ParamSpec

PARAMS = {
    "name": ParamSpec(type="string", required=True, minLength=1, maxLength=5, pattern="^[a-z]+$"),
    "limit": ParamSpec(type="integer", default=10, minimum=1, maximum=100),
    "ratio": ParamSpec(type="number"),
    "flag": ParamSpec(type="boolean"),
    "kind": ParamSpec(type="string", enum=["a", "b"]),
}


def test_input_schema() -> None:
    schema = input_schema(PARAMS)
    assert schema["required"] == ["name"]
    assert schema["properties"]["limit"] == {
        "type": "integer",
        "default": 10,
        "minimum": 1,
        "maximum": 100,
    }
    assert schema["properties"]["name"]["pattern"] == "^[a-z]+$"


def test_defaults_are_filled_and_absent_optionals_are_null() -> None:
    assert check_arguments(PARAMS, {"name": "ab"}) == {
        "name": "ab",
        "limit": 10,
        "ratio": None,
        "flag": None,
        "kind": None,
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "missing required argument 'name'"),
        ({"name": 3}, "argument 'name' must be of type string, got integer"),
        ({"name": "ab", "limit": "5"}, "argument 'limit' must be of type integer, got string"),
        ({"name": "ab", "limit": True}, "argument 'limit' must be of type integer, got boolean"),
        ({"name": "ab", "limit": 1.5}, "argument 'limit' must be of type integer, got number"),
        ({"name": "ab", "limit": 0}, "argument 'limit' must be >= 1"),
        ({"name": "ab", "limit": 101}, "argument 'limit' must be <= 100"),
        ({"name": ""}, "at least 1 characters"),
        ({"name": "abcdef"}, "at most 5 characters"),
        ({"name": "AB"}, "must match the pattern"),
        ({"name": "ab", "kind": "c"}, "argument 'kind' must be one of ['a', 'b']"),
        ({"name": "ab", "flag": "yes"}, "argument 'flag' must be of type boolean"),
        ({"name": "ab", "other": 1}, "unknown argument 'other'"),
    ],
)
def test_bad_arguments(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(PackError, match="invalid arguments") as info:
        check_arguments(PARAMS, arguments)
    assert message in info.value.message


def test_every_problem_is_named_and_non_objects_refused() -> None:
    with pytest.raises(PackError) as info:
        check_arguments(PARAMS, {"limit": 0, "x": 1})
    assert info.value.message.count(";") == 2
    with pytest.raises(PackError, match="must be an object"):
        check_arguments(PARAMS, [1])


def test_number_accepts_integers() -> None:
    assert check_arguments(PARAMS, {"name": "a", "ratio": 2})["ratio"] == 2
