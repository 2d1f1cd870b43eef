"""What the user asked to install: ``NAME[@VERSION]``, ``npm:PKG[@V]`` or ``pypi:PKG[@V]``.

``NAME`` is a server's name in the catalog (``io.github.owner/server``, or just its last part
when that is unambiguous). A version must be exact (``1.2.3``): giving one pins the install.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from catalyst_mcp.errors import PackageError

__all__ = ["PackageSpec", "normalize_pypi", "parse_spec", "short_name"]

Kind = Literal["catalog", "npm", "pypi"]

NPM_NAME = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
PYPI_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
SERVER_NAME = re.compile(r"^[A-Za-z0-9.-]+/[A-Za-z0-9._-]+$|^[A-Za-z0-9._-]+$")
EXACT_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$")


@dataclass(frozen=True, slots=True)
class PackageSpec:
    kind: Kind
    name: str
    version: str | None = None

    def __str__(self) -> str:
        prefix = "" if self.kind == "catalog" else f"{self.kind}:"
        return f"{prefix}{self.name}" + (f"@{self.version}" if self.version else "")


def normalize_pypi(name: str) -> str:
    """PEP 503 normal form: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


_AFFIXES = (r"^mcp-server-", r"^server-", r"^mcp-", r"-mcp-server$", r"-mcp$", r"-server$")


def short_name(text: str) -> str:
    """The short form of a server or package name: its last part without the usual
    ``mcp``/``server`` affixes (``io.github.x/mcp-server-time`` and ``@x/server-time`` are
    ``time``); the server entry's default name."""
    owner, _, base = text.lower().rpartition("/")
    base = re.sub(r"[^a-z0-9]+", "-", base).strip("-")
    short = base
    for affix in _AFFIXES:
        short = re.sub(affix, "", short)
    if short in ("", "mcp", "server") and owner:  # @acme/mcp-server: the owner says more
        short = owner.rsplit(".", 1)[-1].lstrip("@")
    return re.sub(r"[^a-z0-9]+", "-", short or base).strip("-")


def _split_version(text: str) -> tuple[str, str | None]:
    """``name@version`` (``@`` after the first character: npm scopes start with one)."""
    if "==" in text:
        name, _, version = text.partition("==")
        return name, version
    at = text.rfind("@")
    if at > 0:
        return text[:at], text[at + 1 :]
    return text, None


def parse_spec(text: str) -> PackageSpec:
    """Read what the user typed; a :class:`PackageError` says what is wrong with it."""
    text = text.strip()
    kind: Kind = "catalog"
    for prefix in ("npm:", "pypi:"):
        if text.startswith(prefix):
            kind = "npm" if prefix == "npm:" else "pypi"
            text = text[len(prefix) :]
    name, version = _split_version(text)
    if version is not None and not EXACT_VERSION.match(version):
        raise PackageError(
            f"version {version!r} must be an exact version such as 1.2.3 (ranges are not "
            "accepted: the lockfile records exactly what is installed)"
        )
    pattern = {"npm": NPM_NAME, "pypi": PYPI_NAME, "catalog": SERVER_NAME}[kind]
    if not pattern.match(name):
        what = {"npm": "an npm package", "pypi": "a PyPI package", "catalog": "a server"}[kind]
        raise PackageError(f"{name!r} is not the name of {what}")
    return PackageSpec(kind, name, version)
