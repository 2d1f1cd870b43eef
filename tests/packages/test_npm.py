"""npm installs against a fake npm registry: exact versions, the lock's integrity hashes,
``sync`` reproducing the tree elsewhere, a tampered hash refused by name, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from catalyst_mcp.errors import IntegrityError, PackageNotFound, RegistryUnreachable
from catalyst_mcp.packages.lockfile import read_lock, write_lock
from tests.conftest import free_port
from tests.packages.conftest import NPM_NAME, Registries
from tests.packages.fakes import sri

pytestmark = [pytest.mark.network, pytest.mark.subprocess, pytest.mark.usefixtures("need_npm")]


async def test_install_locks_every_integrity_and_sync_reproduces(
    registries: Registries, tmp_path: Path
) -> None:
    manager = registries.manager(tmp_path / "a")
    report = await manager.install(f"npm:{NPM_NAME}@1.0.0")
    assert report.server == "demo" and report.record.pinned
    command = Path(report.command)
    assert command.name == "demo-server" and command.exists()
    assert str(command).startswith(str(tmp_path / "a" / "packages" / "npm"))
    lock = read_lock(manager.lock_path)
    record = lock.packages["demo"]
    tarball = registries.server.routes["/tarballs/@demo-mcp-server-1.0.0.tgz"][1]
    assert record.distributions == [
        {
            "path": f"node_modules/{NPM_NAME}",
            "version": "1.0.0",
            "integrity": sri(tarball),
            "bin": {"demo-server": "cli.js"},
        }
    ]
    # another machine: the same config and lock, another state folder
    other = tmp_path / "b"
    other.mkdir()
    (other / "catalyst.yaml").write_bytes((tmp_path / "a" / "catalyst.yaml").read_bytes())
    (other / "catalyst.lock").write_bytes(manager.lock_path.read_bytes())
    synced = registries.manager(other)
    [result] = await synced.sync()
    assert (result.status, result.config) == ("installed", "updated")
    assert result.command.startswith(str(other / "packages"))
    assert synced.installed()[0]["state"] == "ok"
    [again] = await synced.sync()
    assert (again.status, again.config) == ("present", "unchanged")


async def test_a_tampered_integrity_is_refused_and_named(
    registries: Registries, tmp_path: Path
) -> None:
    manager = registries.manager(tmp_path)
    await manager.install(f"npm:{NPM_NAME}@1.0.0")
    lock = read_lock(manager.lock_path)
    lock.packages["demo"].distributions[0]["integrity"] = sri(b"something else")
    write_lock(manager.lock_path, lock)
    fresh = registries.manager(tmp_path, dir=tmp_path / "elsewhere")
    with pytest.raises(IntegrityError, match=r"@demo/mcp-server@1\.0\.0 .*does not match"):
        await fresh.sync()
    assert not any((tmp_path / "elsewhere").rglob("demo-server"))  # nothing installed


async def test_update_moves_to_the_newest_unless_pinned(
    registries: Registries, tmp_path: Path
) -> None:
    manager = registries.manager(tmp_path)
    await manager.install(f"npm:{NPM_NAME}@1.0.0")
    [pinned] = await manager.update()
    assert (pinned.status, pinned.old) == ("pinned", "1.0.0")
    [updated] = await manager.update("demo", unpin=True)
    assert (updated.status, updated.new) == ("updated", "1.1.0")
    config = yaml.safe_load(manager.config_path.read_text())
    assert "/1.1.0/" in config["servers"]["demo"]["command"]
    assert not (tmp_path / "packages" / "npm" / "demo+mcp-server" / "1.0.0").exists()
    [current] = await manager.update()
    assert current.status == "current"


async def test_unknown_package_version_and_registry(registries: Registries, tmp_path: Path) -> None:
    manager = registries.manager(tmp_path)
    with pytest.raises(PackageNotFound, match="no npm package @demo/nothing"):
        await manager.install("npm:@demo/nothing")
    with pytest.raises(PackageNotFound, match=r"has no version 9\.9\.9"):
        await manager.install(f"npm:{NPM_NAME}@9.9.9")
    dead = registries.manager(tmp_path, npm_registry_url=f"http://127.0.0.1:{free_port()}/")
    environ = {**registries.environ, "npm_config_fetch_retries": "0"}
    dead.environ = environ
    with pytest.raises(RegistryUnreachable, match="npm cannot reach its registry"):
        await dead.install(f"npm:{NPM_NAME}")
    assert not manager.config_path.exists() and not manager.lock_path.exists()
