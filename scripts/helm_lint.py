"""Lint the Helm chart with helm's own linter.

    python scripts/helm_lint.py [CHART]     # default: deploy/helm/catalyst
    python scripts/helm_lint.py --setup     # make .helm-venv (Python >= 3.12 + helm-sdkpy)

With a ``helm`` binary on PATH it runs ``helm lint CHART``. No registry this project uses ships
one (no Debian package, no PyPI or npm package with the binary), so without it the chart is
linted by helm's lint action compiled into the ``helm-sdkpy`` library (PyPI; needs Python 3.12 or
newer, which ``--setup`` looks for on PATH and in pyenv, and installs into ``.helm-venv``). That
library reports each finding's severity and file but not its text.

Exit codes: 0 clean (informational findings allowed), 1 the chart has errors or warnings,
3 no way to lint here (the message says why).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "catalyst"
VENV = ROOT / ".helm-venv"
VENV_PYTHON = VENV / "bin" / "python"
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
UNAVAILABLE = 3


def lint_with_sdk(chart: Path) -> int:
    from helm_sdkpy import Configuration
    from helm_sdkpy.chart import Lint

    result: dict[str, Any] = asyncio.run(Lint(Configuration(namespace="default")).run(str(chart)))
    worst = 0
    for message in result.get("Messages") or []:
        severity = int(message.get("Severity", 0))
        worst = max(worst, severity)
        text = json.dumps(message.get("Err")) if message.get("Err") else ""
        print(f"[{SEVERITY.get(severity, severity)}] {message.get('Path')} {text}".rstrip())
    failed = worst >= 2 or bool(result.get("Errors"))
    linted = result.get("TotalChartsLinted", 0)
    print(f"{linted} chart(s) linted, {1 if failed else 0} failed (helm lint, via helm-sdkpy)")
    return 1 if failed or not linted else 0


def find_python() -> str | None:
    """A Python 3.12 or newer: on PATH, or among pyenv's versions."""
    candidates = [shutil.which(n) for n in ("python3.14", "python3.13", "python3.12")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob("versions/3.1[2-9]*/bin/python3"))
    for candidate in candidates:
        if not candidate:
            continue
        probe = "import sys; sys.exit(sys.version_info < (3, 12))"
        try:
            done = subprocess.run([candidate, "-c", probe], capture_output=True, timeout=30)
        except OSError:
            continue
        if done.returncode == 0:
            return candidate
    return None


def setup() -> int:
    if VENV_PYTHON.exists():
        return 0
    python = find_python()
    if python is None:
        print("no Python >= 3.12 found (on PATH or in pyenv): helm-sdkpy needs one")
        return UNAVAILABLE
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    done = subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "-q", "helm-sdkpy"])
    if done.returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        print("pip could not install helm-sdkpy")
        return UNAVAILABLE
    return 0


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--setup"]:
        return setup()
    if argv[1:2] == ["--sdk"]:
        return lint_with_sdk(Path(argv[2]))
    chart = Path(argv[1]) if len(argv) > 1 else CHART
    helm = shutil.which("helm")
    if helm is not None:
        return subprocess.run([helm, "lint", str(chart)]).returncode
    if VENV_PYTHON.exists():
        return subprocess.run([str(VENV_PYTHON), __file__, "--sdk", str(chart)]).returncode
    print(
        "cannot lint the chart here: no helm binary on PATH (none of Debian's, PyPI's or npm's "
        "packages ships one) and no .helm-venv (python scripts/helm_lint.py --setup makes it "
        "with helm-sdkpy, given a Python >= 3.12)"
    )
    return UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main(sys.argv))
