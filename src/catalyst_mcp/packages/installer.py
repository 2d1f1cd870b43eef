"""What the npm and PyPI installers share: the result of a build, the installer's environment,
reading an installer's failure, and picking the command a package runs as."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalyst_mcp.errors import (
    InstallFailed,
    PackageConflict,
    PackageError,
    PackageNotFound,
    RegistryUnreachable,
)
from catalyst_mcp.packages.runner import Finished

__all__ = [
    "Built",
    "choose_command",
    "failure",
    "find_program",
    "installer_env",
    "looks_unreachable",
]

# What npm, uv and pip print when the network, not the package, is the problem.
UNREACHABLE = re.compile(
    r"ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|ENETUNREACH|"
    r"Failed to establish a new connection|Name or service not known|"
    r"Temporary failure in name resolution|Connection refused|NewConnectionError|"
    r"tcp connect error|dns error|Could not fetch URL|Network is unreachable|ConnectTimeout|"
    r"Read timed out|error sending request",
    re.IGNORECASE,
)


@dataclass(slots=True)
class Built:
    """A finished build: the exact version, every distribution for the lock, and the
    commands the package provides (name -> path inside the prefix)."""

    version: str
    installer: str
    distributions: list[dict[str, Any]]
    commands: dict[str, str]
    python: str | None = None
    notes: list[str] = field(default_factory=list)


def installer_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The user's environment (proxies, registry credentials, caches) minus colours, prompts
    and update nags."""
    return {
        **environ,
        "NO_COLOR": "1",
        "npm_config_color": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        "npm_config_update_notifier": "false",
        "npm_config_progress": "false",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "UV_NO_PROGRESS": "1",
    }


def find_program(name: str, environ: Mapping[str, str], *, beside_python: bool = False) -> str:
    """The absolute path of ``name`` on the PATH of ``environ`` (or, with ``beside_python``,
    next to the running interpreter, where a virtualenv keeps its tools); ``""`` if absent."""
    found = shutil.which(name, path=environ.get("PATH"))
    if found:
        return found
    if beside_python:
        candidate = Path(sys.executable).parent / name
        if candidate.is_file():
            return str(candidate)
    return ""


def looks_unreachable(lines: Sequence[str]) -> bool:
    return any(UNREACHABLE.search(line) for line in lines)


def failure(
    what: str, finished: Finished, default: type[PackageError] = InstallFailed
) -> PackageError:
    """The error for an installer run that failed: unreachable registry, else ``default``;
    its message ends with the tail of the installer's output."""
    kind: type[PackageError] = RegistryUnreachable if looks_unreachable(finished.lines) else default
    return kind(f"{what} (exit code {finished.returncode}); its last lines:\n{finished.tail()}")


def choose_command(commands: Mapping[str, str], package: str, wanted: str | None) -> str:
    """The command to run: ``wanted`` if given, else the only one, else the one named like
    the package (as ``npx`` and ``uvx`` choose)."""
    if wanted is not None:
        if wanted not in commands:
            raise PackageConflict(
                f"{package} has no command {wanted!r} (it has: {', '.join(sorted(commands))})"
            )
        return wanted
    if not commands:
        raise PackageNotFound(
            f"{package} installs no command to run (no npm 'bin' or Python console script): "
            "it is not a runnable MCP server package"
        )
    if len(commands) == 1:
        return next(iter(commands))
    base = package.rsplit("/", 1)[-1].lower()
    for name in commands:
        if re.sub(r"[-_.]+", "-", name.lower()) == re.sub(r"[-_.]+", "-", base):
            return name
    raise PackageConflict(
        f"{package} installs several commands ({', '.join(sorted(commands))}): choose one "
        "with --bin"
    )
