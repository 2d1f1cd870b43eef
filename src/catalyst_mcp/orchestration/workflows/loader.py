"""One workflow file → a validated, compiled :class:`WorkflowPlan`; every problem found is
reported as ``file:line:col: where: what`` (a :class:`ConfigError` lists them all).

Checked at load, so that a run never fails on what a file says: the format (pydantic), every
template expression (JMESPath), ``steps.<id>`` references to steps that exist, step ids used
once, the input and output schemas (JSON Schema), cron expressions and time zones, and the
event patterns of ``on:`` triggers (each must name a known event type).

YAML 1.1 reads a bare ``on`` key as the boolean true; it is taken as ``on``.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
from croniter import croniter
from pydantic import ValidationError

from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.orchestration.events.types import expand_patterns
from catalyst_mcp.orchestration.workflows.plan import StepPlan, TriggerPlan, WorkflowPlan
from catalyst_mcp.orchestration.workflows.schema import Step, Trigger, Workflow
from catalyst_mcp.orchestration.workflows.templating import (
    Template,
    TemplateError,
    compile_template,
)
from catalyst_mcp.yamlsource import LocatedYaml, read_yaml

__all__ = ["SUFFIXES", "is_workflow_name", "load_workflow"]

SUFFIXES = (".yaml", ".yml")
Loc = tuple[str | int, ...]
_STEP_REF = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*)")


def is_workflow_name(name: str) -> bool:
    """Whether a file of this name in the workflows folder is a workflow file."""
    return name.endswith(SUFFIXES) and not name.startswith(".")


def load_workflow(file: Path) -> WorkflowPlan:
    """The workflow of ``file``, validated completely; :class:`ConfigError` otherwise."""
    source = read_yaml(file)
    if not isinstance(source.data, dict):
        raise ConfigError([source.problem_at((), "a workflow must be a mapping (name: ...)")])
    _bare_on(source)
    try:
        workflow = Workflow.model_validate(source.data)
    except ValidationError as error:
        raise ConfigError(_located(error, source)) from error
    problems: list[ConfigProblem] = []
    compiler = _Compiler(source, problems)
    steps = tuple(compiler.step(step, ("steps", i)) for i, step in enumerate(workflow.steps))
    output = (
        compiler.template(workflow.output, ("output",)) if workflow.output is not None else None
    )
    compiler.check_references(output, ("output",))
    _check_schema(workflow.input, ("input",), source, problems)
    if workflow.output_schema is not None:
        _check_schema(workflow.output_schema, ("output_schema",), source, problems)
    for i, schedule in enumerate(workflow.schedules):
        loc: Loc = ("schedules", i)
        if not croniter.is_valid(schedule.cron):
            problems.append(_problem(source, (*loc, "cron"), f"invalid cron {schedule.cron!r}"))
        try:
            zoneinfo.ZoneInfo(schedule.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(
                _problem(source, (*loc, "timezone"), f"unknown time zone {schedule.timezone!r}")
            )
    triggers = tuple(compiler.trigger(trigger, ("on", i)) for i, trigger in enumerate(workflow.on))
    if problems:
        raise ConfigError(problems)
    tools = frozenset(
        name
        for step in steps
        for s in step.walk()
        for name in (s.tool, s.compensate[0] if s.compensate else None)
        if name is not None
    )
    return WorkflowPlan(workflow, steps, output, file, tools, triggers)


def _bare_on(source: LocatedYaml) -> None:
    """``on:`` as YAML 1.1 reads it (the key ``True``) becomes ``on``, lines and all."""
    data = source.data
    if True not in data or "on" in data:
        return
    source.data = {("on" if key is True else key): value for key, value in data.items()}
    for table in (source.lines, source.columns):
        for path in [p for p in table if p[:1] == (True,)]:
            table[("on", *path[1:])] = table.pop(path)


class _Compiler:
    def __init__(self, source: LocatedYaml, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        self.ids: set[str] = set()

    def template(self, value: Any, loc: Loc) -> Template:
        try:
            return compile_template(value)
        except TemplateError as error:
            self.problems.append(_problem(self.source, loc, str(error)))
            return compile_template(None)

    def expression(self, value: Any, loc: Loc) -> Template:
        """``when``/``foreach``: a ``${...}`` string, a bare expression, or a literal."""
        if isinstance(value, str) and "${" not in value:
            value = "${" + value + "}"
        return self.template(value, loc)

    def check_references(self, template: Template | None, loc: Loc) -> None:
        if template is None:
            return
        for text in template.expressions():
            for name in _STEP_REF.findall(text):
                if name not in self.ids:
                    self.problems.append(
                        _problem(self.source, loc, f"steps.{name} names no earlier step")
                    )

    def trigger(self, trigger: Trigger, loc: Loc) -> TriggerPlan:
        try:
            types = expand_patterns([trigger.event])
        except ValueError as error:
            self.problems.append(_problem(self.source, (*loc, "event"), str(error)))
            types = frozenset()
        when = self.expression(trigger.when, (*loc, "when")) if trigger.when is not None else None
        inputs = self.template(trigger.inputs, (*loc, "inputs"))
        for template, part in ((when, "when"), (inputs, "inputs")):
            for name in _refs(template):
                message = f"steps.{name}: a trigger sees only the event (${{event...}})"
                self.problems.append(_problem(self.source, (*loc, part), message))
        return TriggerPlan(
            index=loc[-1] if isinstance(loc[-1], int) else 0,
            types=types,
            when=when,
            inputs=inputs,
            as_user=trigger.as_user,
            roles=tuple(trigger.roles),
        )

    def step(self, step: Step, loc: Loc) -> StepPlan:
        if step.id in self.ids:
            message = f"step id {step.id!r} is used twice"
            self.problems.append(_problem(self.source, (*loc, "id"), message))
        when = self.expression(step.when, (*loc, "when")) if step.when is not None else None
        foreach = (
            self.expression(step.foreach, (*loc, "foreach")) if step.foreach is not None else None
        )
        arguments = self.template(step.arguments, (*loc, "arguments"))
        for template, part in ((when, "when"), (foreach, "foreach"), (arguments, "arguments")):
            self.check_references(template, (*loc, part))
        parallel: tuple[StepPlan, ...] = ()
        if step.parallel is not None:
            before = set(self.ids)
            parallel = tuple(
                self.step(child, (*loc, "parallel", i)) for i, child in enumerate(step.parallel)
            )
            # steps of one group run together: none may read another's result
            for i, child in enumerate(parallel):
                mine = {s.id for s in child.walk()}
                others = {s.id for c in parallel if c is not child for s in c.walk()}
                for s in child.walk():
                    for template in (s.arguments, s.when, s.foreach):
                        refs = set(_refs(template)) & (others - before - mine)
                        for name in sorted(refs):
                            self.problems.append(
                                _problem(
                                    self.source,
                                    (*loc, "parallel", i),
                                    f"steps.{name} runs in the same parallel group",
                                )
                            )
        compensate = None
        if step.compensate is not None:
            template = self.template(step.compensate.arguments, (*loc, "compensate", "arguments"))
            compensate = (step.compensate.tool, template)
        self.ids.add(step.id)
        return StepPlan(
            id=step.id,
            tool=step.tool,
            arguments=arguments,
            parallel=parallel,
            when=when,
            foreach=foreach,
            concurrency=step.concurrency,
            timeout=step.timeout_seconds,
            retry=step.retry,
            retry_safe=step.retry_safe,
            on_error=step.on_error,
            compensate=compensate,
        )


def _refs(template: Template | None) -> Iterable[str]:
    if template is None:
        return []
    return [name for text in template.expressions() for name in _STEP_REF.findall(text)]


def _check_schema(
    schema: dict[str, Any], loc: Loc, source: LocatedYaml, problems: list[ConfigProblem]
) -> None:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        path = ".".join(str(p) for p in error.absolute_path)
        where = f" at {path}" if path else ""
        problems.append(_problem(source, loc, f"not a valid JSON Schema{where}: {error.message}"))


def _problem(source: LocatedYaml, loc: Loc, message: str) -> ConfigProblem:
    where = ".".join(str(p) for p in loc)
    return source.problem_at(loc, f"{where}: {message}")


def _located(error: ValidationError, source: LocatedYaml) -> list[ConfigProblem]:
    problems = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        where = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; docs/workflows.md lists them all)"
        elif err["type"] == "missing":
            msg = "required key missing"
        problems.append(source.problem_at(loc, f"{where}: {msg}"))
    return problems
