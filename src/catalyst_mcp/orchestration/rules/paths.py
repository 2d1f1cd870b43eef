"""Paths into a call's arguments and result, for the ``transform`` action: set and redact.

A path starts with ``arguments`` or ``result`` and goes down by mapping keys and list items::

    arguments.limit                   a field
    arguments.filter.owner            a field of a field (set creates missing mappings)
    arguments["odd key"].x            a key that is not a plain name
    arguments.rows[0].email           one item of a list
    result.customers[*].email         every item of a list
    result.*                          every field of a mapping

:func:`parse_path` checks a path when a rule is loaded (ValueError says what is wrong).
:func:`set_at` and :func:`redact_at` change a value in place: the rule engine hands them copies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ALL", "Path", "parse_path", "redact_at", "set_at"]

Root = Literal["arguments", "result"]
ALL = "*"
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_TOKEN = re.compile(
    r"""\.(?P<name>[A-Za-z_$][A-Za-z0-9_$-]*|\*)|\[(?P<index>-?\d+|\*)\]"""
    r"""|\[(?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\]"""
)
Step = str | int  # a key, an index, or ALL


@dataclass(frozen=True, slots=True)
class Path:
    """A parsed path: its root and the steps below it (keys, indexes, :data:`ALL`)."""

    text: str
    root: Root
    steps: tuple[Step, ...]


def parse_path(text: str) -> Path:
    """The path ``text`` names; ValueError says what is wrong with it."""
    source = text.strip()
    head = _NAME.match(source)
    if head is None or head.group(0) not in ("arguments", "result"):
        raise ValueError(f"path {text!r} must start with 'arguments' or 'result'")
    root: Root = "arguments" if head.group(0) == "arguments" else "result"
    steps: list[Step] = []
    at = head.end()
    while at < len(source):
        found = _TOKEN.match(source, at)
        if found is None:
            raise ValueError(
                f'path {text!r}: cannot read {source[at:]!r} (use .name, [0], [*] or ["key"])'
            )
        if found.group("name") is not None:
            steps.append(found.group("name"))
        elif found.group("index") is not None:
            index = found.group("index")
            steps.append(ALL if index == ALL else int(index))
        else:
            quoted = found.group("quoted")
            steps.append(bytes(quoted[1:-1], "utf-8").decode("unicode_escape"))
        at = found.end()
    if root == "arguments" and not steps:
        raise ValueError(f"path {text!r} names all the arguments: name a field")
    return Path(source, root, tuple(steps))


def set_at(data: dict[str, Any], steps: tuple[Step, ...], value: Any) -> None:
    """Set the place ``steps`` name in ``data`` to ``value``; missing mappings on the way are
    made; :data:`ALL` sets every existing item; a place that cannot exist (a key of a list,
    an index past the end) is left alone."""
    _walk(data, steps, lambda container, key: _assign(container, key, value), create=True)


def redact_at(data: Any, steps: tuple[Step, ...], mask: Any) -> int:
    """Replace every existing value ``steps`` name in ``data`` by ``mask``; how many."""
    count = 0

    def replace(container: Any, key: Step) -> None:
        nonlocal count
        if _holds(container, key, present=True):
            container[key] = mask
            count += 1

    _walk(data, steps, replace, create=False)
    return count


def _assign(container: Any, key: Step, value: Any) -> None:
    if _holds(container, key, present=False):
        container[key] = value


def _holds(container: object, key: Step, *, present: bool) -> bool:
    """Whether ``key`` is a place in ``container``: a key of a mapping (an existing one when
    ``present``), an index within a list."""
    if isinstance(container, dict):
        return isinstance(key, str) and (not present or key in container)
    if isinstance(container, list):
        return isinstance(key, int) and -len(container) <= key < len(container)
    return False


def _walk(data: Any, steps: tuple[Step, ...], act: Any, *, create: bool) -> None:
    if not steps:
        return
    *above, last = steps
    containers = [data]
    for step in above:
        below = []
        for container in containers:
            below.extend(_children(container, step, create=create))
        containers = below
        if not containers:
            return
    for container in containers:
        if last == ALL:
            keys: list[Step] = (
                list(container)
                if isinstance(container, dict)
                else list(range(len(container)))
                if isinstance(container, list)
                else []
            )
            for key in keys:
                act(container, key)
        else:
            act(container, last)


def _children(container: Any, step: Step, *, create: bool) -> list[Any]:
    if step == ALL:
        if isinstance(container, dict):
            return list(container.values())
        return list(container) if isinstance(container, list) else []
    if isinstance(container, dict) and isinstance(step, str):
        child = container.get(step)
        if child is None and create:
            child = container[step] = {}
        return [child] if isinstance(child, dict | list) else []
    if (
        isinstance(container, list)
        and isinstance(step, int)
        and -len(container) <= step < len(container)
    ):
        child = container[step]
        return [child] if isinstance(child, dict | list) else []
    return []
