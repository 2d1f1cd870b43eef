"""``catalyst.lock``: exactly what is installed, next to the config file.

JSON with sorted keys and one line per field, so a diff reads like a changelog. One record per
server entry a package created (the key is the server's name in the config), with the exact
version and every installed distribution's integrity hash:

- npm: each package of the resolved tree as ``package-lock.json`` has it (path, version,
  ``integrity``, and the dependency fields ``npm ci`` needs to rebuild the same tree);
- PyPI: each distribution's name, version and ``sha256`` hashes (uv: every file published for
  that version, any of which a machine may install; pip: the file it installed).

``catalyst packages sync`` rebuilds every record from these alone and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from catalyst_mcp import __version__
from catalyst_mcp.errors import PackageError
from catalyst_mcp.packages.atomicwrite import atomic_write

__all__ = [
    "LOCK_NAME",
    "Lock",
    "LockedPackage",
    "distributions_digest",
    "lock_path",
    "read_lock",
    "sort_distributions",
    "write_lock",
]

LOCK_NAME = "catalyst.lock"
LOCK_VERSION = 1


class LockedPackage(BaseModel):
    """One installed package and the server entry it made."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="What was asked for: a catalog name or npm:/pypi: spec.")
    runtime: Literal["npm", "pypi"]
    package: str = Field(description="The npm or PyPI package name.")
    version: str
    pinned: bool = False
    command: str = Field(description="The entry point run: an npm bin or a console script.")
    installer: str = Field(description="npm, uv or pip.")
    python: str | None = Field(None, description="PyPI: the venv's Python version (3.11).")
    distributions: list[dict[str, Any]] = Field(default_factory=list)

    def digest(self) -> str:
        """A digest of exactly what is installed (to tell whether a prefix still matches)."""
        return distributions_digest(self.distributions)


def sort_distributions(distributions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """In a stable order: npm by path in the tree, PyPI by name."""
    return sorted(distributions, key=lambda d: (str(d.get("path", "")), str(d.get("name", ""))))


def distributions_digest(distributions: list[dict[str, Any]]) -> str:
    """sha256 of the distributions in their stable order (keys sorted)."""
    body = orjson.dumps(sort_distributions(distributions), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()


class Lock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lock_version: int = LOCK_VERSION
    generated_by: str = f"catalyst {__version__}"
    packages: dict[str, LockedPackage] = Field(default_factory=dict)

    def using(self, runtime: str, package: str, version: str) -> list[str]:
        """Server names whose record installs this package version."""
        return [
            name
            for name, p in self.packages.items()
            if (p.runtime, p.package, p.version) == (runtime, package, version)
        ]


def lock_path(config_path: Path) -> Path:
    """``catalyst.lock`` in the config file's folder."""
    return config_path.absolute().parent / LOCK_NAME


def read_lock(path: Path) -> Lock:
    """The lock at ``path`` (an empty one when there is no file)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Lock()
    try:
        return Lock.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise PackageError(f"{path}: not valid JSON ({exc})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PackageError(f"{path}: {where}: {first['msg']}") from exc


def write_lock(path: Path, lock: Lock) -> None:
    """Write ``lock`` atomically, keys sorted, distributions in a stable order."""
    for record in lock.packages.values():
        record.distributions = sort_distributions(record.distributions)
    data = lock.model_dump(mode="json")
    data["generated_by"] = f"catalyst {__version__}"
    body = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    atomic_write(path, body)
