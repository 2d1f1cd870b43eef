"""catalyst.lock: a stable, readable round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalyst_mcp.errors import PackageError
from catalyst_mcp.packages.lockfile import Lock, LockedPackage, lock_path, read_lock, write_lock


def _record(distributions: list[dict[str, object]]) -> LockedPackage:
    return LockedPackage(
        source="pypi:demo",
        runtime="pypi",
        package="demo",
        version="1.0",
        command="demo",
        installer="uv",
        distributions=distributions,
    )


def test_round_trip_in_a_stable_order(tmp_path: Path) -> None:
    path = lock_path(tmp_path / "catalyst.yaml")
    assert path == tmp_path / "catalyst.lock"
    assert read_lock(path) == Lock()  # no file yet
    b = {"name": "b", "version": "2", "hashes": ["sha256:" + "b" * 64]}
    a = {"name": "a", "version": "1", "hashes": ["sha256:" + "a" * 64]}
    lock = Lock(packages={"zeta": _record([b, a]), "alpha": _record([a, b])})
    write_lock(path, lock)
    first = path.read_bytes()
    assert read_lock(path) == lock
    write_lock(path, read_lock(path))
    assert path.read_bytes() == first  # byte for byte: diffs show only real changes
    text = first.decode()
    assert text.index('"alpha"') < text.index('"zeta"')
    assert text.index('"name": "a"') < text.index('"name": "b"')
    assert lock.packages["zeta"].digest() == lock.packages["alpha"].digest()


def test_a_damaged_lock_is_named(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.lock"
    path.write_text("{not json")
    with pytest.raises(PackageError, match=r"catalyst.lock: not valid JSON"):
        read_lock(path)
    path.write_text('{"packages": {"x": {"runtime": "cargo"}}}')
    with pytest.raises(PackageError, match=r"packages.x"):
        read_lock(path)
