"""A readable difference between a tool's approved definition and its current one.

Made for a person deciding whether to approve: every field that differs is named by its path
(``inputSchema.properties.path.description``). Text is compared word by word, in the manner of
``git diff --word-diff`` (``[-removed-]{+added+}``), so one sentence slipped into a long
description stands out; text of several lines is compared line by line. Other values show
their old and new JSON. A new tool (nothing approved) shows its whole definition (but its
name, which heads it).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from catalyst_mcp.trust.digest import PINNED_FIELDS

__all__ = ["definition_diff", "json_text", "text_diff"]

_WORDS = re.compile(r"\s+|\S+")
INDENT = "    "


def json_text(value: Any) -> str:
    """Compact JSON with sorted keys (one line)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def text_diff(old: str, new: str) -> list[str]:
    """Lines showing how ``old`` became ``new``: one word-diff line per line of a one-line
    text, a unified line diff (``-``/``+``/`` `` prefixes) for longer texts."""
    if "\n" in old or "\n" in new:
        lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2)
        return [line for line in lines if not line.startswith(("---", "+++"))]
    before, after = _WORDS.findall(old), _WORDS.findall(new)
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append("".join(before[i1:i2]))
            continue
        if i2 > i1:
            out.append("[-" + "".join(before[i1:i2]) + "-]")
        if j2 > j1:
            out.append("{+" + "".join(after[j1:j2]) + "+}")
    return ["".join(out)]


def _changes(old: Any, new: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    """Collect (path, old, new) for every leaf that differs (``_MISSING`` for absent)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            _changes(
                old.get(key, _MISSING),
                new.get(key, _MISSING),
                f"{path}.{key}" if path else key,
                out,
            )
        return
    if old != new or type(old) is not type(new):
        out.append((path, old, new))


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


_MISSING = _Missing()


def _field_order(path: str) -> tuple[int, str]:
    head = path.split(".", 1)[0]
    rank = PINNED_FIELDS.index(head) if head in PINNED_FIELDS else len(PINNED_FIELDS)
    return rank, path


def definition_diff(approved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """Lines describing how the ``approved`` definition became ``current`` (None: a new tool,
    shown whole). Empty when they are the same."""
    if approved is None:
        lines = []
        for field in PINNED_FIELDS:
            if field not in current or field == "name":  # the name heads the change
                continue
            value = current[field]
            if isinstance(value, str):
                lines.append(f"{field}:")
                lines += [INDENT + "+ " + line for line in value.splitlines() or [""]]
            else:
                lines.append(f"{field}: {json_text(value)}")
        return lines
    found: list[tuple[str, Any, Any]] = []
    _changes(approved, current, "", found)
    lines = []
    for path, old, new in sorted(found, key=lambda item: _field_order(item[0])):
        if old is _MISSING:
            lines.append(f"{path}: added")
            lines.append(INDENT + "+ " + json_text(new))
        elif new is _MISSING:
            lines.append(f"{path}: removed")
            lines.append(INDENT + "- " + json_text(old))
        elif isinstance(old, str) and isinstance(new, str):
            lines.append(f"{path}:")
            lines += [INDENT + line for line in text_diff(old, new)]
        else:
            lines.append(f"{path}:")
            lines.append(INDENT + "- " + json_text(old))
            lines.append(INDENT + "+ " + json_text(new))
    return lines
