"""helm's own linter on the chart (``scripts/helm_lint.py``): with a ``helm`` binary, or with
helm-sdkpy in ``.helm-venv`` (``python scripts/helm_lint.py --setup``; .ci/run makes it where a
Python >= 3.12 is at hand). Skipped, with the reason, where neither can be had."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "helm_lint.py"
CHART = ROOT / "deploy" / "helm" / "catalyst"


def lint(chart: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(chart)], capture_output=True, text=True, timeout=300
    )
    if done.returncode == 3:
        pytest.skip(done.stdout.strip())
    return done


def test_the_chart_lints_clean() -> None:
    done = lint(CHART)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 failed" in done.stdout


def test_a_broken_template_fails_the_lint(tmp_path: Path) -> None:
    broken = tmp_path / "catalyst"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("{{ .Values.nothing.here }}\nkind: [\n")
    done = lint(broken)
    assert done.returncode == 1, done.stdout + done.stderr
