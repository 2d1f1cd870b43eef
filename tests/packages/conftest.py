"""Fixtures for package tests: fake registries on loopback with a demo npm package and a demo
wheel, caches of their own, and a manager over a temporary config and state folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from catalyst_mcp.packages.config import PackagesSettings
from catalyst_mcp.packages.manager import PackageManager
from tests.conftest import have, require_or_skip
from tests.packages.fakes import (
    FakeServer,
    add_npm_package,
    add_pypi_package,
    npm_tarball,
    wheel,
)

NPM_NAME = "@demo/mcp-server"
PYPI_NAME = "demo-mcp"


@dataclass
class Registries:
    server: FakeServer
    environ: dict[str, str]

    def settings(self, root: Path, **extra: object) -> PackagesSettings:
        values: dict[str, object] = {
            "dir": root / "packages",
            "npm_registry_url": self.server.url,
            "pypi_index_url": f"{self.server.url}/simple",
            "install_timeout_seconds": 120.0,
            **extra,
        }
        return PackagesSettings.model_validate(values)

    def manager(self, root: Path, **extra: object) -> PackageManager:
        return PackageManager(
            self.settings(root, **extra), root / "catalyst.yaml", environ=self.environ
        )


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    """npm: @demo/mcp-server 1.0.0 and 1.1.0 (bin demo-server); PyPI: demo-mcp 0.1.0 and
    0.2.0 (console script demo-mcp)."""
    caches = tmp_path_factory.mktemp("caches")
    with FakeServer() as server:
        add_npm_package(
            server,
            NPM_NAME,
            {v: npm_tarball(NPM_NAME, v, "demo-server") for v in ("1.0.0", "1.1.0")},
        )
        add_pypi_package(
            server, PYPI_NAME, dict(wheel(PYPI_NAME, v, "demo-mcp") for v in ("0.1.0", "0.2.0"))
        )
        environ = {
            **os.environ,
            "npm_config_cache": str(caches / "npm"),
            "UV_CACHE_DIR": str(caches / "uv"),
            "PIP_CACHE_DIR": str(caches / "pip"),
            "PIP_CONFIG_FILE": os.devnull,  # the machine's pip.conf (extra indexes) is not ours
            "PIP_FIND_LINKS": "",
            "PIP_EXTRA_INDEX_URL": "",
        }
        yield Registries(server, environ)


@pytest.fixture
def need_npm() -> None:
    require_or_skip(have("npm") and have("node"), "npm and node are not installed")
