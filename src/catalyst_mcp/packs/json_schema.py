"""The pack format as a JSON Schema (draft 2020-12), for editors and other tools.

Built from the pydantic models of :mod:`catalyst_mcp.packs.schema` (so it never drifts from what
the loader accepts), then made useful to an editor: the ``$schema``/``$id``/title a YAML
language server expects, the naming rules the models check in code (pack, tool and parameter
names), and the "exactly one of" rules written as ``oneOf``. What only the whole pack can show
(a tool naming a declared connection, ``:name`` binds) stays with ``catalyst packs validate``.
"""

from __future__ import annotations

import copy
from typing import Any

from catalyst_mcp import __version__
from catalyst_mcp.packs.schema import PARAM_NAME, TOOL_NAME, Pack
from catalyst_mcp.settings import SERVER_NAME

__all__ = ["DRAFT", "SCHEMA_ID", "pack_json_schema"]

Json = dict[str, Any]
DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = f"urn:catalyst-mcp:pack-schema:{__version__}"

# what each auth type needs (RestAuth checks the same in code)
_AUTH_NEEDS = {
    "bearer": ["token"],
    "basic": ["username", "password"],
    "api_key": ["name", "value"],
    "oauth2_client_credentials": ["token_url", "client_id", "client_secret"],
}


def pack_json_schema() -> Json:
    """The JSON Schema of one pack file (a fresh dict: callers may change it)."""
    schema = copy.deepcopy(Pack.model_json_schema(by_alias=True, mode="validation"))
    defs: dict[str, Json] = schema.setdefault("$defs", {})
    _drop_noise(schema)
    for definition in defs.values():
        _drop_noise(definition)
    schema["properties"]["pack"]["pattern"] = SERVER_NAME.pattern
    for model in ("ToolSpec", "ResourceSpec", "PromptSpec"):
        name = defs[model]["properties"]["name"]
        name["pattern"] = TOOL_NAME.pattern
        name["not"] = {"pattern": "__"}
    for model in ("ToolSpec", "ResourceSpec"):
        params = defs[model]["properties"]["parameters"]
        params["propertyNames"] = {"pattern": PARAM_NAME.pattern}
    defs["ToolSpec"]["oneOf"] = _exactly_one(["sql", "rest"], "object")
    defs["ResourceSpec"]["allOf"] = [
        {"oneOf": _exactly_one(["uri", "uri_template"], "string")},
        {"oneOf": _exactly_one(["text", "file", "sql", "rest"], None)},
    ]
    defs["PackTest"]["oneOf"] = _exactly_one(["tool", "read", "prompt"], "string")
    defs["RestAuth"]["allOf"] = [
        {"if": {"properties": {"type": {"const": kind}}}, "then": {"required": needs}}
        for kind, needs in _AUTH_NEEDS.items()
    ]
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "Catalyst knowledge pack",
        "description": (
            "One knowledge pack file: connections plus the tools, resources and prompts built "
            "on them (docs/packs.md). Check a pack completely with `catalyst packs validate`."
        ),
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def _exactly_one(keys: list[str], kind: str | None) -> list[Json]:
    """``oneOf`` branches: exactly one of ``keys`` is given (not null)."""
    branches = []
    for key in keys:
        present: Json = {"type": kind} if kind else {"not": {"type": "null"}}
        branches.append({"required": [key], "properties": {key: present}})
    return branches


def _drop_noise(model: Json) -> None:
    """Remove what pydantic adds for Python, not for people: property titles made from field
    names ("Minlength"), and the OpenAPI-only ``discriminator`` (see :func:`_discriminated`)."""
    for prop in model.get("properties", {}).values():
        prop.pop("title", None)
        _discriminated(prop)


def _discriminated(node: Any) -> None:
    """``oneOf`` + ``discriminator`` (``type: sql`` or ``rest``) as JSON Schema ``if``/``then``:
    an editor then checks a connection against its own kind's keys, and says what is missing
    instead of that the value matches neither kind."""
    if isinstance(node, list):
        for value in node:
            _discriminated(value)
        return
    if not isinstance(node, dict):
        return
    found = node.pop("discriminator", None)
    if isinstance(found, dict) and "oneOf" in node:
        key, mapping = found["propertyName"], found["mapping"]
        del node["oneOf"]
        node.update(
            {
                "type": "object",
                "required": [key],
                "properties": {key: {"enum": list(mapping)}},
                "allOf": [
                    {
                        "if": {"required": [key], "properties": {key: {"const": value}}},
                        "then": {"$ref": ref},
                    }
                    for value, ref in mapping.items()
                ],
            }
        )
    for value in node.values():
        _discriminated(value)
