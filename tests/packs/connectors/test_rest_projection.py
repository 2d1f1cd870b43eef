"""The compiled JMESPath projections give exactly what the jmespath interpreter gives; node kinds
they do not cover are left to the interpreter."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest

from catalyst_mcp.packs.connectors.rest import _closure

DATA: list[Any] = [
    {
        "items": [
            {"id": 1, "title": "A", "user": {"login": "ada"}, "labels": [{"name": "x"}, {}]},
            {"id": 2, "title": None, "user": None, "labels": []},
            {"id": 3, "labels": [{"name": "y"}, {"name": "z"}], "nested": [[1, 2], 3, [4]]},
            "not an object",
            None,
        ],
        "total": 3,
        "stock": {"available": False},
        "matrix": [[1, [2]], [3], 4],
    },
    [{"number": 1, "user": {"login": "ada"}}, {"number": 2}],
    {"items": {"not": "a list"}},
    {"items": None},
    "text",
    7,
    None,
    [],
    {},
]

EXPRESSIONS = [
    "items",
    "total",
    "missing",
    "stock.available",
    "items[].id",
    "items[*].id",
    "items[].{id: id, title: title}",
    "items[].{id: id, author: user.login, labels: labels[].name}",
    "{id: items[0].id, n: total, last: items[-1], far: items[99], neg: items[-99]}",
    "{issues: [].{number: number, author: user.login}}",
    "[].number",
    "[total, stock.available, missing]",
    "items[].nested[]",
    "matrix[]",
    "matrix[][]",
    "items[0]",
    "items[0].labels[1].name",
    "items | [0]",
    "items[].labels[].name",
    '`{"a": 1}`',
    "@",
    "{a: `1`, b: @.total}",
    "items[].[id, title]",
    "*.available",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
@pytest.mark.parametrize("data", DATA, ids=repr)
def test_closures_match_the_interpreter(expression: str, data: Any) -> None:
    compiled = jmespath.compile(expression)
    closure = _closure(compiled.parsed)
    if expression.startswith("*"):
        assert closure is None  # a value projection: the interpreter's job
        return
    assert closure is not None
    assert closure(data) == compiled.search(data)


@pytest.mark.parametrize(
    "expression", ["items[?id > `1`]", "length(items)", "items[1:2]", "items.*", "a || b", "!a"]
)
def test_other_node_kinds_fall_back(expression: str) -> None:
    assert _closure(jmespath.compile(expression).parsed) is None
