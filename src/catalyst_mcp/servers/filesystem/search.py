"""Searching a folder tree: file names by glob, file contents by text or regular expression.

The walk opens every folder relative to its parent's descriptor and never follows a symlink
(no loops, no escapes); only regular files are read. Three limits bound one search — files
looked at, matches returned, and time — and the answer says which one stopped it. A regular
expression cannot be interrupted while it runs on one line, so lines are matched on their first
:data:`MAX_LINE_CHARS` characters and the clock is read between lines.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.servers.filesystem.paths import DIR_FLAGS, FILE_FLAGS, Resolved, opened_dir
from catalyst_mcp.servers.filesystem.reading import SNIFF_BYTES

__all__ = ["MAX_LINE_CHARS", "SearchLimits", "glob_matcher", "search"]

MAX_LINE_CHARS = 4096
SHOWN_LINE_CHARS = 300
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SearchLimits:
    max_files: int
    max_matches: int
    max_file_bytes: int
    timeout: float


@dataclass(slots=True)
class _State:
    limits: SearchLimits
    deadline: float
    matches: list[Json] = field(default_factory=list)
    files: int = 0
    skipped: int = 0
    stopped: str | None = None


class _Stop(Exception):
    pass


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate on a relative path (``a/b/c.py``): a pattern without ``/`` matches the file
    name at any depth; one with ``/`` matches the whole relative path, where ``**`` spans
    folders, ``*`` and ``?`` stay within one name and ``[...]`` is a class."""
    regex = re.compile(_glob_regex(pattern), re.DOTALL)
    if "/" in pattern:
        return lambda rel: regex.fullmatch(rel) is not None
    return lambda rel: regex.fullmatch(rel.rpartition("/")[2]) is not None


def _glob_regex(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
                continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def search(
    resolved: Resolved,
    *,
    names: Callable[[str], bool] | None,
    content: re.Pattern[str] | None,
    exclude: list[Callable[[str], bool]],
    limits: SearchLimits,
) -> Json:
    """Files beneath ``resolved`` whose relative path ``names`` accepts and, with ``content``,
    the lines that match it. The answer lists matches and says whether (and why) it stopped
    early."""
    if not resolved.name and resolved.info is None:
        raise BuiltinError(f"no such folder: {resolved.display}")
    state = _State(limits, time.monotonic() + limits.timeout)
    with opened_dir(resolved) as fd, contextlib.suppress(_Stop):
        _walk(fd, "", state, names, content, exclude)
    return {
        "matches": state.matches,
        "files_scanned": state.files,
        "files_skipped": state.skipped,
        "truncated": state.stopped is not None,
        "stopped_by": state.stopped,
    }


def _walk(
    fd: int,
    prefix: str,
    state: _State,
    names: Callable[[str], bool] | None,
    content: re.Pattern[str] | None,
    exclude: list[Callable[[str], bool]],
) -> None:
    try:
        with os.scandir(fd) as it:
            items = sorted(it, key=lambda e: e.name)
    except OSError:
        state.skipped += 1
        return
    for item in items:
        rel = prefix + item.name
        if any(excluded(rel) for excluded in exclude):
            continue
        try:
            info = item.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            try:
                sub = os.open(item.name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                state.skipped += 1
                continue
            try:
                _walk(sub, rel + "/", state, names, content, exclude)
            finally:
                os.close(sub)
            continue
        if not stat.S_ISREG(info.st_mode):
            continue  # symlinks, devices, FIFOs, sockets: never opened
        if names is not None and not names(rel):
            continue
        _check(state, "max_files" if state.files >= state.limits.max_files else None)
        state.files += 1
        if content is None:
            state.matches.append({"path": rel, "size": info.st_size})
            _check(state, "max_matches" if len(state.matches) >= state.limits.max_matches else None)
            continue
        if info.st_size > state.limits.max_file_bytes:
            state.skipped += 1
            continue
        _grep(fd, item.name, rel, content, state)


def _check(state: _State, reason: str | None) -> None:
    if reason is None and time.monotonic() > state.deadline:
        reason = "timeout"
    if reason is not None:
        state.stopped = reason
        raise _Stop


def _grep(dirfd: int, name: str, rel: str, pattern: re.Pattern[str], state: _State) -> None:
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dirfd)
    except OSError:
        state.skipped += 1
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the scan
            state.skipped += 1
            return
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > state.limits.max_file_bytes:
                state.skipped += 1
                return
    except OSError:
        state.skipped += 1
        return
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if b"\x00" in data[:SNIFF_BYTES]:
        state.skipped += 1  # binary
        return
    text = data.decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        if number % 256 == 0:
            _check(state, None)
        if pattern.search(line[:MAX_LINE_CHARS]) is not None:
            shown = line if len(line) <= SHOWN_LINE_CHARS else line[:SHOWN_LINE_CHARS] + "..."
            state.matches.append({"path": rel, "line": number, "text": shown})
            _check(state, "max_matches" if len(state.matches) >= state.limits.max_matches else None)
    _check(state, None)
