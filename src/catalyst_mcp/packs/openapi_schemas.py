"""OpenAPI schemas to pack parameters: one JSON type, and the constraints a pack can declare.

:func:`schema_to_param` reads a schema (``$ref`` followed, ``allOf`` merged, by the
:class:`Resolver`, the document) as a parameter: its type, ``enum``/``const``,
minimum/maximum (exclusive bounds made inclusive for integers), minLength/maxLength, a
``pattern`` Python can compile, array ``items`` and bounds, ``required``, ``default``.

A shape a pack cannot declare raises :class:`Unsupported`, except: a mix of scalar types in
the path, query or headers is read as ``string``, and a body value with no schema as
``object`` (passed as it is). A default the pack format would refuse is dropped.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from pydantic import ValidationError

from catalyst_mcp.packs.arguments import check_value
from catalyst_mcp.packs.openapi_output import Flow
from catalyst_mcp.packs.schema import ParamSpec

__all__ = ["SCALARS", "Resolver", "Unsupported", "first_error", "schema_kind", "schema_to_param"]

Json = dict[str, Any]
SCALARS = frozenset({"string", "integer", "number", "boolean"})


class Unsupported(Exception):
    """A shape a pack cannot declare; the message says which."""


class Resolver(Protocol):
    """What translation needs of the document: a schema with references followed."""

    def schema(self, node: Any, seen: tuple[str, ...] = ()) -> Json:
        """``node`` with ``$ref`` followed and ``allOf`` merged; :class:`Unsupported` if it
        cannot be (a reference out of the document, a cycle)."""


def schema_to_param(
    doc: Resolver, raw: Any, place: str, required: bool, description: Any = None
) -> Json:
    """A pack parameter (ParamSpec as data) for a schema, or :class:`Unsupported`.

    A body property keeps no default: the gateway would send it when the caller gives
    none, and a PATCH would then reset what the caller meant to leave alone.
    """
    schema = doc.schema(raw)
    kind = schema_kind(doc, schema)
    shape: Json = {}
    if kind in SCALARS:
        shape = _constraints(schema, kind)
    elif kind == "array":
        items = doc.schema(schema.get("items", {}))
        item_kind = schema_kind(doc, items)
        if item_kind not in SCALARS:
            raise Unsupported("an array of objects or arrays cannot be declared")
        shape["items"] = Flow(type=item_kind, **_constraints(items, item_kind))
        for key in ("minItems", "maxItems"):
            if isinstance(schema.get(key), int) and schema[key] >= 0:
                shape[key] = schema[key]
    elif kind == "object" and place != "body":
        raise Unsupported(f"an object in the {place} cannot be sent")
    elif kind is None and place != "body" and _scalar_alternatives(doc, schema):
        kind = "string"  # a mix of scalar types: text on the wire anyway
    elif kind is None and place == "body" and not _alternatives(doc, schema):
        kind = "object"  # a JSON value with no schema: passed as it is
    elif kind != "object":
        raise Unsupported("its schema mixes types or has none")
    param = Flow(type=kind)
    if required:
        param["required"] = True
    default = schema.get("default")
    if not required and default is not None and place != "body":
        param["default"] = default
    text = " ".join(str(description or schema.get("description") or "").split())
    extras = [f"format: {schema['format']}"] if schema.get("format") else []
    if default is not None and place == "body":
        extras.append(f"API default: {_inline(default)}")
    text = f"{text} ({'; '.join(extras)})".strip() if extras else text
    if text:
        param["description"] = text
    param.update(shape)
    return _valid_param(param)


def schema_kind(doc: Resolver, schema: Json) -> str | None:
    """The one JSON type of ``schema``, or None (none, or a mix)."""
    kind = schema.get("type")
    if isinstance(kind, list):
        named = [k for k in kind if k != "null"]
        kind = named[0] if len(named) == 1 else None
    if isinstance(kind, str):
        return kind if kind in (*SCALARS, "array", "object") else None
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(values, list) and values:
        types = {_json_type(v) for v in values if v is not None}
        return types.pop() if len(types) == 1 else None
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    alternatives = _alternatives(doc, schema)
    found = {schema_kind(doc, alt) for alt in alternatives if alt.get("type") != "null"}
    return found.pop() if len(found) == 1 else None


def _alternatives(doc: Resolver, schema: Json) -> list[Json]:
    out = []
    for key in ("oneOf", "anyOf"):
        for alt in schema.get(key) or []:
            try:
                out.append(doc.schema(alt))
            except Unsupported:
                out.append({})
    return out


def _scalar_alternatives(doc: Resolver, schema: Json) -> bool:
    alternatives = [a for a in _alternatives(doc, schema) if a.get("type") != "null"]
    return bool(alternatives) and all(schema_kind(doc, a) in SCALARS for a in alternatives)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def _constraints(schema: Json, kind: str) -> Json:
    out: Json = {}
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(values, list):
        enum = [v for v in values if v is not None and _fits(kind, v)]
        if enum:
            out["enum"] = enum
    if kind in ("integer", "number"):
        out.update(_bounds(schema, kind))
    if kind == "string":
        for key in ("minLength", "maxLength"):
            if isinstance(schema.get(key), int) and schema[key] >= 0:
                out[key] = schema[key]
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
                out["pattern"] = pattern
            except re.error:
                pass  # an ECMA-262 feature Python lacks: the server still checks it
    return out


def _bounds(schema: Json, kind: str) -> Json:
    out: Json = {}
    step = 1 if kind == "integer" else 0
    for key, exclusive, sign in (
        ("minimum", "exclusiveMinimum", 1),
        ("maximum", "exclusiveMaximum", -1),
    ):
        value, excl = schema.get(key), schema.get(exclusive)
        if isinstance(excl, int | float) and not isinstance(excl, bool):  # 3.1: a number
            value, excl = excl, True
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value + sign * step if excl is True else value
    return out


def _fits(kind: str, value: Any) -> bool:
    actual = _json_type(value)
    return actual == kind or (kind == "number" and actual == "integer")


def _valid_param(param: Flow) -> Flow:
    """``param`` as the pack format accepts it: a default it would refuse is dropped."""
    try:
        spec = ParamSpec.model_validate(param)
    except ValidationError as error:
        if "default" not in param:
            raise Unsupported(first_error(error)) from error
        del param["default"]
        return _valid_param(param)
    if spec.default is not None and check_value("default", spec, spec.default) is not None:
        del param["default"]
    return param


def _inline(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def first_error(error: ValidationError) -> str:
    """The first problem of a pack-format validation error, on one line."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg'].removeprefix('Value error, ')}".lstrip(": ")
