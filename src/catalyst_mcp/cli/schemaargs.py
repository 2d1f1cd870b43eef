"""Tool arguments from a JSON Schema: what each one is, and typed values parsed from text.

Used by ``catalyst connect`` to prompt for a tool's arguments (and an elicitation's fields) and
to read ``key=value`` pairs: a value is parsed by the type its schema declares (an integer must
be an integer, a boolean ``true``/``false``/``yes``/``no``), objects and arrays are JSON, and a
value that breaks an ``enum`` is refused. The complete arguments are then checked against the
whole schema with ``jsonschema`` before anything is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema

__all__ = [
    "ArgumentError",
    "Parameter",
    "parameters",
    "parse_pairs",
    "parse_value",
    "schema_problem",
]

TRUE = frozenset({"true", "yes", "y", "on", "1"})
FALSE = frozenset({"false", "no", "n", "off", "0"})


class ArgumentError(ValueError):
    """A value that does not fit its parameter; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Parameter:
    """One property of an input schema, as a person filling it in needs to see it."""

    name: str
    schema: dict[str, Any]
    required: bool

    @property
    def types(self) -> list[str]:
        """The JSON types the schema allows (``[]``: anything)."""
        declared = self.schema.get("type")
        if isinstance(declared, str):
            return [declared]
        if isinstance(declared, list):
            return [t for t in declared if isinstance(t, str)]
        options = self.schema.get("anyOf") or self.schema.get("oneOf")
        if isinstance(options, list):
            found: list[str] = []
            for option in options:
                if isinstance(option, dict) and isinstance(option.get("type"), str):
                    found.append(option["type"])
            return found
        return []

    @property
    def type_label(self) -> str:
        types = self.types
        if not types:
            return "any"
        label = " or ".join(types)
        items = self.schema.get("items")
        if types == ["array"] and isinstance(items, dict) and isinstance(items.get("type"), str):
            label = f"array of {items['type']}"
        return label

    @property
    def enum(self) -> list[Any] | None:
        values = self.schema.get("enum")
        if isinstance(values, list):
            return values
        if "const" in self.schema:
            return [self.schema["const"]]
        return None

    @property
    def has_default(self) -> bool:
        return "default" in self.schema

    @property
    def description(self) -> str:
        text = self.schema.get("description") or ""
        title = self.schema.get("title")
        if not text and isinstance(title, str) and title.lower() != self.name.lower():
            text = title  # a title that only repeats the name says nothing
        return " ".join(str(text).split())

    def summary(self) -> str:
        """``name (integer, required): description [default: 1] [one of: a, b]``"""
        flags = [self.type_label, "required" if self.required else "optional"]
        text = f"{self.name} ({', '.join(flags)})"
        if self.description:
            text += f": {self.description}"
        if self.has_default:
            text += f" [default: {json.dumps(self.schema['default'], ensure_ascii=False)}]"
        if self.enum is not None:
            shown = ", ".join(json.dumps(v, ensure_ascii=False) for v in self.enum)
            text += f" [one of: {shown}]"
        return text


def parameters(schema: Any) -> list[Parameter]:
    """The properties of an object schema, required ones first, each in declared order."""
    if not isinstance(schema, dict):
        return []
    props = schema.get("properties")
    if not isinstance(props, dict):
        return []
    required = schema.get("required")
    needed = {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
    found = [
        Parameter(str(name), spec if isinstance(spec, dict) else {}, name in needed)
        for name, spec in props.items()
    ]
    return [p for p in found if p.required] + [p for p in found if not p.required]


def parse_value(parameter: Parameter, text: str) -> Any:
    """``text`` as the value of ``parameter``, by its declared type; ArgumentError if it is not."""
    types = parameter.types
    value = _by_types(parameter.name, types, text)
    allowed = parameter.enum
    if allowed is not None and value not in allowed:
        shown = ", ".join(json.dumps(v, ensure_ascii=False) for v in allowed)
        raise ArgumentError(f"{parameter.name}: must be one of {shown}")
    return value


def _by_types(name: str, types: list[str], text: str) -> Any:
    if not types:  # anything: JSON when the text is JSON, else the text itself
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    if types == ["string"]:
        return text
    problem: ArgumentError | None = None
    for kind in types:
        if kind == "string":
            continue  # the fallback when no other type fits
        try:
            return _one_type(name, kind, text)
        except ArgumentError as exc:
            problem = exc
    if "string" in types:
        return text
    if len(types) == 1 and problem is not None:
        raise problem
    raise ArgumentError(f"{name}: expected {' or '.join(types)}, got {text!r}")


def _one_type(name: str, kind: str, text: str) -> Any:
    stripped = text.strip()
    if kind == "string":
        return text
    if kind == "integer":
        try:
            return int(stripped)
        except ValueError:
            raise ArgumentError(f"{name}: expected an integer, got {text!r}") from None
    if kind == "number":
        try:
            number = float(stripped)
        except ValueError:
            raise ArgumentError(f"{name}: expected a number, got {text!r}") from None
        return int(number) if number.is_integer() and "." not in stripped else number
    if kind == "boolean":
        lowered = stripped.lower()
        if lowered in TRUE:
            return True
        if lowered in FALSE:
            return False
        raise ArgumentError(f"{name}: expected true or false, got {text!r}")
    if kind == "null":
        if stripped == "null":
            return None
        raise ArgumentError(f"{name}: expected null, got {text!r}")
    if kind in ("object", "array"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ArgumentError(f"{name}: expected a JSON {kind}: {exc.msg}") from None
        if not isinstance(value, dict if kind == "object" else list):
            raise ArgumentError(f"{name}: expected a JSON {kind}, got {type(value).__name__}")
        return value
    try:  # an unknown type name: take JSON, else the text
        return json.loads(stripped)
    except json.JSONDecodeError:
        return text


def parse_pairs(pairs: list[str], schema: Any) -> dict[str, Any]:
    """``key=value`` words as arguments, each value parsed by its property's type."""
    known = {p.name: p for p in parameters(schema)}
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ArgumentError(f"expected key=value, got {pair!r}")
        parameter = known.get(key, Parameter(key, {}, False))
        arguments[key] = parse_value(parameter, raw)
    return arguments


def schema_problem(schema: Any, arguments: dict[str, Any]) -> str | None:
    """Why ``arguments`` do not satisfy ``schema`` (one line), or None when they do.

    A schema that is itself invalid, or needs references that cannot be resolved here, is not
    checked: the server will say what it thinks.
    """
    if not isinstance(schema, dict):
        return None
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except jsonschema.exceptions.SchemaError:
        return None
    try:
        error = jsonschema.exceptions.best_match(validator_class(schema).iter_errors(arguments))
    except Exception:  # a $ref to a document out of reach and the like: let the server judge
        return None
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message
