"""A statement with its literals masked, fit for the audit trail.

A write's statement is worth recording (what was done), its values are not (a password, a
customer's data). :func:`mask_literals` keeps keywords, identifiers, operators and ``:name``
binds and turns every quoted string, dollar-quoted body, comment and number into ``?``. SQL
dialects disagree on what a string is (MySQL reads a backslash as an escape, standard SQL does
not; ``#`` starts a comment only in MySQL), and a scanner that guesses wrong
could take the inside of a string for code. So the statement is scanned twice, once with
standard rules (PostgreSQL, SQLite) and once with MySQL's, and a character is kept only when
both scans call it code: whichever dialect the database speaks, what is kept lies outside its
literals. Where the two disagree the result masks more, never less.
"""

from __future__ import annotations

import re

__all__ = ["mask_literals"]

MAX_CHARS = 4000
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_$.:])(?:0[xX][0-9A-Fa-f]+|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)")
_IDENT = re.compile(r"[A-Za-z0-9_$]")


def _code_map(sql: str, *, mysql: bool) -> list[bool]:
    """For each character, whether it is code (not inside a literal or a comment)."""
    code = [True] * len(sql)
    i, n = 0, len(sql)

    def mark(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            code[k] = False

    while i < n:
        char = sql[i]
        if char == "-" and sql.startswith("--", i):
            after = sql[i + 2 : i + 3]
            if not mysql or after == "" or after.isspace() or ord(after) < 32:
                end = sql.find("\n", i)
                end = n if end == -1 else end
                mark(i, end)
                i = end
                continue
        if char == "#" and mysql:
            end = sql.find("\n", i)
            end = n if end == -1 else end
            mark(i, end)
            i = end
            continue
        if char == "/" and sql.startswith("/*", i):
            end = _comment_end(sql, i, nested=not mysql)
            mark(i, end)
            i = end
            continue
        if char in "'\"`":
            backslash = mysql or (
                char == "'"
                and i > 0
                and sql[i - 1] in "eE"
                and (i < 2 or not _IDENT.match(sql[i - 2]))
            )
            end = _quote_end(sql, i, char, backslash=backslash)
            mark(i, end)
            i = end
            continue
        if char == "$" and not mysql:
            match = _DOLLAR.match(sql, i)
            if match is not None and (i == 0 or not _IDENT.match(sql[i - 1])):
                close = sql.find(match.group(0), match.end())
                end = n if close == -1 else close + len(match.group(0))
                mark(i, end)
                i = end
                continue
        i += 1
    return code


def _comment_end(sql: str, start: int, *, nested: bool) -> int:
    depth, i = 0, start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth = depth + 1 if nested or depth == 0 else depth
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth <= 0:
                return i
        else:
            i += 1
    return len(sql)


def _quote_end(sql: str, start: int, quote: str, *, backslash: bool) -> int:
    i = start + 1
    while i < len(sql):
        char = sql[i]
        if backslash and char == "\\":
            i += 2
            continue
        if char == quote:
            if sql.startswith(quote * 2, i):
                i += 2
                continue
            return i + 1
        i += 1
    return len(sql)  # unterminated: everything after the quote is a literal


def mask_literals(sql: str) -> str:
    """``sql`` with literals as ``?`` and comments removed (see the module docstring)."""
    standard = _code_map(sql, mysql=False)
    mysql = _code_map(sql, mysql=True)
    out: list[str] = []
    masked = False
    for char, a, b in zip(sql, standard, mysql, strict=True):
        if a and b:
            out.append(char)
            masked = False
        elif not masked:
            out.append("?")
            masked = True
    text = _NUMBER.sub("?", "".join(out))
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "..."
