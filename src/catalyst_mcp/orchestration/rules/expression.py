"""Rule conditions: a small, safe expression language, compiled once and evaluated per call.

The syntax is Python's expression syntax, evaluated by ``simpleeval`` (decision 021) with less
than it allows by default::

    arguments.limit > 1000 and "analyst" in roles and arguments.dry_run != true
    tool.startswith("db__") and "drop" in arguments.sql.lower()
    time.hour >= 18 or time.weekday in ["sat", "sun"]
    result.rows > 100 or is_error

What an expression can reach is data, never Python: the variables hold JSON values (the call's
arguments and result as the client sent or will see them); ``a.b`` reads key ``b`` of mapping
``a`` (a missing key reads as ``None``, as does ``a["b"]``, and a list index out of range);
``true``, ``false`` and ``null`` may be written as in JSON; the only methods are a few pure
ones of strings (:data:`STRING_METHODS`), the only functions those of :data:`FUNCTIONS`. Names
starting with ``_`` are refused when the rule is loaded, so ``arguments.__class__`` never gets
as far as a call. Evaluation is bounded: no comprehensions, lambdas, assignments, ``**`` or
shifts; strings and lists made by ``+`` and ``*`` are capped by simpleeval
(``MAX_STRING_LENGTH``); an expression is at most :data:`MAX_LENGTH` characters and
:data:`MAX_NODES` syntax nodes; so its cost grows with its own size and the size of the values
it reads, nothing else.

:func:`compile_expression` checks all of that up front and raises :class:`ExpressionError`
with the column of the problem. :meth:`Expression.evaluate` raises :class:`ExpressionError`
when a value has the wrong type for what is done with it (``None > 3``): the rule engine
decides what a failed condition means.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import translate
from functools import lru_cache
from typing import Any

from simpleeval import (  # type: ignore[import-untyped]
    EvalWithCompoundTypes,
    FeatureNotAvailable,
    InvalidExpression,
    safe_add,
    safe_mult,
)

__all__ = [
    "FUNCTIONS",
    "MAX_LENGTH",
    "MAX_NODES",
    "STRING_METHODS",
    "VARIABLES",
    "Expression",
    "ExpressionError",
    "compile_expression",
]

MAX_LENGTH = 2000
MAX_NODES = 200
VARIABLES: dict[str, str] = {
    "user": "the caller's user name (subject)",
    "kind": "the caller's kind: user, service or anonymous",
    "roles": "the caller's roles (a list)",
    "scopes": "the caller's API key scopes (a list), or None when not narrowed",
    "via": "how the caller authenticated: none, api_key or jwt",
    "server": "the server (or pack) serving the tool",
    "tool": "the tool's public name (server__tool)",
    "arguments": "the call's arguments (a mapping)",
    "result": "after the call: its structuredContent, else the JSON of its text, else the text",
    "is_error": "after the call: whether the result is a tool error",
    "time": "now, on the rule's timezone clock: hour, minute, weekday (mon..sun), day, month, "
    "year, date (YYYY-MM-DD), timestamp (seconds since 1970)",
    "transport": "how the call came: mcp or rest",
    "era": "the caller's protocol era: legacy or modern",
}
STRING_METHODS = frozenset(
    {
        "startswith",
        "endswith",
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "split",
        "count",
        "find",
        "isdigit",
    }
)


class ExpressionError(Exception):
    """An expression that cannot be compiled (``column`` 1-based, when known) or evaluated."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(translate(pattern))


def glob(text: Any, pattern: Any) -> bool:
    """Whether ``text`` matches the shell-style glob ``pattern`` (``db__*``), case-sensitively."""
    if not isinstance(text, str) or not isinstance(pattern, str):
        return False
    return _glob(pattern).match(text) is not None


def _length(value: Any) -> int:
    return 0 if value is None else len(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _length,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "glob": glob,
    "lower": lambda s: s.lower() if isinstance(s, str) else s,
    "upper": lambda s: s.upper() if isinstance(s, str) else s,
}

_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: safe_add,  # strings and lists stay under simpleeval's MAX_STRING_LENGTH
    ast.Sub: operator.sub,
    ast.Mult: safe_mult,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Gt: operator.gt,
    ast.Lt: operator.lt,
    ast.GtE: operator.ge,
    ast.LtE: operator.le,
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.In: lambda x, y: y is not None and x in y,
    ast.NotIn: lambda x, y: y is None or x not in y,
    ast.Is: lambda x, y: x is y,
    ast.IsNot: lambda x, y: x is not y,
}
# the syntax an expression may use: anything else is refused when it is compiled
_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.BinOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Attribute,
    ast.Subscript,
    ast.List,
    ast.Tuple,
    *_OPERATORS,
)
_NODES_OF_EVALUATOR = frozenset(
    {
        ast.Name,
        ast.UnaryOp,
        ast.BinOp,
        ast.BoolOp,
        ast.Compare,
        ast.IfExp,
        ast.Call,
        ast.Subscript,
        ast.Attribute,
        ast.Constant,
        ast.List,
        ast.Tuple,
    }
)


class _DataEval(EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval over JSON data: attributes are mapping keys (and a few string methods),
    subscripts and attributes of missing things are None, and nothing else is reachable."""

    def __init__(self) -> None:
        super().__init__(operators=dict(_OPERATORS), functions=dict(FUNCTIONS), names={})
        nodes: dict[type, Callable[..., Any]] = getattr(self, "nodes")  # noqa: B009
        self.nodes: dict[type, Callable[..., Any]] = {
            k: v for k, v in nodes.items() if k in _NODES_OF_EVALUATOR
        }

    def _eval(self, node: ast.AST) -> Any:
        # simpleeval re-checks every value for functions and modules (walking whole argument
        # mappings each time): the values here are JSON, so the node's handler is enough
        try:
            handler = self.nodes[type(node)]
        except KeyError:
            raise FeatureNotAvailable(f"{type(node).__name__} is not available") from None
        return handler(node)

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        value = self._eval(node.value)
        if isinstance(value, dict):
            return value.get(node.attr)
        if isinstance(value, str) and node.attr in STRING_METHODS:
            return getattr(value, node.attr)
        if value is None:
            return None
        raise FeatureNotAvailable(f"a {_kind(value)} has no field {node.attr!r}")

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        container = self._eval(node.value)
        key = self._eval(node.slice)
        if isinstance(container, dict):
            return container.get(key) if isinstance(key, str | int | float | bool) else None
        if isinstance(container, list | str) and isinstance(key, int) and not isinstance(key, bool):
            return container[key] if -len(container) <= key < len(container) else None
        if container is None:
            return None
        raise FeatureNotAvailable(f"a {_kind(container)} cannot be indexed by {_kind(key)}")

    def _eval_call(self, node: ast.Call) -> Any:
        if node.keywords:
            raise FeatureNotAvailable("keyword arguments are not available")
        if isinstance(node.func, ast.Attribute):
            function = self._eval_attribute(node.func)
            if not callable(function):
                raise FeatureNotAvailable(f"{node.func.attr!r} is not a method")
        else:
            function = self.functions[node.func.id]  # type: ignore[attr-defined]
        return function(*(self._eval(a) for a in node.args))


def _kind(value: Any) -> str:
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)


@dataclass(frozen=True, slots=True, eq=False)
class Expression:
    """A compiled condition: its source, its syntax tree, and the variables it reads."""

    source: str
    tree: ast.AST
    names: frozenset[str]

    def evaluate(self, variables: Mapping[str, Any]) -> bool:
        """The truth of the expression for these ``variables``; ExpressionError if a value
        does not fit what is done with it."""
        evaluator = _EVALUATOR
        evaluator.names = variables
        try:
            return bool(evaluator._eval(self.tree))
        except (FeatureNotAvailable, InvalidExpression) as exc:
            raise ExpressionError(str(exc).removeprefix("Sorry, ")) from None
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError) as exc:
            raise ExpressionError(_explain(exc)) from None
        finally:
            evaluator.names = _EMPTY

    def value(self, variables: Mapping[str, Any]) -> Any:
        """The expression's value (not reduced to true or false), for explanations."""
        evaluator = _EVALUATOR
        evaluator.names = variables
        try:
            return evaluator._eval(self.tree)
        except (FeatureNotAvailable, InvalidExpression) as exc:
            raise ExpressionError(str(exc).removeprefix("Sorry, ")) from None
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError) as exc:
            raise ExpressionError(_explain(exc)) from None
        finally:
            evaluator.names = _EMPTY


_EMPTY: dict[str, Any] = {}
# One evaluator for every expression: evaluation never awaits, so calls never interleave.
_EVALUATOR = _DataEval()


def _explain(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, TypeError) and "NoneType" in text:
        return f"a missing value (None) was used as a value: {text}"
    return f"{type(exc).__name__}: {text}"


def compile_expression(source: str, variables: frozenset[str] | None = None) -> Expression:
    """Parse and check ``source`` once; ExpressionError (with the column) if it is not a
    valid condition. ``variables``: the names it may read (default: :data:`VARIABLES`)."""
    known = frozenset(VARIABLES) if variables is None else variables
    text = source.strip()
    if not text:
        raise ExpressionError("the condition is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the condition is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        # an expression that ends too soon has no offset: its problem is just past its end
        end: int = exc.offset or len(text) + 1
        raise ExpressionError(f"not a valid expression: {exc.msg}", end) from None
    tree = _Literals().visit(tree)
    names: set[str] = set()
    count = 0
    for node in ast.walk(tree):
        count += 1
        column = getattr(node, "col_offset", -1) + 1 or None
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{_syntax_name(node)} is not allowed in a condition", column)
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                continue
            if node.id not in known:
                raise ExpressionError(
                    f"unknown name {node.id!r} (known: {', '.join(sorted(known))})", column
                )
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"field names may not start with '_' ({node.attr!r})", column)
        elif isinstance(node, ast.Call):
            _check_call(node, column)
        elif isinstance(node, ast.Constant) and not isinstance(
            node.value, str | int | float | bool | type(None)
        ):
            raise ExpressionError("only strings, numbers, true/false and None", column)
    if count > MAX_NODES:
        raise ExpressionError(f"the condition is too complex (more than {MAX_NODES} parts)")
    for node in ast.walk(tree):  # a function name used as a value, not called
        if isinstance(node, ast.Name) and node.id in FUNCTIONS and not _called(tree, node):
            raise ExpressionError(f"{node.id!r} is a function: call it", node.col_offset + 1)
    return Expression(source, tree.body, frozenset(names))


class _Literals(ast.NodeTransformer):
    """``true``, ``false`` and ``null`` (as in JSON and YAML) are ``True``, ``False``, ``None``."""

    VALUES: dict[str, Any] = {"true": True, "false": False, "null": None}

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.VALUES:
            return ast.copy_location(ast.Constant(self.VALUES[node.id]), node)
        return node


def _check_call(node: ast.Call, column: int | None) -> None:
    if node.keywords:
        raise ExpressionError("keyword arguments are not available", column)
    func = node.func
    if isinstance(func, ast.Name):
        if func.id not in FUNCTIONS:
            raise ExpressionError(
                f"unknown function {func.id!r} (known: {', '.join(sorted(FUNCTIONS))})", column
            )
    elif isinstance(func, ast.Attribute):
        if func.attr not in STRING_METHODS:
            raise ExpressionError(
                f"unknown method {func.attr!r} (strings have: {', '.join(sorted(STRING_METHODS))})",
                column,
            )
    else:
        raise ExpressionError("only functions and string methods can be called", column)


def _called(tree: ast.AST, name: ast.Name) -> bool:
    return any(isinstance(n, ast.Call) and n.func is name for n in ast.walk(tree))


def _syntax_name(node: ast.AST) -> str:
    names = {
        ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.GeneratorExp: "a generator",
        ast.NamedExpr: "an assignment (:=)",
        ast.Pow: "'**'",
        ast.LShift: "'<<'",
        ast.RShift: "'>>'",
        ast.Starred: "'*' unpacking",
        ast.Dict: "a mapping literal",
        ast.Set: "a set literal",
        ast.JoinedStr: "an f-string",
        ast.Slice: "a slice",
        ast.Await: "await",
    }
    return names.get(type(node), type(node).__name__)
