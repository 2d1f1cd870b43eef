"""The official MCP conformance suite against the gateway serving the conformance fixture.

This is ``conformance/run.py`` (``make conformance``) as a test: the same install, the same
gateway (``conformance/catalyst.yaml``), both requirement sets. It skips with the reason when
Node or the suite cannot be installed on this machine, and fails instead under CI=true.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ROOT, require_or_skip

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.node,
    pytest.mark.subprocess,
    pytest.mark.network,
]

RUN_SCRIPT = ROOT / "conformance" / "run.py"


def _load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_run", RUN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


@pytest.fixture(scope="module")
def suite() -> tuple[object, Path]:
    """Node and the installed suite's entry point (installed into .node/ when missing)."""
    try:
        node, entry = runner.install_suite()
    except runner.SetupError as exc:
        require_or_skip(False, f"the MCP conformance suite cannot run here: {exc}")
        raise  # unreachable: require_or_skip skipped or failed
    return node, entry


@pytest.fixture(scope="module")
def gateway_url(suite: tuple[object, Path]) -> Iterator[str]:
    """``catalyst serve --config conformance/catalyst.yaml`` on a free port, stopped by PID."""
    with runner.running_gateway(runner.free_port(), runner.RESULTS / "gateway.log") as url:
        yield url


@pytest.mark.timeout(600)
@pytest.mark.parametrize("requirements", runner.REQUIREMENTS)
def test_conformance_requirements_pass(
    suite: tuple[object, Path], gateway_url: str, requirements: str
) -> None:
    node, entry = suite
    result = runner.run_suite(node, entry, gateway_url, requirements)
    assert result.passed, result.report()
    if requirements == "2026-07-28":  # the tasks extension: not scored, but it must pass
        tasks = [line.strip() for line in result.summary.splitlines() if " tasks-" in line]
        scenarios = {line.split()[1].rstrip(":") for line in tasks}
        assert len(scenarios) >= 10, result.summary
        assert not [line for line in tasks if line.startswith("✗")], result.report()


def test_failed_scored_ignores_unscored_scenarios() -> None:
    summary = (
        "=== SUMMARY ===\n"
        "✓ tools-list: 4 passed, 0 failed\n"
        "✗ caching: 7 passed, 1 failed\n"
        "✗ tasks-lifecycle: 1 passed, 8 failed\n\n"
        "Total: 12 passed, 9 failed\n\n"
        "Not scored for 2026-07-28: 1 scenario(s) run, 1 failing.\n"
        "  ✗ tasks-lifecycle (extension)\n"
    )
    assert runner.failed_scored(summary) == ["caching"]
