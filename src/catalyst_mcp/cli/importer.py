"""Convert MCP client config files (Claude Desktop, Cursor, VS Code, ...) into catalyst.yaml.

Recognised shapes:

* ``{"mcpServers": {...}}`` — Claude Desktop, Cursor, Windsurf, Claude Code ``.mcp.json``;
* ``{"servers": {...}, "inputs": [...]}`` — VS Code ``mcp.json``;
* ``{"mcp": {"servers": {...}}}`` — VS Code ``settings.json``;
* ``mcpServers:`` in YAML — LibreChat ``librechat.yaml`` (read as YAML by its file name).

Entries are kept unchanged where Catalyst reads the same format. What changes is reported as a
note: names that are not valid server names are renamed, Windsurf's ``serverUrl`` becomes
``url``, keys Catalyst does not know are dropped, and VS Code variables become Catalyst's
``${NAME}`` environment references (``${env:NAME}`` -> ``${NAME}``, ``${input:api-key}`` ->
``${API_KEY}``). Notes name where a value is, never the value: they sit next to secrets. Files
may be JSON with comments and trailing commas (JSONC), as VS Code writes them. Problems are
reported as ``file:line: what is wrong``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from catalyst_mcp.cli.targets import safe_name
from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.serverconfig import EXPANDED_KEYS, FOREIGN_SERVER_KEYS
from catalyst_mcp.settings import (
    SERVER_NAME,
    ServerConfig,
    Settings,
    parse_settings,
)
from catalyst_mcp.yamlsource import LocatedYaml, load_yaml

__all__ = ["Conversion", "convert", "parse_client_config", "strip_jsonc"]

Path_ = tuple[str | int, ...]
VARIABLE = re.compile(r"(?<!\$)\$\{([^}]*)\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RENAMED_KEYS = {"serverUrl": "url"}
# VS Code's predefined variables: Catalyst would read them from the environment instead.
VSCODE_VARIABLES = frozenset(
    {"workspaceFolder", "workspaceFolderBasename", "userHome", "pathSeparator", "cwd"}
)
# Stands for every referenced variable while validating (valid wherever a string is: a URL).
PLACEHOLDER = "http://variable.invalid/"


def _known_keys() -> frozenset[str]:
    keys = set(FOREIGN_SERVER_KEYS)
    for name, info in ServerConfig.model_fields.items():
        keys.add(name)
        if info.alias:
            keys.add(info.alias)
    return frozenset(keys)


@dataclass(slots=True)
class Conversion:
    """The converted ``servers`` section, what was changed, and the settings it validates to."""

    servers: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    settings: Settings | None = None
    # What the result was validated with: a stand-in for every variable it reads.
    environ: dict[str, str] = field(default_factory=dict)

    def to_yaml(self, source: str) -> str:
        """The section as catalyst.yaml text, with a header saying where it came from."""
        body = yaml.safe_dump(
            {"servers": self.servers},
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=False,
            width=100,
        )
        return (
            f"# Imported from {source} by `catalyst config import`.\n"
            "# Check it with `catalyst config validate`; `catalyst config init` writes a file\n"
            "# documenting every setting.\n"
            f"{body}"
        )


# ---- reading ---------------------------------------------------------------------------------


def strip_jsonc(text: str) -> str:
    """``text`` without ``//`` and ``/* */`` comments and trailing commas, lines kept in place."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            out.append(" " * (end - i))
            i = end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end == -1 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
            continue
        else:
            out.append(c)
        i += 1
    return _strip_trailing_commas("".join(out))


def _strip_trailing_commas(text: str) -> str:
    out = list(text)
    in_string = False
    i = 0
    while i < len(out):
        c = out[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == ",":
            j = i + 1
            while j < len(out) and out[j] in " \t\r\n":
                j += 1
            if j < len(out) and out[j] in "}]":
                out[i] = " "
        i += 1
    return "".join(out)


def parse_client_config(text: str, file: str) -> LocatedYaml:
    """Parse a JSON/JSONC client config (or a YAML one, such as LibreChat's librechat.yaml, by
    its ``.yaml``/``.yml`` name), with the line of every key when it can be found."""
    if file.lower().endswith((".yaml", ".yml")):
        return load_yaml(text, file)
    cleaned = strip_jsonc(text)
    try:
        data = json.loads(cleaned)
    except json.JSONDecodeError as exc:
        raise ConfigError([ConfigProblem(file, exc.lineno, f"not valid JSON: {exc.msg}")]) from exc
    try:  # JSON is (nearly) YAML: the YAML loader knows where every key is
        lines = load_yaml(cleaned.replace("\t", " "), file).lines
    except ConfigError:
        lines = {}
    return LocatedYaml(file, data, lines)


# ---- converting ------------------------------------------------------------------------------


def _section(source: LocatedYaml) -> tuple[Path_, dict[str, Any]]:
    data = source.data
    if not isinstance(data, dict):
        raise ConfigError([source.problem((), "the top level must be a JSON object")])
    candidates: list[Path_] = [("mcpServers",), ("servers",), ("mcp", "servers")]
    found = [p for p in candidates if _get(data, p) is not None]
    if not found:
        raise ConfigError(
            [source.problem((), 'no "mcpServers" or "servers" object: not an MCP client config')]
        )
    if len(found) > 1:
        names = " and ".join(".".join(map(str, p)) for p in found)
        raise ConfigError([source.problem(found[1], f"both {names} are present; keep one")])
    entries = _get(data, found[0])
    if not isinstance(entries, dict):
        raise ConfigError([source.problem(found[0], "must be an object of servers by name")])
    return found[0], entries


def _get(data: dict[str, Any], path: Path_) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _unique_names(names: list[str]) -> dict[str, str]:
    taken = {n for n in names if SERVER_NAME.match(n)}
    mapping: dict[str, str] = {}
    for name in names:
        if SERVER_NAME.match(name):
            mapping[name] = name
            continue
        base = safe_name(name)
        new, i = base, 2
        while new in taken:
            new, i = f"{base}-{i}", i + 1
        taken.add(new)
        mapping[name] = new
    return mapping


class _Variables:
    """Client variables in expanded keys, rewritten to Catalyst's ``${NAME}`` where possible.

    ``${env:NAME}`` (VS Code) is Catalyst's ``${NAME}``; ``${input:ID}`` (a VS Code prompt)
    becomes an environment variable named after the input. Anything else is left as it is.
    """

    def __init__(self, inputs: Any) -> None:
        self.inputs = {
            str(i["id"]): str(i.get("description") or "")
            for i in (inputs if isinstance(inputs, list) else [])
            if isinstance(i, dict) and "id" in i
        }
        self.referenced: dict[str, None] = {}  # ordered set
        self.notes: list[str] = []

    def rewrite(self, server: str, value: Any, where: str = "") -> Any:
        if isinstance(value, dict):
            return {
                k: self.rewrite(server, v, f"{where}.{k}".lstrip(".")) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.rewrite(server, v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value

        def one(match: re.Match[str]) -> str:
            kind, _, ref = match.group(1).partition(":")
            if kind == "env" and ENV_NAME.match(ref):
                name = ref
                how = f"{match.group(0)} written as ${{{name}}}"
            elif kind == "input" and ref:
                name = _env_name(ref)
                label = f" ({self.inputs[ref]})" if self.inputs.get(ref) else ""
                how = f"VS Code input {ref!r}{label} written as ${{{name}}}"
            elif ENV_NAME.match(match.group(1)):
                self.referenced[match.group(1)] = None
                return match.group(0)
            else:
                self.notes.append(
                    f"server {server!r}: {where} contains {match.group(0)}, which Catalyst passes "
                    "on literally; replace it"
                )
                return match.group(0)
            self.notes.append(f"server {server!r}: {where}: {how}")
            self.referenced[name] = None
            return f"${{{name}}}"

        return VARIABLE.sub(one, value)

    def unset_note(self) -> str | None:
        unset = [n for n in self.referenced if n not in os.environ]
        if not unset:
            return None
        vscode = [n for n in unset if n in VSCODE_VARIABLES]
        note = (
            f"the config reads {', '.join(unset)} from the environment when it is loaded "
            "(not set here): set them for `catalyst serve`"
        )
        if vscode:
            note += f"; replace the VS Code variable(s) {', '.join(vscode)} with values"
        return note


def _env_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper() or "INPUT"
    return f"_{name}" if name[0].isdigit() else name


def _adapt(
    name: str, entry: dict[str, Any], notes: list[str], variables: _Variables
) -> tuple[dict[str, Any], dict[str, str]]:
    """The entry as Catalyst reads it, and the keys it renamed (old -> new)."""
    known = _known_keys()
    out: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    for key, value in entry.items():
        new_key = RENAMED_KEYS.get(key)
        if new_key is not None and new_key not in entry:
            notes.append(f"server {name!r}: {key!r} written as {new_key!r}")
            renamed[key] = new_key
            out[new_key] = value
        elif key in known:
            out[key] = value
        else:
            notes.append(f"server {name!r}: dropped {key!r} (not a Catalyst setting)")
    for key in EXPANDED_KEYS:
        if key in out:
            out[key] = variables.rewrite(name, out[key], key)
    return out, renamed


def convert(source: LocatedYaml) -> Conversion:
    """Convert a parsed client config; raises :class:`ConfigError` listing every problem."""
    section, entries = _section(source)
    names = _unique_names([str(n) for n in entries])
    result = Conversion({})
    variables = _Variables(source.data.get("inputs"))
    lines: dict[Path_, int] = {("servers",): source.line_of(section) or 1}
    for original, entry in entries.items():
        new = names[str(original)]
        if new != original:
            result.notes.append(
                f"renamed server {original!r} to {new!r} (a name is letters and digits joined by "
                "'-' or '_'; it prefixes the server's tool names)"
            )
        renamed: dict[str, str] = {}
        if isinstance(entry, dict):
            entry, renamed = _adapt(new, entry, result.notes, variables)
        result.servers[new] = entry
        prefix = (*section, original)
        for path, line in source.lines.items():
            if path[: len(prefix)] == prefix:
                rest = path[len(prefix) :]
                if rest and isinstance(rest[0], str) and rest[0] in renamed:
                    rest = (renamed[rest[0]], *rest[1:])
                lines[("servers", new, *rest)] = line
    result.notes.extend(variables.notes)
    unset = variables.unset_note()
    if unset:
        result.notes.append(unset)
    if not entries:
        result.notes.append("no servers found in the file")
    # Validate as the gateway will load it, with every referenced variable set.
    result.environ = dict.fromkeys(variables.referenced, PLACEHOLDER)
    located = LocatedYaml(source.file, {"servers": result.servers}, lines)
    result.settings = parse_settings(located, environ=result.environ)
    return result
