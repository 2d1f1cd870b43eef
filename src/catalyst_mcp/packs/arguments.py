"""Declared parameters → the MCP ``inputSchema``, and call arguments checked against them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.schema import ParamSpec

__all__ = ["check_arguments", "check_value", "input_schema"]

Json = dict[str, Any]


def input_schema(params: Mapping[str, ParamSpec]) -> Json:
    properties: Json = {}
    for name, spec in params.items():
        prop: Json = {"type": spec.type}
        for key in ("description", "default", "enum", "minimum", "maximum"):
            value = getattr(spec, key)
            if value is not None:
                prop[key] = value
        for key in ("minLength", "maxLength", "pattern"):
            value = getattr(spec, key)
            if value is not None:
                prop[key] = value
        properties[name] = prop
    required = [name for name, spec in params.items() if spec.required]
    return {"type": "object", "properties": properties, "required": required}


def _type_ok(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, int | float)
    if kind == "string":
        return isinstance(value, str)
    return False


def check_value(name: str, spec: ParamSpec, value: Any) -> str | None:
    """What is wrong with ``value`` for parameter ``name``, or None."""
    if not _type_ok(spec.type, value):
        return f"argument '{name}' must be of type {spec.type}, got {_json_type(value)}"
    if spec.enum is not None and value not in spec.enum:
        return f"argument '{name}' must be one of {spec.enum}"
    if spec.minimum is not None and value < spec.minimum:
        return f"argument '{name}' must be >= {_num(spec.minimum)}"
    if spec.maximum is not None and value > spec.maximum:
        return f"argument '{name}' must be <= {_num(spec.maximum)}"
    if spec.minLength is not None and len(value) < spec.minLength:
        return f"argument '{name}' must be at least {spec.minLength} characters long"
    if spec.maxLength is not None and len(value) > spec.maxLength:
        return f"argument '{name}' must be at most {spec.maxLength} characters long"
    if spec.pattern is not None and re.search(spec.pattern, value) is None:
        return f"argument '{name}' must match the pattern {spec.pattern!r}"
    return None


def check_arguments(params: Mapping[str, ParamSpec], arguments: Any) -> Json:
    """The values to bind: ``arguments`` checked, defaults filled in, absent optional ones None.

    Raises :class:`PackError` naming every problem found.
    """
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise PackError("arguments must be an object")
    problems = [f"unknown argument '{name}'" for name in arguments if name not in params]
    values: Json = {}
    for name, spec in params.items():
        if name not in arguments or arguments[name] is None:
            if spec.required:
                problems.append(f"missing required argument '{name}'")
            values[name] = spec.default
            continue
        problem = check_value(name, spec, arguments[name])
        if problem is not None:
            problems.append(problem)
        values[name] = arguments[name]
    if problems:
        raise PackError("invalid arguments: " + "; ".join(problems))
    return values


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
