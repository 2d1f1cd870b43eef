"""Declared parameters → the MCP ``inputSchema``, and call arguments checked against them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.schema import ItemSpec, ParamSpec

__all__ = ["check_arguments", "check_value", "input_schema"]

Json = dict[str, Any]


SCHEMA_KEYS = ("description", "default", "enum", "minimum", "maximum", "minLength", "maxLength")
SCHEMA_KEYS_MORE = ("pattern", "minItems", "maxItems")


def _property(spec: ParamSpec | ItemSpec) -> Json:
    prop: Json = {"type": spec.type}
    for key in (*SCHEMA_KEYS, *SCHEMA_KEYS_MORE):
        value = getattr(spec, key, None)
        if value is not None:
            prop[key] = value
    items = getattr(spec, "items", None)
    if items is not None:
        prop["items"] = _property(items)
    return prop


def input_schema(params: Mapping[str, ParamSpec]) -> Json:
    properties = {name: _property(spec) for name, spec in params.items()}
    required = [name for name, spec in params.items() if spec.required]
    return {"type": "object", "properties": properties, "required": required}


def _type_ok(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return False


def check_value(name: str, spec: ParamSpec | ItemSpec, value: Any) -> str | None:
    """What is wrong with ``value`` for parameter ``name``, or None."""
    if not _type_ok(spec.type, value):
        return f"argument '{name}' must be of type {spec.type}, got {_json_type(value)}"
    if isinstance(spec, ParamSpec) and spec.type == "array":
        return _check_array(name, spec, value)
    if spec.type == "object":
        return None
    if spec.type == "integer" and not -(2**63) <= value < 2**63:
        return f"argument '{name}' is out of range (a 64-bit integer)"
    if spec.type == "number" and not math.isfinite(value):
        return f"argument '{name}' must be a finite number"
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


def _check_array(name: str, spec: ParamSpec, value: list[Any]) -> str | None:
    if spec.minItems is not None and len(value) < spec.minItems:
        return f"argument '{name}' must have at least {spec.minItems} items"
    if spec.maxItems is not None and len(value) > spec.maxItems:
        return f"argument '{name}' must have at most {spec.maxItems} items"
    assert spec.items is not None  # the schema requires items for arrays
    for i, item in enumerate(value):
        problem = check_value(f"{name}[{i}]", spec.items, item)
        if problem is not None:
            return problem
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
        value = arguments[name]
        problem = check_value(name, spec, value)
        if problem is not None:
            problems.append(problem)
        elif spec.type == "integer" and isinstance(value, float):
            value = int(value)  # 3.0 is the integer 3 in JSON
        values[name] = value
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
