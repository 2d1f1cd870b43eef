"""The state folder: builds beside the link, swapped in at once, leftovers collected."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from catalyst_mcp.packages.layout import Layout, slug


def test_publish_swaps_and_removes_the_old_build(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    prefix = layout.prefix("npm", "@acme/server", "1.0.0")
    assert prefix == tmp_path / "npm" / "acme+server" / "1.0.0"
    first = layout.new_build(prefix)
    first.mkdir()
    layout.write_marker(first, {"version": "1.0.0"})
    assert layout.marker(prefix) is None  # nothing visible before the swap
    layout.publish(first, prefix)
    assert layout.marker(prefix) == {"version": "1.0.0"}
    second = layout.new_build(prefix)
    second.mkdir()
    layout.write_marker(second, {"version": "1.0.0", "again": True})
    layout.publish(second, prefix)
    assert layout.marker(prefix) == {"version": "1.0.0", "again": True}
    assert not first.exists()
    layout.remove(prefix)
    assert not (tmp_path / "npm").exists()


def test_leftovers_of_dead_processes_are_collected(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    prefix = layout.prefix("pypi", "demo", "1.0")
    done = subprocess.run(["true"], check=True)
    assert done.returncode == 0
    dead = prefix.parent / ".1.0.999999999.0123abcd"  # no such process
    dead.mkdir(parents=True)
    mine = prefix.parent / f".1.0.{os.getpid()}.0123abcd"  # a build in progress here
    mine.mkdir()
    layout.new_build(prefix)
    assert not dead.exists() and mine.exists()


def test_slugs() -> None:
    assert slug("@modelcontextprotocol/server-memory") == "modelcontextprotocol+server-memory"
    assert slug("../../etc") == "etc"
