"""Building the HTTP request of a REST action from the call's values: pure functions, no I/O.

An action is compiled once into a :class:`RequestPlan`; :func:`build` then makes each call's
URL, headers and body from the values. The rules:

* **path**: ``{param}`` becomes the value's text, percent-encoded with ``quote(text, safe='')``
  so '/', '?', '#' and '%' cannot leave the segment. A value made only of dots is encoded
  (``%2E``), and a segment that would still read as '.' or '..' is refused: WHATWG URL parsers
  and RFC 3986 normalisation treat ``%2E%2E`` as '..', so encoding alone does not stop a
  traversal at the server. A value with a backslash is refused too (servers may decode ``%5C``
  as a separator). A path variable without a value is an error.
* **query, headers, body**: a string that is exactly ``"{param}"`` becomes the value with its
  JSON type; a longer string has each ``{param}`` replaced by the value's text. An entry that
  needs an absent (None) value is left out: the query key, the header, the object key or the
  list item. Only the call's parameters are replaced; any other ``{word}`` stays as written.
* **text of a value**: strings as they are, booleans ``true``/``false``, numbers as written,
  lists comma-separated; an object has no text (error).
* **query**: lists become repeated keys; every key and value is percent-encoded.
* **headers**: defaults (``User-Agent: catalyst-mcp``, ``Accept: application/json, */*``),
  then the connection's, then the action's, each overriding the last (names compare without
  case). ``${secret:NAME}`` in a value is replaced by the secret the caller resolved. A value
  with CR, LF or NUL, or that is not Latin-1 text, is refused; Host, Content-Length,
  Transfer-Encoding and Connection are the HTTP client's to set.
* **body**: serialised with orjson, sent as ``application/json`` unless a header says otherwise.

Substituted values are never scanned again: a value cannot smuggle in a ``{param}`` or a
``${secret:...}`` reference, and nothing is ever built by templating JSON text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

import orjson

__all__ = [
    "OMIT",
    "BuildError",
    "RequestPlan",
    "SecretRef",
    "Text",
    "Var",
    "build",
    "compile_template",
    "plan_request",
    "render",
    "render_path",
    "secret_names",
    "text_of",
]

PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
PARAM_OR_SECRET = re.compile(r"\$\{secret:([A-Za-z0-9_.\-/]+)\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
USER_AGENT = "catalyst-mcp"
# set by the HTTP client itself; a pack may not send them
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_MISSING: Final = object()
_EMPTY: Mapping[str, str] = {}


class BuildError(ValueError):
    """The values cannot make a valid request; the message is written for the caller."""


class _Omit:
    __slots__ = ()

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = _Omit()  # what an entry needing an absent value renders to


@dataclass(frozen=True, slots=True)
class Var:
    """A whole ``"{name}"`` string: the value with its JSON type."""

    name: str


@dataclass(frozen=True, slots=True)
class SecretRef:
    """``${secret:NAME}`` inside a header or auth value."""

    name: str


@dataclass(frozen=True, slots=True)
class Text:
    """A string with references inside: literal text, :class:`Var` and :class:`SecretRef`."""

    parts: tuple[str | Var | SecretRef, ...]


def compile_template(value: Any, *, params: bool = True, secrets: bool = False) -> Any:
    """``value`` (any YAML structure) with its strings compiled into :class:`Var`/:class:`Text`.

    ``params``: replace ``{param}``; ``secrets``: replace ``${secret:NAME}``."""
    if isinstance(value, str):
        return _compile_string(value, params, secrets)
    if isinstance(value, dict):
        return {k: compile_template(v, params=params, secrets=secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_template(v, params=params, secrets=secrets) for v in value]
    return value


def _compile_string(value: str, params: bool, secrets: bool) -> str | Var | Text:
    pattern = PARAM_OR_SECRET if secrets else PARAM if params else None
    if pattern is None:
        return value
    parts: list[str | Var | SecretRef] = []
    end = 0
    for match in pattern.finditer(value):
        secret, name = (match.group(1), match.group(2)) if secrets else (None, match.group(1))
        if name is not None and not params:
            continue
        if match.start() > end:
            parts.append(value[end : match.start()])
        parts.append(SecretRef(secret) if secret is not None else Var(name or ""))
        end = match.end()
    if not parts:
        return value
    if end < len(value):
        parts.append(value[end:])
    if len(parts) == 1 and isinstance(parts[0], Var):
        return parts[0]
    return Text(tuple(parts))


def secret_names(node: Any) -> frozenset[str]:
    """The names of every ``${secret:NAME}`` in a compiled template."""
    if isinstance(node, Text):
        return frozenset(p.name for p in node.parts if isinstance(p, SecretRef))
    if isinstance(node, dict):
        return frozenset().union(*(secret_names(v) for v in node.values()))
    if isinstance(node, list):
        return frozenset().union(*(secret_names(v) for v in node))
    return frozenset()


def _is_static(node: Any) -> bool:
    if isinstance(node, Var | Text):
        return False
    if isinstance(node, dict):
        return all(_is_static(v) for v in node.values())
    if isinstance(node, list):
        return all(_is_static(v) for v in node)
    return True


def text_of(value: Any, name: str = "value") -> str:
    """The text a value stands for inside a string, a path, a query or a header."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return ",".join(text_of(v, name) for v in value if v is not None)
    raise BuildError(f"parameter '{name}' is an object: it cannot be placed in text")


def render(node: Any, values: Mapping[str, Any], secrets: Mapping[str, str] = _EMPTY) -> Any:
    """A compiled template filled in with ``values``; :data:`OMIT` if it needs an absent one."""
    kind = type(node)
    if kind is str:
        return node
    if kind is Var:
        value = values.get(node.name, _MISSING)
        if value is _MISSING:
            return "{" + node.name + "}"  # not a parameter: stays as written
        return OMIT if value is None else value
    if kind is Text:
        out = []
        for part in node.parts:
            if type(part) is str:
                out.append(part)
            elif type(part) is SecretRef:
                out.append(secrets[part.name])
            else:
                value = values.get(part.name, _MISSING)
                if value is None:
                    return OMIT
                out.append(
                    "{" + part.name + "}" if value is _MISSING else text_of(value, part.name)
                )
        return "".join(out)
    if kind is dict:
        result = {}
        for key, item in node.items():
            value = render(item, values, secrets)
            if value is not OMIT:
                result[key] = value
        return result
    if kind is list:
        return [v for v in (render(item, values, secrets) for item in node) if v is not OMIT]
    return node


def _encode(text: str) -> str:
    """``quote(text, safe='')``, skipped for the common all-alphanumeric text (it is slow)."""
    return text if text.isalnum() and text.isascii() else quote(text, safe="")


# ---- path ---------------------------------------------------------------------------------

PathTemplate = tuple[str | tuple[str | Var, ...], ...]  # one entry per '/'-separated segment


def compile_path(path: str) -> PathTemplate:
    segments: list[str | tuple[str | Var, ...]] = []
    for segment in path.split("/"):
        node = _compile_string(segment, True, False)
        if isinstance(node, str):
            segments.append(node)
        elif isinstance(node, Var):
            segments.append((node,))
        else:
            segments.append(tuple(p for p in node.parts if not isinstance(p, SecretRef)))
    return tuple(segments)


def _path_value(var: Var, values: Mapping[str, Any]) -> str:
    value = values.get(var.name)
    if value is None:
        raise BuildError(f"the path needs a value for '{var.name}'")
    raw = text_of(value, var.name)
    if "\\" in raw:
        raise BuildError(
            f"the path value of '{var.name}' cannot contain a backslash (servers may read it "
            "as '/')"
        )
    text = _encode(raw)
    if not text:
        raise BuildError(f"the path needs a non-empty value for '{var.name}'")
    if not text.strip("."):
        text = text.replace(".", "%2E")
    return text


def render_path(template: PathTemplate, values: Mapping[str, Any]) -> str:
    """The path with each variable percent-encoded; a '.' or '..' segment made by a value is
    refused."""
    out = []
    for segment in template:
        if type(segment) is str:
            out.append(segment)
            continue
        if len(segment) == 1 and isinstance(segment[0], Var):  # the common "/{id}" segment
            text = _path_value(segment[0], values)
        else:
            text = "".join(p if isinstance(p, str) else _path_value(p, values) for p in segment)
        if "." in text or "%2" in text:
            bare = text.replace("%2E", ".").replace("%2e", ".")
            if bare in (".", ".."):
                raise BuildError(f"a path value cannot make the segment {bare!r}")
        out.append(text)
    return "/".join(out)


# ---- the whole request --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """A REST action compiled against its connection, once."""

    method: str
    prefix: str  # scheme://host[:port]/base-path (no trailing '/')
    path: PathTemplate | str  # a str when it has no variables
    query: tuple[tuple[str, Any], ...]  # (encoded key, compiled value)
    headers: tuple[tuple[str, Any], ...]  # (name, compiled value), overrides applied
    body: Any  # compiled body template (None: no body)
    body_bytes: bytes | None  # the body, when it has no references
    secret_names: frozenset[str]


def plan_request(
    base_url: str,
    connection_headers: Mapping[str, str],
    method: str,
    path: str,
    query: Mapping[str, Any],
    headers: Mapping[str, str],
    body: Any,
) -> RequestPlan:
    """Compile one action. Raises :class:`BuildError` for a header that may not be set."""
    parts = urlsplit(base_url)
    prefix = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    merged: dict[str, tuple[str, Any]] = {
        "user-agent": ("User-Agent", USER_AGENT),
        "accept": ("Accept", "application/json, */*;q=0.5"),
    }
    for source in (connection_headers, headers):
        for name, value in source.items():
            if name.lower() in RESERVED_HEADERS:
                raise BuildError(f"the header {name} is set by the connector, not by a pack")
            _check_header_value(name, value)
            merged[name.lower()] = (name, compile_template(value, secrets=True))
    if body is not None and "content-type" not in merged:
        merged["content-type"] = ("Content-Type", "application/json")
    compiled_headers = tuple(merged.values())
    compiled_body = compile_template(body)
    body_bytes = None
    if body is not None and _is_static(compiled_body):
        body_bytes = _dump(compiled_body)
    path_template = compile_path(path)
    static = all(type(s) is str for s in path_template)
    return RequestPlan(
        method=method,
        prefix=prefix,
        path=path if static else path_template,
        query=tuple((quote(str(k), safe=""), compile_template(v)) for k, v in query.items()),
        headers=compiled_headers,
        body=compiled_body,
        body_bytes=body_bytes,
        secret_names=frozenset().union(*(secret_names(v) for _, v in compiled_headers)),
    )


def _check_header_value(name: str, text: str) -> str:
    if "\r" in text or "\n" in text or "\0" in text:
        raise BuildError(f"the value of header {name} contains a line break")
    if not text.isascii():
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            raise BuildError(f"header {name}: value must be Latin-1 text") from None
    return text


def _dump(body: Any) -> bytes:
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise BuildError(f"the body cannot be encoded as JSON: {exc}") from exc


def _query_pairs(key: str, value: Any, out: list[str]) -> None:
    if value is None or value is OMIT:
        return
    if isinstance(value, dict):
        raise BuildError(f"the query parameter {key!r} cannot be an object")
    if isinstance(value, list | tuple):
        for item in value:
            _query_pairs(key, item, out)
        return
    out.append(f"{key}={_encode(text_of(value, key))}")


def build(
    plan: RequestPlan, values: Mapping[str, Any], secrets: Mapping[str, str] = _EMPTY
) -> tuple[str, dict[str, str], bytes]:
    """The URL (query included), headers and body of one call."""
    path = plan.path
    url = plan.prefix + (path if isinstance(path, str) else render_path(path, values))
    if plan.query:
        pairs: list[str] = []
        for key, node in plan.query:
            _query_pairs(key, render(node, values), pairs)
        if pairs:
            url += "?" + "&".join(pairs)
    headers: dict[str, str] = {}
    for name, node in plan.headers:
        if type(node) is str:
            headers[name] = node
            continue
        value = render(node, values, secrets)
        if value is OMIT:
            continue
        headers[name] = _check_header_value(name, text_of(value, name))
    if plan.body_bytes is not None:
        return url, headers, plan.body_bytes
    if plan.body is None:
        return url, headers, b""
    body = render(plan.body, values)
    if body is OMIT:
        headers.pop("Content-Type", None)
        return url, headers, b""
    return url, headers, _dump(body)
