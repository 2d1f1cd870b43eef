"""PyPI installs against a fake simple index, with uv and with pip: exact versions, sha256
hashes in the lock, ``sync`` reproducing the venv elsewhere, a tampered hash refused by name."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from catalyst_mcp.errors import IntegrityError, PackageNotFound, RegistryUnreachable
from catalyst_mcp.packages.lockfile import read_lock, write_lock
from catalyst_mcp.packages.pypi import parse_requirements
from tests.conftest import free_port
from tests.packages.conftest import PYPI_NAME, Registries

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

INSTALLERS = pytest.mark.parametrize("installer", ["uv", "pip"])


@INSTALLERS
async def test_install_locks_hashes_and_sync_reproduces(
    registries: Registries, tmp_path: Path, installer: str
) -> None:
    manager = registries.manager(tmp_path / "a", python_installer=installer)
    report = await manager.install(f"pypi:{PYPI_NAME}")
    assert (report.record.version, report.record.installer) == ("0.2.0", installer)
    assert not report.record.pinned
    done = subprocess.run([report.command], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == PYPI_NAME  # the venv's own script, nothing resolved
    [distribution] = read_lock(manager.lock_path).packages["demo"].distributions
    files = {k: v for k, v in registries.server.routes.items() if k.startswith("/files/")}
    digest = hashlib.sha256(files["/files/demo_mcp-0.2.0-py3-none-any.whl"][1]).hexdigest()
    assert distribution == {"name": "demo-mcp", "version": "0.2.0", "hashes": [f"sha256:{digest}"]}
    other = tmp_path / "b"
    other.mkdir()
    (other / "catalyst.yaml").write_bytes((tmp_path / "a" / "catalyst.yaml").read_bytes())
    (other / "catalyst.lock").write_bytes(manager.lock_path.read_bytes())
    # the other machine may install with the other tool: the lock is the same
    other_installer = "pip" if installer == "uv" else "uv"
    synced = registries.manager(other, python_installer=other_installer)
    [result] = await synced.sync()
    assert (result.status, result.config) == ("installed", "updated")
    done = subprocess.run([result.command], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == PYPI_NAME


@INSTALLERS
async def test_a_tampered_hash_is_refused_and_named(
    registries: Registries, tmp_path: Path, installer: str
) -> None:
    manager = registries.manager(tmp_path, python_installer=installer)
    await manager.install(f"pypi:{PYPI_NAME}@0.1.0")
    lock = read_lock(manager.lock_path)
    lock.packages["demo"].distributions[0]["hashes"] = ["sha256:" + "0" * 64]
    write_lock(manager.lock_path, lock)
    fresh = registries.manager(tmp_path, dir=tmp_path / "elsewhere", python_installer=installer)
    with pytest.raises(IntegrityError, match=r"demo-mcp==0\.1\.0 does not match its sha256"):
        await fresh.sync()
    assert not list((tmp_path / "elsewhere").rglob("catalyst-package.json"))


@INSTALLERS
async def test_unknown_package_version_and_index(
    registries: Registries, tmp_path: Path, installer: str
) -> None:
    manager = registries.manager(tmp_path, python_installer=installer)
    with pytest.raises(PackageNotFound, match="no such package or version"):
        await manager.install("pypi:demo-nothing")
    with pytest.raises(PackageNotFound, match="no such package or version"):
        await manager.install(f"pypi:{PYPI_NAME}@9.9.9")
    dead = registries.manager(
        tmp_path,
        python_installer=installer,
        pypi_index_url=f"http://127.0.0.1:{free_port()}/simple",
    )
    dead.environ = {**registries.environ, "PIP_RETRIES": "1", "UV_HTTP_RETRIES": "0"}
    with pytest.raises(RegistryUnreachable, match="cannot reach the package index"):
        await dead.install(f"pypi:{PYPI_NAME}")
    assert not manager.lock_path.exists() and not manager.config_path.exists()
    assert not list((tmp_path / "packages").rglob("catalyst-package.json"))


def test_uv_requirements_are_read_with_every_hash() -> None:
    text = (
        "anyio==4.1.0 \\\n    --hash=sha256:"
        + "a" * 64
        + " \\\n    --hash=sha256:"
        + "b" * 64
        + "\nMCP_Server.Time==1 ; python_version >= '3.10' \\\n    --hash=sha256:"
        + "c" * 64
        + "\n    # via something\n"
    )
    assert parse_requirements(text) == [
        {
            "name": "anyio",
            "version": "4.1.0",
            "hashes": ["sha256:" + "a" * 64, "sha256:" + "b" * 64],
        },
        {"name": "mcp-server-time", "version": "1", "hashes": ["sha256:" + "c" * 64]},
    ]
