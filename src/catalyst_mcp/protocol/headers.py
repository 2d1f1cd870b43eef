"""The modern era's request metadata headers: value encoding and ``x-mcp-header`` arguments.

``Mcp-Name`` and ``Mcp-Param-{Name}`` values travel as plain visible ASCII, or base64 inside the
``=?base64?…?=`` sentinel when they are not. A tool argument whose schema property carries
``"x-mcp-header": "Name"`` is mirrored as ``Mcp-Param-Name`` so intermediaries can route on it.
Used in both directions: validating clients' headers, and setting them towards upstreams.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from catalyst_mcp.errors import HeaderMismatch

__all__ = ["decode_header_value", "encode_header_value", "header_text", "param_headers"]

SENTINEL_START = "=?base64?"
SENTINEL_END = "?="


def encode_header_value(value: str) -> str:
    """Plain when it is visible ASCII without surrounding space, else the base64 sentinel."""
    plain = (
        value
        and value == value.strip()
        and (
            (value.isascii() and value.isprintable())  # the common case, in C
            or all(0x20 <= ord(c) <= 0x7E or c == "\t" for c in value)
        )
        and not (value.startswith(SENTINEL_START) and value.endswith(SENTINEL_END))
    )
    if plain:
        return value
    return SENTINEL_START + base64.b64encode(value.encode()).decode() + SENTINEL_END


def decode_header_value(raw: bytes) -> str:
    """A received value: surrounding whitespace dropped (RFC 9110), the sentinel decoded."""
    text = raw.decode("latin-1").strip(" \t")
    if text.startswith(SENTINEL_START) and text.endswith(SENTINEL_END):
        try:
            inner = text[len(SENTINEL_START) : -len(SENTINEL_END)]
            return base64.b64decode(inner, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise HeaderMismatch("Header mismatch: invalid base64 header value") from exc
    return text


def header_text(value: Any) -> str:
    """How an argument value is written in a header (booleans lower-case, numbers as written)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def param_headers(tool: dict[str, Any]) -> list[tuple[str, str]]:
    """``(header name, argument name)`` for each top-level argument marked ``x-mcp-header``."""
    schema = tool.get("inputSchema")
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return []
    return [
        (spec["x-mcp-header"], name)
        for name, spec in props.items()
        if isinstance(spec, dict) and isinstance(spec.get("x-mcp-header"), str)
    ]
