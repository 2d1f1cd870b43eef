"""The digest of a tool's definition: what the model is told, every byte of it, and nothing
else."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.trust.digest import canonical, definition, digest

TOOL: dict[str, Any] = {
    "name": "read",
    "title": "Read",
    "description": "Read a file.",
    "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}},
    "outputSchema": {"type": "object"},
    "annotations": {"readOnlyHint": True},
}


def test_the_order_of_keys_does_not_count() -> None:
    shuffled = {
        "annotations": {"readOnlyHint": True},
        "inputSchema": {"properties": {"path": {"type": "string"}}, "type": "object"},
        "outputSchema": {"type": "object"},
        "description": "Read a file.",
        "title": "Read",
        "name": "read",
    }
    assert digest(shuffled) == digest(TOOL)
    assert canonical({"b": {"d": 1, "c": 2}, "a": 0}) == b'{"a":0,"b":{"c":2,"d":1}}'


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "read2"),
        ("title", "Read!"),
        ("description", "Read a file. "),  # one space
        ("description", "Read a file\u200b."),  # an invisible character
        ("inputSchema", {"type": "object", "properties": {"path": {"type": "integer"}}}),
        ("outputSchema", {"type": "object", "required": []}),
        ("annotations", {"readOnlyHint": False}),
        ("annotations", {"readOnlyHint": True, "destructiveHint": False}),
    ],
)
def test_every_pinned_field_counts(field: str, value: Any) -> None:
    assert digest({**TOOL, field: value}) != digest(TOOL)


def test_fields_that_are_not_pinned_do_not_count() -> None:
    other = {**TOOL, "icons": [{"src": "https://x/i.png"}], "_meta": {"k": 1}, "execution": {}}
    assert digest(other) == digest(TOOL)
    assert set(definition(other)) == set(TOOL)


def test_absent_and_null_are_the_same() -> None:
    bare = {"name": "read", "inputSchema": {"type": "object"}}
    assert digest({**bare, "description": None, "annotations": None}) == digest(bare)
    assert digest({**bare, "annotations": {}}) != digest(bare)  # an empty object is something


def test_values_json_cannot_hold_as_they_are_still_digest() -> None:
    huge = {**TOOL, "inputSchema": {"type": "integer", "maximum": 2**70}}
    assert len(digest(huge)) == 64
    assert digest(huge) != digest({**huge, "inputSchema": {"type": "integer", "maximum": 2**71}})
