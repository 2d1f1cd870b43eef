"""Reading beneath a root: files (text, or binary as a blob), folder listings and ``stat``.

Every function takes resolved paths (:mod:`.paths`) and blocks; the server runs them in a
worker thread. Sizes are checked on the open descriptor before anything is read.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.servers.filesystem.paths import (
    DIR_FLAGS,
    Resolved,
    describe_mode,
    file_uri,
    opened_dir,
    os_error,
)

__all__ = ["FileContent", "is_binary", "list_folder", "read_file", "stat_entry"]

SNIFF_BYTES = 8192
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FileContent:
    path: str
    size: int
    offset: int
    data: bytes
    text: str | None  # None: binary
    mime: str

    @property
    def truncated(self) -> bool:
        return self.offset + len(self.data) < self.size

    def blob(self) -> Json:
        """The bytes as an embedded resource (``type: resource``, base64 ``blob``)."""
        return {
            "type": "resource",
            "resource": {
                "uri": file_uri(self.path),
                "mimeType": self.mime,
                "blob": base64.b64encode(self.data).decode(),
            },
        }


def is_binary(data: bytes) -> bool:
    """NUL bytes in the first 8 KiB, or bytes that are not UTF-8."""
    if b"\x00" in data[:SNIFF_BYTES]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def mime_of(path: str, binary: bool) -> str:
    guessed = mimetypes.guess_type(path, strict=False)[0]
    if guessed:
        return guessed
    return "application/octet-stream" if binary else "text/plain"


def read_file(
    resolved: Resolved, *, offset: int, length: int | None, max_bytes: int
) -> FileContent:
    """The bytes of a regular file (all of it, or ``length`` from ``offset``): a file over
    ``max_bytes`` must be read in parts. A part cut inside a UTF-8 character is trimmed to
    whole characters."""
    fd, info = resolved.open_file()
    try:
        size = info.st_size
        if length is None and offset == 0 and size > max_bytes:
            raise BuiltinError(
                f"{resolved.display} is {size:,} bytes, over the {max_bytes:,}-byte read limit "
                "(max_read_bytes): read a part of it with offset and length, or search it"
            )
        want = min(length if length is not None else max_bytes, max_bytes)
        try:
            data = os.pread(fd, want, offset) if offset < size else b""
        except OSError as exc:
            raise os_error(exc, resolved.display) from None
    finally:
        os.close(fd)
    partial = offset > 0 or offset + len(data) < size
    if partial and b"\x00" not in data[:SNIFF_BYTES]:
        data, offset = _whole_characters(data, offset, at_end=offset + len(data) < size)
    binary = is_binary(data)
    text = None if binary else data.decode("utf-8")
    return FileContent(resolved.display, size, offset, data, text, mime_of(resolved.name, binary))


def _whole_characters(data: bytes, offset: int, *, at_end: bool) -> tuple[bytes, int]:
    """Trim UTF-8 continuation bytes at the start and a cut character at the end."""
    start = 0
    while start < min(3, len(data)) and 0x80 <= data[start] <= 0xBF:
        start += 1
    data = data[start:]
    if at_end:
        for cut in range(1, min(4, len(data)) + 1):
            byte = data[-cut]
            if byte < 0x80:
                break
            if byte >= 0xC0:  # a lead byte: is its character complete?
                need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
                if need > cut:
                    data = data[:-cut]
                break
    return data, offset + start


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def stat_entry(resolved: Resolved) -> Json:
    """What ``stat`` tells of a path (a symlink itself, not its target)."""
    info = resolved.info
    if info is None:
        raise BuiltinError(f"no such file or folder: {resolved.display}")
    kind = describe_mode(info.st_mode)
    entry: Json = {
        "path": resolved.display,
        "type": kind,
        "size": info.st_size,
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "modified": _iso(info.st_mtime),
        "accessed": _iso(info.st_atime),
        "changed": _iso(info.st_ctime),
        "writable": resolved.root.writable,
    }
    if kind == "symlink":
        try:
            entry["target"] = os.readlink(resolved.name, dir_fd=resolved.dirfd)
        except OSError as exc:
            raise os_error(exc, resolved.display) from None
    if kind == "file":
        entry["mimeType"] = mime_of(resolved.name, binary=False)
    return entry


class _Full(Exception):
    pass


def list_folder(
    resolved: Resolved,
    *,
    depth: int,
    max_entries: int,
    hidden: bool,
    matches: Callable[[str], bool] | None = None,
) -> tuple[list[Json], bool]:
    """Entries of a folder down to ``depth`` levels (symlinks listed, never entered), sorted by
    path; at most ``max_entries`` (then the walk stops and the second value is True).
    ``matches`` filters names (folders are entered either way)."""
    entries: list[Json] = []

    def walk(fd: int, prefix: str, level: int) -> None:
        try:
            with os.scandir(fd) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise os_error(exc, prefix or resolved.display) from None
        for item in items:
            if not hidden and item.name.startswith("."):
                continue
            try:
                info = item.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            kind = describe_mode(info.st_mode)
            rel = f"{prefix}{item.name}"
            if matches is None or matches(item.name):
                if len(entries) >= max_entries:
                    raise _Full
                entry: Json = {"name": rel, "type": kind, "modified": _iso(info.st_mtime)}
                if kind == "file":
                    entry["size"] = info.st_size
                entries.append(entry)
            if kind == "folder" and level < depth:
                try:
                    sub = os.open(item.name, DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # unreadable or swapped: listed, not entered
                try:
                    walk(sub, rel + "/", level + 1)
                finally:
                    os.close(sub)

    truncated = False
    with opened_dir(resolved) as fd:
        try:
            walk(fd, "", 1)
        except _Full:
            truncated = True
    entries.sort(key=lambda e: e["name"])
    return entries, truncated
