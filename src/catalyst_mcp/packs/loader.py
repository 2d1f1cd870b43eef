"""Load every pack of a folder, validate each completely, report problems as ``file:line:col``.

One broken pack never stops the others: :func:`load_packs` returns the valid packs and every
problem of the invalid ones. References in connection settings are expanded first:
``${pack_dir}`` (the pack file's folder) and ``${env:NAME}`` (an environment variable);
``${secret:NAME}`` is reserved for the secrets store and refused for now.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text

from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.packs.arguments import check_value
from catalyst_mcp.packs.connectors.sql import async_url
from catalyst_mcp.packs.schema import TEMPLATE_VARIABLE, Pack, ParamSpec, SqlAction
from catalyst_mcp.yamlsource import LocatedYaml, read_yaml

__all__ = ["PACK_SUFFIXES", "LoadResult", "LoadedPack", "load_pack", "load_packs", "pack_files"]

PACK_SUFFIXES = (".yaml", ".yml")
REFERENCE = re.compile(r"\$\{([^}]*)\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class LoadedPack:
    """A valid pack and the file it came from."""

    pack: Pack
    file: Path


@dataclass(slots=True)
class LoadResult:
    packs: list[LoadedPack] = field(default_factory=list)
    problems: list[ConfigProblem] = field(default_factory=list)


def pack_files(paths: Iterable[Path]) -> list[Path]:
    """Pack files of ``paths`` (files, or folders, not recursive); ``*.example`` skipped."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in PACK_SUFFIXES))
        elif not path.name.endswith(".example"):
            out.append(path)
    return out


def load_packs(paths: Iterable[Path], environ: Mapping[str, str] | None = None) -> LoadResult:
    """Every pack under ``paths``; problems of broken ones, and names used twice, reported."""
    result = LoadResult()
    owners: dict[str, Path] = {}
    for file in pack_files(paths):
        try:
            loaded = load_pack(file, environ)
        except ConfigError as error:
            result.problems.extend(error.problems)
            continue
        first = owners.setdefault(loaded.pack.pack, file)
        if first != file:
            result.problems.append(
                ConfigProblem(str(file), None, f"pack {loaded.pack.pack!r} is already in {first}")
            )
            continue
        result.packs.append(loaded)
    return result


def load_pack(file: Path, environ: Mapping[str, str] | None = None) -> LoadedPack:
    """One pack file, validated completely; :class:`ConfigError` lists every problem."""
    source = read_yaml(file)
    data = source.data
    if not isinstance(data, dict):
        raise ConfigError([source.problem_at((), "a pack must be a mapping (pack: NAME, ...)")])
    env = os.environ if environ is None else environ
    problems: list[ConfigProblem] = []
    if "connections" in data:
        data = {**data, "connections": _expand_connections(data, file, env, source, problems)}
    try:
        pack = Pack.model_validate(data)
    except ValidationError as error:
        problems.extend(_located(error, source))
        raise ConfigError(problems) from error
    problems.extend(_check(pack, source))
    if problems:
        raise ConfigError(problems)
    return LoadedPack(pack, file)


# ---- references ---------------------------------------------------------------------------


def _expand_connections(
    data: dict[str, Any],
    file: Path,
    env: Mapping[str, str],
    source: LocatedYaml,
    problems: list[ConfigProblem],
) -> Any:
    connections = data.get("connections")
    if not isinstance(connections, dict):
        return connections
    out: dict[Any, Any] = {}
    for name, conn in connections.items():
        if isinstance(conn, dict):
            expanded = {}
            for key, value in conn.items():
                where = ("connections", name, key)
                expanded[key] = _expand(value, file, env, source.problem_at(where, ""), problems)
            conn = expanded
        out[name] = conn
    return out


def _expand(
    value: Any,
    file: Path,
    env: Mapping[str, str],
    where: ConfigProblem,
    problems: list[ConfigProblem],
) -> Any:
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        ref = match.group(1)
        kind, _, name = ref.partition(":")
        message = None
        if ref == "pack_dir":
            return str(file.resolve().parent)
        if kind == "env" and ENV_NAME.match(name):
            if name in env:
                return env[name]
            message = f"environment variable {name} is not set (referenced as ${{env:{name}}})"
        elif kind == "secret":
            message = (
                f"${{secret:{name}}}: secret references are reserved for the secrets store, "
                "which is not available yet; use ${env:NAME} for now"
            )
        else:
            message = f"unknown reference ${{{ref}}}: use ${{pack_dir}} or ${{env:NAME}}"
        problems.append(ConfigProblem(where.file, where.line, message, where.column))
        return ""

    return REFERENCE.sub(one, value)


# ---- whole-pack checks --------------------------------------------------------------------


def _located(error: ValidationError, source: LocatedYaml) -> list[ConfigProblem]:
    problems = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        where = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; docs/packs.md lists them all)"
        elif err["type"] == "missing":
            msg = "required key missing"
        problems.append(source.problem_at(loc, f"{where}: {msg}"))
    return problems


def _check(pack: Pack, source: LocatedYaml) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []

    def problem(loc: Loc, message: str) -> None:
        where = ".".join(str(p) for p in loc)
        problems.append(source.problem_at(loc, f"{where}: {message}"))

    for name, conn in pack.connections.items():
        try:
            async_url(conn.url)
        except ValueError as error:
            problem(("connections", name, "url"), str(error))
    for kind, names in (
        ("tools", [t.name for t in pack.tools]),
        ("resources", [r.name for r in pack.resources]),
    ):
        seen: set[str] = set()
        for i, item in enumerate(names):
            if item in seen:
                problem((kind, i, "name"), f"{item!r} is used twice")
            seen.add(item)
    for i, tool in enumerate(pack.tools):
        for name, spec in tool.parameters.items():
            _check_param(("tools", i, "parameters", name), name, spec, problem)
        if tool.sql is not None:
            _check_sql(("tools", i, "sql"), tool.sql, set(tool.parameters), pack, problem)
    for i, res in enumerate(pack.resources):
        variables = set(res.variables)
        for name in res.parameters:
            if name not in variables:
                problem(("resources", i, "parameters", name), "is not a variable of uri_template")
        if res.sql is not None:
            _check_sql(("resources", i, "sql"), res.sql, variables, pack, problem)
    seen_prompts: set[str] = set()
    for i, prompt in enumerate(pack.prompts):
        if prompt.name in seen_prompts:
            problem(("prompts", i, "name"), f"{prompt.name!r} is used twice")
        seen_prompts.add(prompt.name)
        declared = {a.name for a in prompt.arguments}
        for j, message in enumerate(prompt.messages):
            for var in TEMPLATE_VARIABLE.findall(message.text):
                if var not in declared:
                    problem(("prompts", i, "messages", j, "text"), f"{{{var}}} is not an argument")
    return problems


def _check_param(loc: Loc, name: str, spec: ParamSpec, problem: Any) -> None:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", name):
        problem(loc, "a parameter name is letters, digits and '_' (not starting with a digit)")
    if spec.default is not None:
        wrong = check_value(name, spec, spec.default)
        if wrong is not None:
            problem((*loc, "default"), "default: " + wrong.replace("argument", "parameter", 1))


def _check_sql(loc: Loc, action: SqlAction, names: set[str], pack: Pack, problem: Any) -> None:
    if action.connection not in pack.connections:
        known = ", ".join(sorted(pack.connections)) or "none declared"
        problem((*loc, "connection"), f"unknown connection {action.connection!r} ({known})")
    binds = set(text(action.statement).compile().params)
    for bind in sorted(binds - names):
        problem((*loc, "statement"), f":{bind} is not a declared parameter")
