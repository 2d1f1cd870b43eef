"""The state folder of installed packages, and how an install appears in it all at once.

Each package version gets an isolated prefix (an npm ``--prefix`` folder or a Python venv)::

    <dir>/<runtime>/<package slug>/<version>          a symlink: what configs and locks use
    <dir>/<runtime>/<package slug>/.<version>.<pid>.<random>/   the real folder behind it

An install is built in a new hidden folder next to the link, under its final path (venvs
cannot move: their scripts name their own interpreter), and the link is then swapped in with
one ``rename``. Until then nothing points at the folder: an interrupted or failed install
leaves no half-installed package, and its folder is removed (right away, or by the next run
once the process that built it is gone). A ``catalyst-package.json`` marker, written last,
says the folder is complete and what it holds.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import orjson

__all__ = ["MARKER", "Layout", "slug"]

MARKER = "catalyst-package.json"
_BUILD = re.compile(r"^\.(?P<version>.+)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]{8})$")


def slug(text: str) -> str:
    """A folder name for a package identifier or version: ``@scope/name`` -> ``scope+name``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "+", text.lstrip("@")).strip(".+") or "package"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Layout:
    """Paths under the packages folder, and the moves that keep it consistent."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def package_dir(self, runtime: str, identifier: str) -> Path:
        return self.root / runtime / slug(identifier)

    def prefix(self, runtime: str, identifier: str, version: str) -> Path:
        """The stable path of one installed version (a symlink once installed)."""
        return self.package_dir(runtime, identifier) / slug(version)

    def new_build(self, prefix: Path) -> Path:
        """A fresh path (not created) to build ``prefix`` in, next to it."""
        prefix.parent.mkdir(parents=True, exist_ok=True)
        self.collect_garbage(prefix.parent)
        name = f".{prefix.name}.{os.getpid()}.{secrets.token_hex(4)}"
        return prefix.parent / name

    @staticmethod
    def write_marker(build: Path, record: dict[str, Any]) -> None:
        (build / MARKER).write_bytes(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))

    @staticmethod
    def marker(prefix: Path) -> dict[str, Any] | None:
        """The record of a complete install at ``prefix``, or ``None``."""
        try:
            record = orjson.loads((prefix / MARKER).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def publish(self, build: Path, prefix: Path) -> None:
        """Point ``prefix`` at ``build`` in one step; the folder it pointed at goes."""
        old = self._target(prefix)
        link = prefix.parent / f".{prefix.name}.link.{os.getpid()}.{secrets.token_hex(4)}"
        os.symlink(build.name, link)
        try:
            os.replace(link, prefix)
        except OSError:
            link.unlink(missing_ok=True)
            raise
        if old is not None and old != build:
            shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def discard(build: Path) -> None:
        """Remove an unfinished build (never published)."""
        shutil.rmtree(build, ignore_errors=True)

    def remove(self, prefix: Path) -> None:
        """Remove an installed version: its link, its folder, and empty parents."""
        target = self._target(prefix)
        with contextlib.suppress(FileNotFoundError):
            prefix.unlink()
        if target is not None:
            shutil.rmtree(target, ignore_errors=True)
        for parent in (prefix.parent, prefix.parent.parent):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only when empty

    @staticmethod
    def _target(prefix: Path) -> Path | None:
        if not prefix.is_symlink():
            return None
        return prefix.parent / os.readlink(prefix)

    def collect_garbage(self, folder: Path) -> None:
        """Remove builds in ``folder`` that no link points at and no live process is making."""
        try:
            entries = list(folder.iterdir())
        except FileNotFoundError:
            return
        used = {os.readlink(e) for e in entries if e.is_symlink()}
        for entry in entries:
            match = _BUILD.match(entry.name)
            if match is None or entry.name in used or entry.is_symlink():
                continue
            if not _alive(int(match["pid"])):
                shutil.rmtree(entry, ignore_errors=True)

    @staticmethod
    def size(prefix: Path) -> int:
        """Bytes on disk of the files under ``prefix`` (links not followed)."""
        total = 0
        for folder, _, files in os.walk(prefix.resolve()):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(folder, name)).st_size
        return total
