"""The ``packages:`` settings: where packages are installed and how (docs/packages.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_REGISTRY", "PackagesSettings", "default_packages_dir"]

DEFAULT_REGISTRY = "https://registry.modelcontextprotocol.io"
STATE_DIR_ENV = "XDG_STATE_HOME"


def default_packages_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/catalyst/packages``, else ``~/.local/state/catalyst/packages``."""
    home = Path(environ.get("HOME") or Path.home())
    base = environ.get(STATE_DIR_ENV) or str(home / ".local" / "state")
    return Path(base) / "catalyst" / "packages"


class PackagesSettings(BaseModel):
    """Where MCP server packages come from and where they are installed (docs/packages.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry_url: str = Field(
        DEFAULT_REGISTRY,
        pattern=r"^https?://",
        description="Base URL of the MCP Registry searched by `catalyst packages search` "
        "(its /v0.1/servers API). When it cannot be reached, the catalog snapshot bundled "
        "with Catalyst is used instead.",
    )
    dir: Path | None = Field(
        None,
        description="Folder of installed packages, one isolated prefix each. Unset: "
        "catalyst/packages in the user's state folder ($XDG_STATE_HOME, else ~/.local/state).",
    )
    allow_install_scripts: bool = Field(
        False,
        description="Let packages run code while they install: npm install scripts "
        "(preinstall, install, postinstall) and building Python source distributions. Off: "
        "npm runs with --ignore-scripts and Python packages install from wheels only.",
    )
    python_installer: Literal["auto", "uv", "pip"] = Field(
        "auto",
        description="How PyPI packages are installed: 'uv' (a venv made and filled by uv), "
        "'pip' (python -m venv, then pip), or 'auto': uv when it is installed, else pip.",
    )
    python: str | None = Field(
        None,
        description="Python interpreter for the venvs of PyPI packages (a path or a name on "
        "PATH). Unset: the interpreter running Catalyst.",
    )
    npm_registry_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="npm registry to install from. Unset: npm's own configuration (.npmrc), "
        "normally https://registry.npmjs.org.",
    )
    pypi_index_url: str | None = Field(
        None,
        pattern=r"^(https?|file)://",
        description="Python package index to install from (a PEP 503 simple index). Unset: "
        "the installer's own configuration, normally https://pypi.org/simple.",
    )
    registry_timeout_seconds: float = Field(
        10.0, gt=0, description="Time allowed for one request to the MCP Registry."
    )
    install_timeout_seconds: float = Field(
        600.0,
        gt=0,
        description="Time allowed for one installer run (npm, uv or pip); past it the "
        "installer is stopped and nothing is installed.",
    )

    def directory(self, environ: Mapping[str, str] | None = None) -> Path:
        """The folder in effect: this setting, else the default in the state folder."""
        env = os.environ if environ is None else environ
        return (self.dir or default_packages_dir(env)).expanduser().absolute()
