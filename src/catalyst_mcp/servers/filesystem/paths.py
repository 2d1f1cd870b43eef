"""Naming files beneath a root without ever leaving it: resolution one component at a time.

A path a client sends is never handed to the kernel whole. :func:`resolve` opens the root's
folder and walks the path's components one at a time, each relative to the folder descriptor
opened before it (``openat``-style: ``os.open(name, dir_fd=...)``) with ``O_NOFOLLOW``, so:

* ``..`` pops back to the folder the walk came from and is refused at the root;
* a symlink is read (``readlinkat``) and its target walked the same way, beneath the same root
  (an absolute target counts only if it lies inside the root); one pointing outside is
  refused, a loop ends after :data:`MAX_SYMLINKS` hops;
* a folder swapped for a symlink between the check and the open fails the ``O_NOFOLLOW``
  open and is looked at again: the swap can make a call fail, never reach outside the root;
* what is finally opened is checked with ``fstat`` on the open descriptor (a regular file, the
  same inode the walk saw), so a device, FIFO or socket is refused before a byte is read.

Everything here blocks: callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from catalyst_mcp.errors import BuiltinError

__all__ = [
    "DIR_FLAGS",
    "MAX_PATH_CHARS",
    "MAX_SYMLINKS",
    "Resolved",
    "Root",
    "describe_mode",
    "file_uri",
    "locate",
    "opened_dir",
    "os_error",
    "path_from_uri",
    "resolve",
]

MAX_PATH_CHARS = 4096
MAX_SYMLINKS = 40  # as the kernel's own limit on a path's symlinks
RETRIES = 8  # a component that keeps changing between lstat and open
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Root:
    """A folder the server serves. ``anchor`` is opened as it is (it comes from the config or
    from the local client: trusted); ``base`` are components beneath it, walked safely (a
    client's root narrowing a configured one)."""

    anchor: str
    display: str
    name: str
    writable: bool
    base: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default=())  # other absolute spellings (its real path)

    @classmethod
    def of(cls, path: str, *, writable: bool = False, name: str | None = None) -> Root:
        absolute = os.path.abspath(os.path.expanduser(path))
        real = os.path.realpath(absolute)
        return cls(
            anchor=absolute,
            display=absolute,
            name=name or Path(absolute).name or absolute,
            writable=writable,
            aliases=(real,) if real != absolute else (),
        )

    @property
    def uri(self) -> str:
        return file_uri(self.display.rstrip("/") + "/")

    def spellings(self) -> tuple[str, ...]:
        return (self.display, *self.aliases)


@dataclass(slots=True)
class Resolved:
    """A resolved path: the open folder ``dirfd`` that holds ``name`` (``""``: the root
    itself, and ``dirfd`` is the root's folder), the real components beneath the root, and
    ``lstat`` of the name (None when it does not exist). Close it (a context manager)."""

    root: Root
    dirfd: int
    name: str
    parts: list[str]
    info: os.stat_result | None
    _fds: list[int]

    @property
    def display(self) -> str:
        return join_display(self.root, [*self.parts, self.name] if self.name else self.parts)

    @property
    def exists(self) -> bool:
        return self.info is not None

    def close(self) -> None:
        fds, self._fds = self._fds, []
        for fd in reversed(fds):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Resolved:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_dir(self) -> int:
        """A new descriptor of the folder this names (the caller closes it)."""
        if not self.name:
            return os.dup(self.dirfd)
        if self.info is None or not stat.S_ISDIR(self.info.st_mode):
            raise BuiltinError(f"{self.display} is not a folder")
        try:
            return os.open(self.name, DIR_FLAGS, dir_fd=self.dirfd)
        except OSError as exc:
            raise os_error(exc, self.display) from None

    def open_file(self) -> tuple[int, os.stat_result]:
        """A descriptor of the regular file this names, and its ``fstat``: anything else (a
        folder, a device, a FIFO, a socket, a symlink swapped in) is refused before reading."""
        refuse_special(self.info, self.display)
        try:
            fd = os.open(self.name, FILE_FLAGS, dir_fd=self.dirfd)
        except OSError as exc:
            raise os_error(exc, self.display) from None
        info = os.fstat(fd)
        assert self.info is not None
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (
            self.info.st_dev,
            self.info.st_ino,
        ):
            os.close(fd)
            raise BuiltinError(f"{self.display} changed while it was being opened; try again")
        return fd, info


def refuse_special(info: os.stat_result | None, display: str) -> None:
    """BuiltinError unless ``info`` is a regular file's."""
    if info is None:
        raise BuiltinError(f"no such file: {display}")
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise BuiltinError(f"{display} is a folder, not a file (list it instead)")
    raise BuiltinError(
        f"{display} is a {describe_mode(mode)}: only regular files and folders are served"
    )


def describe_mode(mode: int) -> str:
    """``file``, ``folder``, ``symlink``, ``device``, ``fifo``, ``socket`` or ``other``."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "other"


def join_display(root: Root, parts: list[str]) -> str:
    return "/".join([root.display.rstrip("/"), *parts]) if parts else root.display


def file_uri(path: str) -> str:
    return "file://" + quote(path, safe="/")


def path_from_uri(uri: str) -> str:
    """The absolute path of a ``file://`` URI (percent-decoding applies to URIs only)."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise BuiltinError(f"not a file:// URI of this machine: {uri[:200]}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise BuiltinError(f"a file:// URI needs an absolute path: {uri[:200]}")
    return path


def locate(roots: list[Root], text: str) -> tuple[Root, list[str]]:
    """The root ``text`` lies in and its components beneath it, unresolved.

    A relative path is taken relative to the first root; an absolute path (or ``file://``
    URI) must start with one of the roots' paths. Nothing is normalised here: ``..`` and
    symlinks are the walk's business (:func:`resolve`)."""
    if not roots:
        raise BuiltinError("no folder is served to this client (no roots)")
    if "\x00" in text:
        raise BuiltinError("a path cannot contain a NUL character")
    if len(text) > MAX_PATH_CHARS:
        raise BuiltinError(f"a path is at most {MAX_PATH_CHARS} characters")
    if text.startswith("file:"):
        text = path_from_uri(text)
        if "\x00" in text:
            raise BuiltinError("a path cannot contain a NUL character")
    if not text.startswith("/"):
        return roots[0], text.split("/")
    best: tuple[int, Root, str] | None = None
    for root in roots:
        for spelling in root.spellings():
            prefix = spelling.rstrip("/")
            if (text == prefix or text.startswith(prefix + "/") or prefix == "") and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), root, text[len(prefix) :])
    if best is None:
        listed = ", ".join(r.display for r in roots)
        raise BuiltinError(f"{text[:300]} is outside the served folders ({listed})")
    return best[1], best[2].split("/")


def resolve(
    root: Root,
    components: list[str],
    *,
    follow_symlinks: bool,
    follow_final: bool = True,
) -> Resolved:
    """Walk ``components`` beneath ``root`` (see the module docstring).

    The last component is looked at (``lstat``) but not opened; with ``follow_final`` a
    symlink there is followed (beneath the root) too. A missing last component is allowed
    (``info`` is None: something may be created there); a missing folder before it is not."""
    try:
        top = os.open(root.anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise BuiltinError(
            f"the served folder {root.display} cannot be opened ({_reason(exc)})"
        ) from None
    fds = [top]
    names: list[str] = []
    try:
        floor = 0
        for part in root.base:  # a narrowed root: its own folder first
            if part in ("", "."):
                continue
            fds.append(_open_dir(fds[-1], part, join_display(root, names)))
            names.append(part)
        floor = len(names)
        base_names = list(names)
        pending = deque(components)
        hops = 0
        retries = 0
        link = ""  # the last symlink followed (an escape through it is named by it)
        while pending:
            part = pending.popleft()
            if part in ("", "."):
                continue
            shown = join_display(root, [*names[floor:], part])
            if part == "..":
                if len(names) == floor:
                    raise BuiltinError(
                        f"{link} is a symlink to a place outside the served folder {root.display}"
                        if link
                        else f"{shown} leads outside the served folder {root.display}"
                    )
                os.close(fds.pop())
                names.pop()
                continue
            last = not any(p not in ("", ".") for p in pending)
            try:
                info = os.stat(part, dir_fd=fds[-1], follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return Resolved(root, fds[-1], part, names[floor:], None, fds)
                raise BuiltinError(f"no such folder: {shown}") from None
            except OSError as exc:
                raise os_error(exc, shown) from None
            if stat.S_ISLNK(info.st_mode) and (follow_final or not last):
                if not follow_symlinks:
                    raise BuiltinError(f"{shown} is a symlink, and symlinks are not followed here")
                hops += 1
                link = shown
                if hops > MAX_SYMLINKS:
                    raise BuiltinError(f"{shown}: too many levels of symlinks (a loop?)")
                target = _readlink(fds[-1], part, shown)
                if target.startswith("/"):
                    rest = _beneath(root, target, base_names)
                    if rest is None:
                        raise BuiltinError(
                            f"{shown} is a symlink to a place outside the served folder "
                            f"{root.display}"
                        )
                    while len(names) > floor:
                        os.close(fds.pop())
                        names.pop()
                    pending.extendleft(reversed(rest))
                else:
                    pending.extendleft(reversed(target.split("/")))
                continue
            if last:
                return Resolved(root, fds[-1], part, names[floor:], info, fds)
            if not stat.S_ISDIR(info.st_mode):
                raise BuiltinError(f"{shown} is not a folder")
            try:
                fds.append(os.open(part, DIR_FLAGS, dir_fd=fds[-1]))
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT) and retries < RETRIES:
                    retries += 1  # swapped since the lstat: look again
                    pending.appendleft(part)
                    continue
                raise os_error(exc, shown) from None
            names.append(part)
        # nothing left: the path names the root (or a folder reached through symlinks)
        if len(names) == floor:
            info = os.fstat(fds[-1])
            return Resolved(root, fds[-1], "", [], info, fds)
        # a path that ends in a folder after '..' or a symlink: hand back its parent and name
        last_name = names.pop()
        os.close(fds.pop())
        info = os.stat(last_name, dir_fd=fds[-1], follow_symlinks=False)
        return Resolved(root, fds[-1], last_name, names[floor:], info, fds)
    except BaseException:
        for fd in reversed(fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        raise


def _open_dir(dirfd: int, name: str, shown: str) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dirfd)
    except OSError as exc:
        raise os_error(exc, f"{shown}/{name}") from None


def _readlink(dirfd: int, name: str, shown: str) -> str:
    try:
        return os.readlink(name, dir_fd=dirfd)
    except OSError as exc:
        raise os_error(exc, shown) from None


def _beneath(root: Root, target: str, base: list[str]) -> list[str] | None:
    """The components of an absolute symlink target beneath ``root``, or None if outside."""
    for spelling in root.spellings():
        prefix = "/".join([spelling.rstrip("/"), *base])
        if target == prefix or target.startswith(prefix.rstrip("/") + "/"):
            return target[len(prefix) :].split("/")
    return None


@contextlib.contextmanager
def opened_dir(resolved: Resolved) -> Iterator[int]:
    fd = resolved.open_dir()
    try:
        yield fd
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else "unknown error"


def os_error(exc: OSError, display: str) -> BuiltinError:
    """An OS error as a message for the client (the path as the client sees it)."""
    code = exc.errno
    if code == errno.ENOENT:
        return BuiltinError(f"no such file or folder: {display}")
    if code in (errno.EACCES, errno.EPERM):
        return BuiltinError(f"permission denied: {display}")
    if code == errno.ELOOP:
        return BuiltinError(f"{display} is a symlink or changed while being opened; try again")
    if code == errno.ENOTDIR:
        return BuiltinError(f"{display}: a part of the path is not a folder")
    if code == errno.EISDIR:
        return BuiltinError(f"{display} is a folder")
    if code == errno.ENAMETOOLONG:
        return BuiltinError(f"a name in {display[:300]} is too long")
    if code == errno.EEXIST:
        return BuiltinError(f"{display} exists already")
    if code == errno.ENOTEMPTY:
        return BuiltinError(f"{display} is a folder that is not empty")
    if code == errno.EXDEV:
        return BuiltinError(f"{display}: cannot move between different filesystems")
    if code == errno.ENOSPC:
        return BuiltinError(f"no space left on the device for {display}")
    if code == errno.EROFS:
        return BuiltinError(f"{display} is on a read-only filesystem")
    if code == errno.EINVAL:
        return BuiltinError(f"{display}: invalid operation (moving a folder into itself?)")
    return BuiltinError(f"{display}: {_reason(exc)}")
