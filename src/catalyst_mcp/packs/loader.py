"""Load every pack of a folder, validate each completely, report problems as ``file:line:col``.

One broken pack never stops the others: :func:`load_packs` returns the valid packs and every
problem of the invalid ones. References in connection settings are expanded first:
``${pack_dir}`` (the pack file's folder) and ``${env:NAME}`` (an environment variable);
``${secret:NAME}`` is kept as it is in a SQL connection's ``url`` and a REST connection's
``headers`` and ``auth`` values, to be resolved on each call for the caller from the secrets
store (their own value, else the shared one: docs/security.md), and refused anywhere else. The
values taken from the environment are secrets wherever they were used:
:attr:`LoadedPack.env_values` keeps them per connection, for the connector to scrub from
messages and redact from recordings. An action's own values (path, query, headers, body) take
no ``${...}`` reference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jmespath
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from pydantic import ValidationError
from sqlalchemy import text

from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.orchestration.cache.config import refuse_shared, shared_places
from catalyst_mcp.packs.arguments import check_value
from catalyst_mcp.packs.connectors.restauth import MIN_SECRET_LENGTH
from catalyst_mcp.packs.connectors.restbuild import RESERVED_HEADERS, BuildError, plan_request
from catalyst_mcp.packs.connectors.sql import async_url, fill_secrets
from catalyst_mcp.packs.schema import (
    IDENTIFIER,
    TEMPLATE_VARIABLE,
    Pack,
    ParamSpec,
    RestAction,
    RestConnection,
    SqlAction,
    SqlConnection,
)
from catalyst_mcp.security.references import SECRET_NAME, SECRET_REFERENCE
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
    # per connection, the values substituted for its ${env:NAME} references (secrets; values
    # shorter than MIN_SECRET_LENGTH are left out)
    env_values: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class LoadResult:
    packs: list[LoadedPack] = field(default_factory=list)
    problems: list[ConfigProblem] = field(default_factory=list)


def pack_files(paths: Iterable[Path]) -> list[Path]:
    """Pack files of ``paths``: the ``*.yaml``/``*.yml`` of folders (not recursive; so
    ``*.example`` files are skipped), and files named explicitly, whatever their name."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix in PACK_SUFFIXES and not p.name.startswith(".")  # editor files
                )
            )
        else:
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
    env_values: dict[str, tuple[str, ...]] = {}
    if "connections" in data:
        connections = _expand_connections(data, file, env, source, problems, env_values)
        data = {**data, "connections": connections}
    try:
        pack = Pack.model_validate(data)
    except ValidationError as error:
        problems.extend(_located(error, source))
        raise ConfigError(problems) from error
    problems.extend(_check(pack, source, file.resolve().parent))
    if problems:
        raise ConfigError(problems)
    return LoadedPack(pack, file, env_values)


# ---- references ---------------------------------------------------------------------------


def _expand_connections(
    data: dict[str, Any],
    file: Path,
    env: Mapping[str, str],
    source: LocatedYaml,
    problems: list[ConfigProblem],
    env_values: dict[str, tuple[str, ...]],
) -> Any:
    """The connections with references expanded; ``env_values`` gets, per connection, the
    values taken from the environment."""
    connections = data.get("connections")
    if not isinstance(connections, dict):
        return connections
    expanded = {}
    for name, conn in connections.items():
        found: list[str] = []
        rest = isinstance(conn, dict) and conn.get("type") == "rest"
        expanded[name] = _expand(
            conn, ("connections", name), file, env, source, problems, found, rest
        )
        values = tuple(dict.fromkeys(v for v in found if len(v) >= MIN_SECRET_LENGTH))
        if values:
            env_values[str(name)] = values
    return expanded


def _expand(
    value: Any,
    loc: Loc,
    file: Path,
    env: Mapping[str, str],
    source: LocatedYaml,
    problems: list[ConfigProblem],
    found: list[str],
    rest: bool = False,
) -> Any:
    """``value`` with references expanded, recursively through mappings and lists; each value
    taken from the environment is appended to ``found``. ``rest``: a REST connection, whose
    headers and auth values may keep ``${secret:NAME}`` for the call to resolve."""
    if isinstance(value, dict):
        return {
            k: _expand(v, (*loc, k), file, env, source, problems, found, rest)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _expand(v, (*loc, i), file, env, source, problems, found, rest)
            for i, v in enumerate(value)
        ]
    if not isinstance(value, str):
        return value
    where = source.problem_at(loc, "")

    def one(match: re.Match[str]) -> str:
        ref = match.group(1)
        kind, _, name = ref.partition(":")
        message = None
        if ref == "pack_dir":
            return str(file.resolve().parent)
        if kind == "env" and ENV_NAME.match(name):
            if name in env:
                found.append(env[name])
                return env[name]
            message = f"environment variable {name} is not set (referenced as ${{env:{name}}})"
        elif kind == "secret" and SECRET_NAME.match(name):
            if (rest and len(loc) > 3 and loc[2] in ("headers", "auth")) or (
                not rest and loc[2:] == ("url",)
            ):
                return match.group(0)  # resolved on each call, for the caller
            message = (
                f"${{secret:{name}}} is only resolved in a SQL connection's url and a REST "
                "connection's headers and auth values (for each caller); here use ${env:NAME}"
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


def _check(pack: Pack, source: LocatedYaml, folder: Path) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []

    def problem(loc: Loc, message: str) -> None:
        where = ".".join(str(p) for p in loc)
        problems.append(source.problem_at(loc, f"{where}: {message}"))

    for name, conn in pack.connections.items():
        if isinstance(conn, SqlConnection):
            try:
                async_url(fill_secrets(conn.url, {}))
            except ValueError as error:
                problem(("connections", name, "url"), str(error))
        else:
            _check_rest_connection(("connections", name), conn, problem)
    secrets = [
        name
        for name, conn in pack.connections.items()
        if SECRET_REFERENCE.search(conn.model_dump_json())
    ]
    if secrets:  # results of per-caller credentials are never shared between callers
        why = refuse_shared(f"connection {secrets[0]!r} uses ${{secret:...}}")
        if shared_places(pack.cache, {}):
            problem(("cache", "scope"), why)
        for i, tool in enumerate(pack.tools):
            if shared_places(tool.cache, {}):
                problem(("tools", i, "cache", "scope"), why)
    for kind, names in (
        ("tools", [t.name for t in pack.tools]),
        ("resources", [r.name for r in pack.resources]),
        ("prompts", [p.name for p in pack.prompts]),
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
            _check_sql(("tools", i, "sql"), tool.sql, tool.parameters, pack, problem)
        if tool.rest is not None:
            _check_rest(("tools", i, "rest"), tool.rest, set(tool.parameters), pack, problem)
        if tool.output_schema is not None:
            _check_output_schema(("tools", i, "output_schema"), tool.output_schema, problem)
    for i, res in enumerate(pack.resources):
        variables = set(res.variables)
        for name in res.parameters:
            if name not in variables:
                problem(("resources", i, "parameters", name), "is not a variable of uri_template")
        params = {v: res.parameters.get(v, ParamSpec(type="string")) for v in variables}
        if res.sql is not None:
            _check_sql(("resources", i, "sql"), res.sql, params, pack, problem)
        if res.rest is not None:
            _check_rest(("resources", i, "rest"), res.rest, variables, pack, problem)
        if res.file is not None:
            _check_file(("resources", i, "file"), res.file, variables, folder, problem)
    for i, prompt in enumerate(pack.prompts):
        declared = {a.name for a in prompt.arguments}
        for j, message in enumerate(prompt.messages):
            for var in TEMPLATE_VARIABLE.findall(message.text):
                if var not in declared:
                    problem(("prompts", i, "messages", j, "text"), f"{{{var}}} is not an argument")
    _check_tests(pack, problem)
    return problems


def _check_param(loc: Loc, name: str, spec: ParamSpec, problem: Any) -> None:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", name):
        problem(loc, "a parameter name is letters, digits and '_' (not starting with a digit)")
    if spec.default is not None:
        wrong = check_value(name, spec, spec.default)
        if wrong is not None:
            problem((*loc, "default"), "default: " + wrong.replace("argument", "parameter", 1))


def _check_sql(
    loc: Loc, action: SqlAction, params: Mapping[str, ParamSpec], pack: Pack, problem: Any
) -> None:
    conn = pack.connections.get(action.connection)
    if not isinstance(conn, SqlConnection):
        _unknown_connection((*loc, "connection"), action.connection, "sql", pack, problem)
    for name, allowed in action.identifiers.items():
        where = (*loc, "identifiers", name)
        spec = params.get(name)
        if spec is None or spec.type != "string":
            problem(where, f"{name!r} must be a declared string parameter")
        if not allowed:
            problem(where, "the allow-list is empty")
        for value in allowed:
            if not isinstance(value, str) or not IDENTIFIER.match(value):
                problem(where, f"{value!r} is not a plain identifier (name or table.name)")
    for var in TEMPLATE_VARIABLE.findall(action.statement):
        if var not in action.identifiers:
            problem(
                (*loc, "statement"),
                f"{{{var}}}: only identifiers declared under 'identifiers' may be written in "
                "braces; values are bound as :name",
            )
    binds = set(text(action.statement).compile().params)
    for bind in sorted(binds):
        if bind not in params:
            problem((*loc, "statement"), f":{bind} is not a declared parameter")
        elif params[bind].type == "object":
            problem((*loc, "statement"), f":{bind} is an object parameter, which SQL cannot bind")


def _unknown_connection(loc: Loc, name: str, kind: str, pack: Pack, problem: Any) -> None:
    conn = pack.connections.get(name)
    if conn is not None:
        problem(loc, f"connection {name!r} is a {conn.type} connection, not {kind}")
        return
    known = ", ".join(sorted(pack.connections)) or "none declared"
    problem(loc, f"unknown connection {name!r} ({known})")


HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _check_rest_connection(loc: Loc, conn: RestConnection, problem: Any) -> None:
    parts = urlsplit(conn.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problem((*loc, "base_url"), "must be an http:// or https:// URL with a host")
    elif parts.query or parts.fragment:
        problem((*loc, "base_url"), "must not have a query or fragment (use the action's query)")
    for name in conn.headers:
        if not HEADER_NAME.match(name):
            problem((*loc, "headers", name), "is not a valid header name")
    _check_plan((*loc, "headers"), conn.base_url, conn.headers, None, problem)
    auth = conn.auth
    if auth is not None and auth.type == "api_key" and auth.in_ == "header" and auth.name:
        if not HEADER_NAME.match(auth.name):
            problem((*loc, "auth", "name"), "is not a valid header name")
        elif auth.name.lower() in RESERVED_HEADERS:
            problem((*loc, "auth", "name"), f"the header {auth.name} is set by the connector")
    if auth is not None and auth.token_url is not None:
        token = urlsplit(auth.token_url)
        if token.scheme not in ("http", "https") or not token.hostname:
            problem((*loc, "auth", "token_url"), "must be an http:// or https:// URL")


def _check_plan(
    loc: Loc, base_url: str, headers: Mapping[str, str], act: RestAction | None, problem: Any
) -> None:
    """Compile the request plan as the connector will (reserved headers, line breaks...)."""
    try:
        if act is None:
            plan_request(base_url, headers, "GET", "", {}, {}, None)
        else:
            plan_request(base_url, headers, act.method, act.path, act.query, act.headers, act.body)
    except BuildError as error:
        problem(loc, str(error))


def _check_rest(loc: Loc, action: RestAction, names: set[str], pack: Pack, problem: Any) -> None:
    conn = pack.connections.get(action.connection)
    if not isinstance(conn, RestConnection):
        _unknown_connection((*loc, "connection"), action.connection, "rest", pack, problem)
    references = False
    for field_name in ("path", "query", "headers", "body"):
        for key, value in _strings(getattr(action, field_name), (field_name,)):
            for var in TEMPLATE_VARIABLE.findall(REFERENCE.sub("", value)):
                if var not in names:
                    problem((*loc, *key), f"{{{var}}} is not a declared parameter")
            ref = REFERENCE.search(value)
            if ref is not None:
                references = True
                problem(
                    (*loc, *key),
                    f"{ref.group(0)}: ${{secret:NAME}}, ${{env:NAME}} and ${{pack_dir}} are only "
                    "expanded in connection values (e.g. the connection's headers or auth), "
                    "not in an action",
                )
    for name in action.headers:
        if not HEADER_NAME.match(name):
            problem((*loc, "headers", name), "is not a valid header name")
    if isinstance(conn, RestConnection) and not references:
        _check_plan(loc, conn.base_url, {}, action, problem)  # the connection's are checked once
    if action.project is not None:
        try:
            jmespath.compile(action.project)
        except jmespath.exceptions.JMESPathError as error:
            where = getattr(error, "lex_position", None)
            detail = "it ends too early" if "Incomplete" in type(error).__name__ else error.msg
            at = f" at character {where}" if isinstance(where, int) else ""
            problem((*loc, "project"), f"not a valid JMESPath expression{at}: {detail}")


def _strings(value: Any, loc: Loc) -> Iterable[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*loc, i))


def _check_file(loc: Loc, name: str, variables: set[str], folder: Path, problem: Any) -> None:
    for var in TEMPLATE_VARIABLE.findall(name):
        if var not in variables:
            problem(loc, f"{{{var}}} is not a variable of uri_template")
    fixed = TEMPLATE_VARIABLE.split(name)[0]
    target = (folder / fixed).resolve()
    if not target.is_relative_to(folder):
        problem(loc, "must be inside the pack's folder")
    elif not TEMPLATE_VARIABLE.search(name) and not target.is_file():
        problem(loc, f"no such file: {target}")


# Output schemas are checked against the draft-7 meta-schema: it catches what authors get wrong
# (a bad type name, properties that are not a mapping) in ~0.3 ms, where the 2020-12 one, with
# its dynamic references, takes ~2.3 ms a schema (docs/decisions/004-knowledge-packs.md).
_META_SCHEMA = Draft7Validator(Draft7Validator.META_SCHEMA)


def _check_output_schema(loc: Loc, schema: dict[str, Any], problem: Any) -> None:
    error = best_match(_META_SCHEMA.iter_errors(schema))
    if error is not None:
        problem(loc, f"not a valid JSON Schema: {error.message}")


def _check_tests(pack: Pack, problem: Any) -> None:
    tools = {t.name: t for t in pack.tools}
    prompts = {p.name for p in pack.prompts}
    for i, test in enumerate(pack.tests):
        if test.tool is not None:
            tool = tools.get(test.tool)
            if tool is None:
                problem(("tests", i, "tool"), f"unknown tool {test.tool!r}")
                continue
            for arg in test.arguments:
                if arg not in tool.parameters:
                    problem(("tests", i, "arguments", arg), f"{test.tool!r} has no such parameter")
        elif test.prompt is not None and test.prompt not in prompts:
            problem(("tests", i, "prompt"), f"unknown prompt {test.prompt!r}")
