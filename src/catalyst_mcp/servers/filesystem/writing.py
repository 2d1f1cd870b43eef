"""Changing files beneath a writable root: write, edit (with a dry-run diff), move, mkdir, delete.

Writes are atomic: the new content goes to a temporary file created (``O_EXCL``, no symlink
followed) in the same folder descriptor, then ``rename``-d over the name, so a reader sees the
old or the new file, never half of one, and a symlink at the name is replaced, not written
through. Like reading, every name is relative to a folder descriptor the walk opened
(:mod:`.paths`). Everything here blocks: the server runs it in a worker thread.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import secrets
import stat
from dataclasses import dataclass
from typing import Any

from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.servers.filesystem.paths import Resolved, os_error, refuse_special

__all__ = [
    "EditOutcome",
    "apply_edits",
    "check_writable",
    "delete",
    "make_folder",
    "move",
    "write_file",
]

Json = dict[str, Any]
MAX_DIFF_CHARS = 100_000


def check_writable(resolved: Resolved) -> None:
    if not resolved.root.writable:
        raise BuiltinError(
            f"{resolved.display} is in a read-only folder ({resolved.root.display}); "
            "the server's configuration marks folders writable"
        )


def write_file(resolved: Resolved, data: bytes, *, overwrite: bool) -> bool:
    """Write ``data`` as the file ``resolved`` names (atomically); whether it was created."""
    check_writable(resolved)
    mode = 0o666 & ~_umask()
    if resolved.info is not None:
        if not overwrite:
            raise BuiltinError(f"{resolved.display} exists already (pass overwrite: true)")
        refuse_special(resolved.info, resolved.display)
        mode = stat.S_IMODE(resolved.info.st_mode)
    if not resolved.name:
        raise BuiltinError(f"{resolved.display} is a served folder, not a file")
    temp = f".{resolved.name[:200]}.{secrets.token_hex(6)}.catalyst-tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600, dir_fd=resolved.dirfd)
    except OSError as exc:
        raise os_error(exc, resolved.display) from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, resolved.name, src_dir_fd=resolved.dirfd, dst_dir_fd=resolved.dirfd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=resolved.dirfd)
        raise os_error(exc, resolved.display) from None
    return resolved.info is None


def _umask() -> int:
    # os.umask can only be read by setting it; /proc has it without a race on Linux
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


@dataclass(frozen=True, slots=True)
class EditOutcome:
    diff: str
    replacements: int
    new_text: str


def apply_edits(path: str, text: str, edits: list[Json]) -> EditOutcome:
    """``text`` with each ``{old_text, new_text[, replace_all]}`` applied in order, and the
    unified diff. Each ``old_text`` must occur exactly once unless ``replace_all``."""
    new = text
    count = 0
    for number, edit in enumerate(edits, 1):
        old, replacement = edit["old_text"], edit["new_text"]
        if not old:
            raise BuiltinError(f"edit {number}: old_text is empty")
        found = new.count(old)
        if found == 0:
            raise BuiltinError(
                f"edit {number}: old_text does not occur in {path} (after the edits before it); "
                "copy it exactly, whitespace included"
            )
        if found > 1 and not edit.get("replace_all", False):
            raise BuiltinError(
                f"edit {number}: old_text occurs {found} times in {path}; add surrounding lines "
                "to make it unique, or pass replace_all: true"
            )
        new = new.replace(old, replacement)
        count += found
    diff = "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=path,
            tofile=path,
        )
    )
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + "\n... (diff cut)\n"
    return EditOutcome(diff, count, new)


def make_folder(resolved: Resolved) -> bool:
    """Create the folder ``resolved`` names; whether it was created (False: it exists)."""
    check_writable(resolved)
    if resolved.info is not None:
        if stat.S_ISDIR(resolved.info.st_mode):
            return False
        raise BuiltinError(f"{resolved.display} exists and is not a folder")
    try:
        os.mkdir(resolved.name, 0o777, dir_fd=resolved.dirfd)
    except FileExistsError:
        return False
    except OSError as exc:
        raise os_error(exc, resolved.display) from None
    return True


def move(source: Resolved, destination: Resolved, *, overwrite: bool) -> None:
    """Rename ``source`` (a symlink is moved, not its target) to ``destination``."""
    check_writable(source)
    check_writable(destination)
    if not source.name or source.info is None:
        raise BuiltinError(
            f"no such file or folder: {source.display}"
            if source.info is None
            else f"{source.display} is a served folder: it cannot be moved"
        )
    if not destination.name:
        raise BuiltinError(f"{destination.display} is a served folder")
    if destination.info is not None:
        if not overwrite:
            raise BuiltinError(f"{destination.display} exists already (pass overwrite: true)")
        if stat.S_ISDIR(destination.info.st_mode):
            raise BuiltinError(f"{destination.display} is a folder: it is never replaced")
    try:
        os.rename(
            source.name,
            destination.name,
            src_dir_fd=source.dirfd,
            dst_dir_fd=destination.dirfd,
        )
    except OSError as exc:
        raise os_error(exc, f"{source.display} -> {destination.display}") from None


def delete(resolved: Resolved) -> str:
    """Remove a file, a symlink (not its target) or an empty folder; what it was."""
    check_writable(resolved)
    info = resolved.info
    if info is None:
        raise BuiltinError(f"no such file or folder: {resolved.display}")
    if not resolved.name:
        raise BuiltinError(f"{resolved.display} is a served folder: it cannot be deleted")
    try:
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(resolved.name, dir_fd=resolved.dirfd)
            return "folder"
        os.unlink(resolved.name, dir_fd=resolved.dirfd)
    except OSError as exc:
        raise os_error(exc, resolved.display) from None
    return "symlink" if stat.S_ISLNK(info.st_mode) else "file"
