"""What a tool tells the model, as one digest.

A tool's *definition* is the part of its ``tools/list`` entry a model reads or acts on:
``name``, ``title``, ``description``, ``inputSchema``, ``outputSchema`` and ``annotations``
(a field that is absent or null is left out). Its digest is the SHA-256 of its canonical JSON:
compact UTF-8, keys sorted at every depth, so the order a server sends keys in does not count
but every other byte does (one changed character, one added schema property, a flipped
annotation). Icons, ``_meta`` and other fields are not pinned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from catalyst_mcp.observability.auditchain import jsonable

__all__ = ["PINNED_FIELDS", "canonical", "definition", "digest"]

PINNED_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def definition(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The pinned fields of a ``tools/list`` entry."""
    return {field: tool[field] for field in PINNED_FIELDS if tool.get(field) is not None}


def canonical(value: Any) -> bytes:
    """Compact JSON with keys sorted at every depth (values JSON cannot hold as they are, such
    as integers beyond 64 bits, are first made plain)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        return orjson.dumps(jsonable(value), option=orjson.OPT_SORT_KEYS)


def digest(tool: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the tool's definition."""
    return hashlib.sha256(canonical(definition(tool))).hexdigest()
