"""A Unix domain socket to serve on (``catalyst serve --uds PATH``): bound safely, removed after.

:class:`UnixSocket` binds ``PATH`` and sets its file mode (0600 by default: only the gateway's
own user may connect) before it listens, so there is no moment when the socket accepts
connections with looser permissions (the directory's permissions apply too). A file already at
``PATH`` is handled as a restart expects: a socket nobody listens on (left by a process that
died) is replaced; a socket another server listens on, or any file that is not a socket, is
refused and left alone. :meth:`UnixSocket.remove` removes it at exit, unless something else has
taken the path meanwhile.

A Unix socket is local by nature: who may connect is decided by its file mode (and the
directory's), not by the address it listens on, so the gateway treats it as it treats
loopback (docs/architecture.md, "Unix domain socket").
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from pathlib import Path

from catalyst_mcp.transports.serving import ServerError

__all__ = ["DEFAULT_MODE", "UnixSocket", "parse_mode"]

DEFAULT_MODE = 0o600


def parse_mode(text: str) -> int:
    """An octal file mode as written in a config file or on a command line (``600``,
    ``0660``, ``0o660``)."""
    digits = text.strip().lower().removeprefix("0o")
    if not digits or len(digits) > 4 or any(c not in "01234567" for c in digits):
        raise ValueError(f"{text!r} is not an octal file mode such as 0600 or 0660")
    mode = int(digits, 8)
    if mode > 0o777:
        raise ValueError(f"{text!r}: a socket's mode has permission bits only (at most 0777)")
    return mode


class UnixSocket:
    """A listening Unix stream socket at ``path`` with file mode ``mode``, for
    :class:`~catalyst_mcp.transports.serving.HttpServer` to serve on. Raises
    :class:`~catalyst_mcp.transports.serving.ServerError` saying why it cannot be."""

    def __init__(self, path: Path, mode: int = DEFAULT_MODE, backlog: int = 2048) -> None:
        self.path = path
        _clear(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.bind(str(path))
        except OSError as exc:
            self.sock.close()
            raise ServerError(f"cannot listen on the Unix socket {path}: {_why(exc)}") from exc
        try:
            os.chmod(path, mode)  # before listen(): until then every connection is refused
            found = os.lstat(path)
            # Listening now (the server accepts once the gateway has started) shows the path
            # taken at once: a second gateway started meanwhile refuses, not replaces, it.
            self.sock.listen(backlog)
        except OSError as exc:
            self.sock.close()
            with contextlib.suppress(OSError):
                path.unlink()
            raise ServerError(f"cannot listen on the Unix socket {path}: {_why(exc)}") from exc
        self._file = (found.st_dev, found.st_ino)

    def remove(self) -> None:
        """Close the socket and remove its file, unless something else has taken the path."""
        self.sock.close()
        try:
            found = os.lstat(self.path)
        except OSError:
            return
        if (found.st_dev, found.st_ino) == self._file:
            with contextlib.suppress(OSError):
                self.path.unlink()


def _clear(path: Path) -> None:
    """Make way at ``path``: remove a stale socket, refuse anything else."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ServerError(f"cannot use {path}: {_why(exc)}") from exc
    if not stat.S_ISSOCK(found.st_mode):
        raise ServerError(
            f"refusing to serve on {path}: a file that is not a socket is there; "
            "remove it or choose another path"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:  # nobody listens: left by a process that died
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    except OSError as exc:
        raise ServerError(f"cannot use {path}: {_why(exc)}") from exc
    finally:
        probe.close()
    raise ServerError(f"cannot listen on {path}: another server is listening on it")


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG or "too long" in str(exc):
        return "the path is too long for a Unix socket (at most 107 bytes)"
    return exc.strerror or str(exc)
