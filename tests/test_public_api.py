"""Every module declares its public API, and every declared name exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import catalyst_mcp

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(catalyst_mcp.__path__, "catalyst_mcp.")
    if not info.ispkg and not info.name.startswith("catalyst_mcp.cli")
)


def test_modules_found() -> None:
    assert "catalyst_mcp.app" in MODULES
    assert "catalyst_mcp.upstreams.upstream" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_all_is_declared_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    declared = getattr(module, "__all__", None)
    assert isinstance(declared, list), f"{name} has no __all__"
    assert len(declared) == len(set(declared)), f"{name}: duplicates in __all__"
    for public in declared:
        assert hasattr(module, public), f"{name}.__all__ names missing {public!r}"


def test_version() -> None:
    assert catalyst_mcp.__all__ == ["__version__"]
    assert isinstance(catalyst_mcp.__version__, str)
