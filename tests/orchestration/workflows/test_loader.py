"""Workflow files are checked completely at load; every problem says file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalyst_mcp.errors import ConfigError
from catalyst_mcp.orchestration.workflows.loader import load_workflow
from catalyst_mcp.orchestration.workflows.templating import TemplateError, compile_template
from tests.orchestration.workflows.support import write


def problems(tmp_path: Path, text: str) -> list[str]:
    file = write(tmp_path, "bad", text)
    with pytest.raises(ConfigError) as error:
        load_workflow(file)
    return [str(p).replace(str(file), "F") for p in error.value.problems]


def test_a_valid_file_compiles(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "ok",
        """
        name: ok
        steps:
          - {id: a, tool: x__y, arguments: {v: "${inputs.v}"}}
          - {id: b, tool: x__z, arguments: {v: "${steps.a.result}"}, compensate: {tool: x__u}}
        schedules: [{cron: "*/5 * * * *", timezone: Europe/Paris}]
        """,
    )
    plan = load_workflow(file)
    assert plan.name == "ok" and [s.id for s in plan.steps] == ["a", "b"]
    assert plan.tools == {"x__y", "x__z", "x__u"}


def test_format_problems_are_located(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        name: bad
        steps:
          - id: a
            tool: x__y
            colour: red
          - id: b
        """,
    )
    assert "F:5:5: steps.0.colour: unknown key" in found[0]
    assert "F:6:5: steps.1: a step has either 'tool' or 'parallel'" in found[1]


def test_expressions_references_schemas_and_schedules_are_checked(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        name: bad
        input: {type: object, properties: {n: {type: nonsense}}}
        steps:
          - {id: a, tool: x__y, arguments: {v: "${inputs.[}"}}
          - {id: b, tool: x__y, arguments: {v: "${steps.later.result}"}}
          - {id: a, tool: x__y}
        schedules:
          - {cron: "every day", timezone: Mars/Base}
        """,
    )
    text = "\n".join(found)
    assert "F:4:25: steps.0.arguments: invalid expression ${inputs.[}" in text
    assert "steps.1.arguments: steps.later names no earlier step" in text
    assert "steps.2.id: step id 'a' is used twice" in text
    assert "input: not a valid JSON Schema" in text
    assert "schedules.0.cron: invalid cron 'every day'" in text
    assert "schedules.0.timezone: unknown time zone 'Mars/Base'" in text


def test_a_parallel_step_may_not_read_a_sibling(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        name: bad
        steps:
          - id: g
            parallel:
              - {id: a, tool: x__y}
              - {id: b, tool: x__y, arguments: {v: "${steps.a.result}"}}
        """,
    )
    assert any("steps.a runs in the same parallel group" in p for p in found)


def test_templates_whole_values_text_and_escapes() -> None:
    data = {"inputs": {"n": 3, "s": "x"}, "steps": {}}
    assert compile_template("${inputs.n}").render(data) == 3
    assert compile_template("n=${inputs.n} s=${inputs.s}").render(data) == "n=3 s=x"
    assert compile_template("$${literal}").render(data) == "${literal}"
    assert compile_template({"a": ["${inputs.s}"]}).render(data) == {"a": ["x"]}
    assert compile_template({"plain": 1}).static
    with pytest.raises(TemplateError):
        compile_template("${inputs.[}")


def test_templates_cannot_reach_python() -> None:
    data = {"inputs": {}}
    # JMESPath has no attribute access or calls: these are plain (missing) keys or errors
    assert compile_template("${inputs.__class__}").render(data) is None
    with pytest.raises(TemplateError, match="Unknown function"):
        compile_template("${__import__('os')}").render(data)
