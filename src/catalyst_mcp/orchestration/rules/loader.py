"""Rule files: one YAML file → its rules, validated whole, every problem as ``file:line:col``.

A file holds a list of rules, or a mapping with ``rules:`` (and nothing else). Rules stored
in the database are validated the same way (:func:`load_stored`), located by their id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.orchestration.rules.schema import RuleSpec
from catalyst_mcp.yamlsource import LocatedYaml, load_yaml, read_yaml

__all__ = ["LoadedRule", "load_rules_file", "load_rules_text", "load_stored"]


@dataclass(frozen=True, slots=True)
class LoadedRule:
    """A valid rule and where it came from: ``file:line`` or ``stored``."""

    spec: RuleSpec
    source: str


def load_rules_file(file: Path) -> list[LoadedRule]:
    """The rules of ``file``; :class:`ConfigError` lists every problem."""
    return _load(read_yaml(file))


def load_rules_text(text: str, file: str) -> list[LoadedRule]:
    """The rules of YAML ``text`` (named ``file`` in problems)."""
    return _load(load_yaml(text, file))


def _load(source: LocatedYaml) -> list[LoadedRule]:
    data = source.data
    prefix: tuple[str | int, ...] = ()
    if isinstance(data, dict):
        extra = sorted(str(k) for k in data if k != "rules")
        if extra:
            raise ConfigError(
                [
                    source.problem_at(
                        (extra[0],),
                        f"unknown key {extra[0]!r} (a rules file has 'rules:', a list of rules)",
                    )
                ]
            )
        data, prefix = data.get("rules"), ("rules",)
    if data is None:
        return []  # an empty file: no rules
    if not isinstance(data, list):
        raise ConfigError(
            [source.problem_at(prefix, "expected a list of rules (or 'rules:' with one)")]
        )
    rules: list[LoadedRule] = []
    problems: list[ConfigProblem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        where = (*prefix, index)
        if not isinstance(item, dict):
            problems.append(source.problem_at(where, f"rule {index + 1}: expected a mapping"))
            continue
        try:
            spec = RuleSpec.model_validate(item)
        except ValidationError as exc:
            problems.extend(_located(exc, source, where, _label(item, index)))
            continue
        line = source.line_of(where)
        if spec.id in seen:
            problems.append(
                source.problem_at(
                    (*where, "id"),
                    f"rule id {spec.id!r} is used twice (first on line {seen[spec.id]})",
                )
            )
            continue
        seen[spec.id] = line or 0
        rules.append(LoadedRule(spec, f"{source.file}:{line}" if line else source.file))
    if problems:
        raise ConfigError(problems)
    return rules


def load_stored(
    rows: Iterable[tuple[str, Mapping[str, Any]]],
) -> tuple[list[LoadedRule], list[ConfigProblem]]:
    """Rules stored in the database, as (id, rule data) rows: the valid ones, and a problem
    for each invalid one (it was valid when stored; a newer gateway may judge otherwise)."""
    rules: list[LoadedRule] = []
    problems: list[ConfigProblem] = []
    for rule_id, data in rows:
        try:
            rules.append(LoadedRule(RuleSpec.model_validate({**data, "id": rule_id}), "stored"))
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(
                    ConfigProblem(f"stored rule {rule_id!r}", None, _message(err, err["loc"]))
                )
    return rules, problems


def _label(item: Mapping[str, Any], index: int) -> str:
    rule_id = item.get("id")
    return f"rule {rule_id!r}" if isinstance(rule_id, str) else f"rule {index + 1}"


def _located(
    exc: ValidationError, source: LocatedYaml, where: tuple[str | int, ...], label: str
) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors():
        loc = tuple(
            "if" if part == "if_" else part
            for part in err["loc"]
            if not (isinstance(part, str) and "[" in part)
        )
        problems.append(source.problem_at((*where, *loc), f"{label}: {_message(err, loc)}"))
    return problems


def _message(err: Any, loc: tuple[Any, ...]) -> str:
    path = ".".join("if" if p == "if_" else str(p) for p in loc)
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field (check the spelling; docs/rules.md lists them)"
    elif err["type"] == "missing":
        message = "required field missing"
    return f"{path}: {message}" if path else message
