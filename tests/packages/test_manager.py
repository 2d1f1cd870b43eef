"""Installs that fail or are interrupted leave nothing behind; a missing runtime is named."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalyst_mcp.errors import InstallFailed, RuntimeMissing
from catalyst_mcp.packages.config import PackagesSettings
from catalyst_mcp.packages.manager import PackageManager
from tests.packages.fakes import fake_programs

pytestmark = pytest.mark.subprocess

# An npm that resolves any package to 1.0.0, then "installs" slowly: it writes into the
# prefix, records its pid, and waits (as a real install does while downloading).
SLOW_NPM = """\
case "$1" in
  view) echo '"1.0.0"' ;;
  install)
    echo "npm http fetch GET 200 https://registry.example/pkg"
    mkdir -p "$3/node_modules/pkg" && echo partial > "$3/node_modules/pkg/index.js"
    echo $$ > "$PIDFILE"
    sleep 60 ;;
esac
"""
DYING_NPM = """\
case "$1" in
  view) echo '"1.0.0"' ;;
  install)
    mkdir -p "$3/node_modules/pkg"
    echo "npm error code ERESOLVE"
    echo "npm error could not resolve dependency tree" >&2
    kill -9 $$ ;;
esac
"""


def _manager(tmp_path: Path, npm: str) -> PackageManager:
    path = fake_programs(tmp_path / "bin", {"npm": npm, "node": "exit 0\n"})
    environ = {**os.environ, "PATH": path, "PIDFILE": str(tmp_path / "npm.pid")}
    settings = PackagesSettings(dir=tmp_path / "packages")
    return PackageManager(settings, tmp_path / "catalyst.yaml", environ=environ)


def _nothing_left(tmp_path: Path) -> None:
    leftovers = [p for p in (tmp_path / "packages").rglob("*") if p.is_file()]
    assert leftovers == []
    assert not (tmp_path / "catalyst.yaml").exists()
    assert not (tmp_path / "catalyst.lock").exists()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_a_cancelled_install_leaves_nothing(tmp_path: Path) -> None:
    manager = _manager(tmp_path, SLOW_NPM)
    task = asyncio.create_task(manager.install("npm:pkg"))
    pidfile = tmp_path / "npm.pid"
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.05)
    assert list((tmp_path / "packages").rglob("index.js"))  # it was half-way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _nothing_left(tmp_path)
    assert _gone(int(pidfile.read_text()))  # the installer was stopped too


async def test_an_installer_killed_midway_is_a_clear_error(tmp_path: Path) -> None:
    manager = _manager(tmp_path, DYING_NPM)
    with pytest.raises(InstallFailed) as caught:
        await manager.install("npm:pkg")
    message = caught.value.message
    assert message.startswith("npm install of pkg@1.0.0 failed (exit code -9)")
    assert "npm error could not resolve dependency tree" in message
    _nothing_left(tmp_path)


async def test_missing_runtimes_are_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    settings = PackagesSettings(dir=tmp_path / "packages", python="/no/such/python3")
    manager = PackageManager(
        settings, tmp_path / "catalyst.yaml", environ={**os.environ, "PATH": str(empty)}
    )
    with pytest.raises(RuntimeMissing, match="npm is not installed"):
        await manager.install("npm:pkg")
    with pytest.raises(RuntimeMissing, match="python '/no/such/python3' is not installed"):
        await manager.install("pypi:pkg")
    only_uv = PackageManager(
        PackagesSettings(dir=tmp_path / "p", python_installer="uv"),
        tmp_path / "catalyst.yaml",
        environ={"PATH": str(empty)},
    )
    if not (Path(sys.executable).parent / "uv").exists():
        with pytest.raises(RuntimeMissing, match="uv is not installed"):
            await only_uv.install("pypi:pkg")
    _nothing_left(tmp_path)


@pytest.mark.timeout(90)
def test_sigterm_to_the_cli_mid_install_leaves_nothing(tmp_path: Path) -> None:
    """`catalyst packages install` killed (SIGTERM) while npm runs: one error line, exit 1,
    no prefix, no config, no lock, and npm stopped."""
    path = fake_programs(tmp_path / "bin", {"npm": SLOW_NPM, "node": "exit 0\n"})
    environ = {
        **os.environ,
        "PATH": path,
        "PIDFILE": str(tmp_path / "npm.pid"),
        "CATALYST_PACKAGES__DIR": str(tmp_path / "packages"),
    }
    catalyst = [str(Path(sys.executable).parent / "catalyst")]
    proc = subprocess.Popen(
        [*catalyst, "packages", "install", "npm:pkg"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pidfile = tmp_path / "npm.pid"
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    assert "error: interrupted: the install in progress was removed" in stderr
    assert "Traceback" not in stderr
    _nothing_left(tmp_path)
    assert _gone(int((tmp_path / "npm.pid").read_text()))
