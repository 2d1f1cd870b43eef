"""Event types, patterns and the envelope."""

from __future__ import annotations

import dataclasses

import pytest

from catalyst_mcp.orchestration.events.types import (
    EVENT_TYPES,
    CallRefused,
    Envelope,
    expand_patterns,
    payload,
)


def test_patterns_expand_to_known_types() -> None:
    assert expand_patterns(["call.*"]) == {"call.finished", "call.refused"}
    assert expand_patterns(["*"]) == set(EVENT_TYPES)
    assert expand_patterns(["workflow.run_finished", "approval.*"]) == {
        "workflow.run_finished",
        "approval.requested",
        "approval.decided",
    }


def test_a_pattern_naming_no_type_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"'cal\.\*' matches no event type \(known: call\.fin"):
        expand_patterns(["cal.*"])


def test_every_type_is_a_slotted_dataclass_named_by_its_type() -> None:
    for name, cls in EVENT_TYPES.items():
        assert name == cls.TYPE
        assert dataclasses.is_dataclass(cls) and hasattr(cls, "__slots__")
        assert all(
            f.type in ("str", "int", "bool", "float | None", "str | None", "float")
            for f in dataclasses.fields(cls)
        ), name


def test_envelope_round_trip() -> None:
    event = CallRefused("crm", "crm__delete", "denied", "bob", "user", "mcp", "no")
    envelope = Envelope.wrap(event, "ev_1", 1_800_000_000.25, "host:1:ab")
    data = envelope.to_json()
    assert data == {
        "id": "ev_1",
        "type": "call.refused",
        "time": "2027-01-15T08:00:00.250Z",
        "source": "host:1:ab",
        "data": payload(event),
    }
    again = Envelope.from_json(data)
    assert again == envelope
    with pytest.raises(TypeError):
        Envelope.from_json({**data, "data": [1]})


def test_the_docs_list_every_type_and_its_fields() -> None:
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "events.md").read_text()
    for name, cls in EVENT_TYPES.items():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
        assert len(rows) == 1, f"docs/events.md has no row for {name}"
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            assert f"`{field.name}`" in rows[0], f"{name}: {field.name} is not documented"
