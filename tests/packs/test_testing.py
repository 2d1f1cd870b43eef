"""Pack tests: the expectation matcher and the runner (record/replay: test_recording.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.packs.loader import LoadedPack, load_pack
from catalyst_mcp.packs.provider import PackProvider
from catalyst_mcp.packs.recording import recording_path
from catalyst_mcp.packs.schema import TestExpectation as Expectation
from catalyst_mcp.packs.testing import Observed, check, mismatches, run_pack
from tests.packs.conftest import people_pack, write_pack

# ---- the matcher ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual", "problems"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, []),
        ({"rows": [{"id": 1}]}, {"rows": [{"id": 1, "x": 0}, {"id": 2}]}, []),
        ([1, 2], [1, 2, 3], []),
        (1, 1.0, []),
        (None, None, []),
        ({"a": {"b": [1, {"c": "x"}]}}, {"a": {"b": [1, {"c": "x", "d": 1}]}}, []),
        ({"a": 1}, {"b": 1}, ["structured.a: missing (keys: b)"]),
        ({"a": 1}, [1], ["structured: expected an object, got a list [1]"]),
        ([1], {"a": 1}, ['structured: expected a list, got an object {"a":1}']),
        ([1, 2, 3], [1, 2], ["structured: expected at least 3 items, got 2"]),
        (
            {"rows": [{"n": "Ada"}]},
            {"rows": [{"n": "Grace"}]},
            ['structured.rows[0].n: expected "Ada", got "Grace"'],
        ),
        (True, 1, ["structured: expected true, got 1"]),
        (1, True, ["structured: expected 1, got true"]),
        ("1", 1, ['structured: expected "1", got 1']),
        ({"a b": 1}, {"a b": 2}, ["structured['a b']: expected 1, got 2"]),
    ],
    ids=[
        "object-subset",
        "list-prefix-of-objects",
        "list-prefix",
        "int-equals-float",
        "null",
        "nested",
        "missing-key",
        "object-vs-list",
        "list-vs-object",
        "list-too-short",
        "scalar-differs",
        "bool-is-not-int",
        "int-is-not-bool",
        "string-is-not-int",
        "odd-key",
    ],
)
def test_mismatches(expected: Any, actual: Any, problems: list[str]) -> None:
    assert mismatches(expected, actual) == problems


def test_check_is_error_both_ways() -> None:
    assert check(Expectation(is_error=True), Observed(False, "3 rows")) == [
        "expected an error, got success: 3 rows"
    ]
    assert check(Expectation(), Observed(True, "invalid arguments: x")) == [
        "expected success, got an error: invalid arguments: x"
    ]
    assert check(Expectation(is_error=True, text_contains="x"), Observed(True, "bad x")) == []


def test_check_structured_and_text() -> None:
    observed = Observed(False, "1 row:\nname: Ada", {"rows": [{"name": "Ada"}]})
    assert check(Expectation(structured={"rows": [{"name": "Ada"}]}), observed) == []
    assert check(Expectation(text_contains=["1 row", "Ada"]), observed) == []
    assert check(Expectation(structured={"rows": []}), Observed(False, "text")) == [
        "structured: expected structured content, got none"
    ]
    [reason] = check(Expectation(text_contains="Grace"), observed)
    assert reason.startswith("text: does not contain 'Grace' (text: '1 row: name: Ada')")


def test_check_caps_the_reasons() -> None:
    expected = {"rows": [{"n": i} for i in range(20)]}
    actual = {"rows": [{"n": -1} for _ in range(20)]}
    reasons = check(Expectation(structured=expected), Observed(False, "", actual))
    assert len(reasons) == 11
    assert reasons[-1] == "... and 10 more differences"


# ---- the runner, on SQLite ------------------------------------------------------------------


def people_with_tests(url: str) -> dict[str, Any]:
    data = people_pack(url)
    data["resources"] = [
        {
            "uri_template": "people://{id}",
            "name": "person",
            "mime_type": "application/json",
            "parameters": {"id": {"type": "integer"}},
            "sql": {"connection": "db", "statement": "SELECT id, name FROM people WHERE id = :id"},
        },
        {"uri": "people://about", "name": "about", "text": "People and their emails."},
    ]
    data["prompts"] = [
        {
            "name": "greet",
            "arguments": [{"name": "who", "required": True}],
            "messages": [{"role": "user", "text": "Greet {who}."}],
        }
    ]
    data["tests"] = [
        {"name": "finds Ada", "tool": "find", "arguments": {"name": "Ad"},
         "expect": {"structured": {"rows": [{"id": 1, "name": "Ada"}]}}},
        {"name": "wrong on purpose", "tool": "find", "arguments": {"name": "Ada"},
         "expect": {"structured": {"rows": [{"name": "Grace"}]}, "text_contains": "nobody"}},
        {"name": "bad arguments are errors", "tool": "find", "arguments": {"name": 5},
         "expect": {"is_error": True, "text_contains": "must be of type string"}},
        {"name": "a write is refused", "tool": "rename", "arguments": {"id": 1},
         "expect": {"is_error": True, "text_contains": "read-only"}},
        {"name": "reads a record", "read": "people://2",
         "expect": {"structured": {"name": "Grace"}}},
        {"name": "reads text", "read": "people://about",
         "expect": {"text_contains": "emails"}},
        {"name": "an unknown record is an error", "read": "people://99",
         "expect": {"is_error": True, "text_contains": "not found"}},
        {"name": "a read takes no arguments", "read": "people://1", "arguments": {"id": 1}},
        {"name": "gets a prompt", "prompt": "greet", "arguments": {"who": "Ada"},
         "expect": {"structured": {"messages": [{"role": "user"}]},
                    "text_contains": "user: Greet Ada."}},
        {"name": "a prompt's missing argument is an error", "prompt": "greet",
         "expect": {"is_error": True, "text_contains": "who"}},
    ]  # fmt: skip
    return data


async def test_run_pack_on_sqlite(tmp_path: Path, sqlite_db: Path) -> None:
    loaded = load_pack(write_pack(tmp_path, "p.yaml", people_with_tests(f"sqlite:///{sqlite_db}")))
    run = await run_pack(loaded)
    outcome = {r.name: r.reasons for r in run.results}
    assert outcome.pop("wrong on purpose") == (
        'structured.rows[0].name: expected "Grace", got "Ada"',
        "text: does not contain 'nobody' (text: '1 row: id: 1, name: Ada')",
    )
    assert outcome.pop("a read takes no arguments") == (
        "a read test takes no arguments: put them in the URI",
    )
    assert outcome == dict.fromkeys(outcome, ())  # every other test passes
    assert run.failed == 2
    assert run.error is None
    assert run.recording is None  # no REST connection: nothing to record


async def test_a_pack_without_tests_is_not_even_started(tmp_path: Path) -> None:
    loaded = load_pack(write_pack(tmp_path, "p.yaml", people_pack("sqlite:////nonexistent.db")))
    run = await run_pack(loaded, "record")
    assert run.results == []
    assert run.failed == 0
    assert not recording_path(loaded.file).exists()


async def test_a_pack_that_cannot_start_is_one_failure(tmp_path: Path, sqlite_db: Path) -> None:
    loaded = load_pack(write_pack(tmp_path, "p.yaml", people_with_tests(f"sqlite:///{sqlite_db}")))

    def broken(loaded: LoadedPack) -> PackProvider:
        raise RuntimeError("no driver")

    run = await run_pack(loaded, make_provider=broken)
    assert run.error == "cannot start the pack: RuntimeError: no driver"
    assert run.failed == 1
