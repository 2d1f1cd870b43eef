"""Arguments templated from a run's inputs and earlier results: JMESPath inside ``${...}``.

A template is any JSON value. Strings may hold expressions:

* ``"${inputs.order_id}"`` — the whole string is one expression: its value, of any type;
* ``"order ${inputs.id} of ${caller.subject}"`` — text with expressions: a string, each value
  put in as text (strings as they are, everything else as compact JSON);
* ``"$${"`` writes a literal ``${``.

The expressions see ``inputs``, ``steps`` (``steps.<id>.result``, ``.isError``, ``.content``,
``.status``), ``item`` and ``index`` (inside ``foreach``), ``run`` (``id``, ``workflow``) and
``caller`` (``subject``). JMESPath is a query language with no side effects, no attribute
access and no code: a workflow file cannot reach anything but this data (decision 022 says
why not Jinja, with the measured cost). Every expression is compiled when the file is loaded,
so a syntax error is a load problem at its ``file:line:col``, never a failed run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jmespath
import orjson
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

__all__ = ["Template", "TemplateError", "compile_template", "truthy"]

_EXPR = re.compile(r"\$\$\{|\$\{((?:[^}'\"`]|'[^']*'|\"[^\"]*\"|`[^`]*`)*)\}")


class TemplateError(ValueError):
    """A template that cannot be compiled, or an expression that failed on the data."""


@dataclass(frozen=True, slots=True)
class _Text:
    parts: tuple[str | ParsedResult, ...]


@dataclass(frozen=True, slots=True)
class _Whole:
    expression: ParsedResult


_Node = Any  # a JSON value, a dict/list of nodes, _Text or _Whole


class Template:
    """A compiled template: :meth:`render` gives its value for one run's data."""

    __slots__ = ("_node", "source", "static")

    def __init__(self, node: _Node, source: Any, static: bool) -> None:
        self._node = node
        self.source = source
        self.static = static  # no expression anywhere: render returns the source as it is

    def render(self, data: dict[str, Any]) -> Any:
        if self.static:
            return self._node
        return _render(self._node, data)

    def expressions(self) -> Iterator[str]:
        """The source text of every expression in the template."""
        yield from _expressions(self._node)


def compile_template(value: Any) -> Template:
    """Compile ``value``; :class:`TemplateError` names the first bad expression."""
    node, static = _compile(value)
    return Template(node, value, static)


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, "", [] and {} are false; everything else is true."""
    return not (value is None or value is False or value in ("", [], {}))


def _compile(value: Any) -> tuple[_Node, bool]:
    if isinstance(value, str):
        return _compile_text(value)
    if isinstance(value, dict):
        out: dict[str, _Node] = {}
        static = True
        for key, item in value.items():
            out[key], item_static = _compile(item)
            static = static and item_static
        return out, static
    if isinstance(value, list):
        items = [_compile(item) for item in value]
        return [node for node, _ in items], all(s for _, s in items)
    return value, True


def _parse(expression: str) -> ParsedResult:
    text = expression.strip()
    if not text:
        raise TemplateError("empty expression ${}")
    try:
        return jmespath.compile(text)
    except JMESPathError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TemplateError(f"invalid expression ${{{text}}}: {reason}") from error


def _compile_text(text: str) -> tuple[_Node, bool]:
    if "$" not in text:
        return text, True
    matches = list(_EXPR.finditer(text))
    if not matches:
        return text, True
    if len(matches) == 1 and matches[0].group(0) != "$${" and matches[0].span() == (0, len(text)):
        return _Whole(_parse(matches[0].group(1))), False
    parts: list[str | ParsedResult] = []
    last = 0
    dynamic = False
    for match in matches:
        parts.append(text[last : match.start()])
        if match.group(0) == "$${":
            parts.append("${")
        else:
            parts.append(_parse(match.group(1)))
            dynamic = True
        last = match.end()
    parts.append(text[last:])
    if not dynamic:
        return "".join(p for p in parts if isinstance(p, str)), True
    return _Text(tuple(p for p in parts if p != "")), False


def _search(expression: ParsedResult, data: dict[str, Any]) -> Any:
    try:
        return expression.search(data)
    except JMESPathError as error:
        raise TemplateError(f"${{{expression.expression}}} failed: {error}") from error


def _render(node: _Node, data: dict[str, Any]) -> Any:
    if isinstance(node, _Whole):
        return _search(node.expression, data)
    if isinstance(node, _Text):
        out = []
        for part in node.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = _search(part, data)
            out.append(value if isinstance(value, str) else orjson.dumps(value).decode())
        return "".join(out)
    if isinstance(node, dict):
        return {key: _render(item, data) for key, item in node.items()}
    if isinstance(node, list):
        return [_render(item, data) for item in node]
    return node


def _expressions(node: _Node) -> Iterator[str]:
    if isinstance(node, _Whole):
        yield node.expression.expression
    elif isinstance(node, _Text):
        for part in node.parts:
            if not isinstance(part, str):
                yield part.expression
    elif isinstance(node, dict):
        for item in node.values():
            yield from _expressions(item)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)
