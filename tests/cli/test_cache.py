"""``catalyst cache stats|clear`` against a real ``catalyst serve`` process whose built-in
filesystem server's results are cached (auth off: the local user is an administrator)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalyst_mcp.cli.common import EXIT_CONNECT, EXIT_FAILED
from tests.cli.helpers import run, write_config
from tests.conftest import PYTHON, Process, free_port, wait_for_port

MAIN = "from catalyst_mcp.cli.main import main; main()"


class Served:
    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root

    def read(self, path: str) -> str:
        result = run(
            "tools",
            "call",
            "files__read_file",
            "--arg",
            f"path={path}",
            "--json",
            "--url",
            f"{self.url}/mcp",
        )
        assert result.exit_code == 0, result.output
        text: str = json.loads(result.stdout)["structuredContent"]["text"]
        return text


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("one")
    files = {"filesystem": {"roots": [str(root)]}, "cache": {"ttl": "5m", "scope": "shared"}}
    config = write_config(tmp_path / "catalyst.yaml", {"files": files}, packs={"path": None})
    port = free_port()
    gateway = Process([PYTHON, "-c", MAIN, "serve", "--config", str(config), "--port", str(port)])
    try:
        wait_for_port(port)
        yield Served(f"http://127.0.0.1:{port}", root)
    finally:
        gateway.stop()


@pytest.mark.subprocess
@pytest.mark.network
def test_stats_and_clear_against_a_real_gateway(served: Served) -> None:
    assert served.read("a.txt") == "one"
    (served.root / "a.txt").write_text("two")
    assert served.read("a.txt") == "one"  # cached
    stats = run("cache", "stats", "--json", "--url", served.url)
    assert stats.exit_code == 0, stats.output
    answer = json.loads(stats.stdout)
    assert answer["counts"]["hits_memory"] == 1 and answer["counts"]["stored"] == 1
    assert answer["servers"][0]["server"] == "files"
    human = run("cache", "stats", "--url", served.url)
    assert "memory:   1 of 10000 results, 0.0 MiB of 64.0 MiB, 0 evicted" in human.stdout
    assert "2 (50% hit): 1 hits in memory, 0 in Redis, 0 coalesced, 1 misses" in human.stdout
    assert "off (memory only)" in human.stdout
    cleared = run("cache", "clear", "--tool", "files__read_file", "--url", served.url)
    assert cleared.exit_code == 0, cleared.output
    assert cleared.stdout.strip() == (
        "cleared tool files__read_file: 1 result from memory, 0 from Redis"
    )
    assert served.read("a.txt") == "two"
    everything = run("cache", "clear", "--server", "files", "--json", "--url", served.url)
    assert json.loads(everything.stdout) == {
        "server": "files",
        "tool": None,
        "memory": 1,
        "redis": 0,
    }
    unknown = run("cache", "clear", "--tool", "nowhere__x", "--url", served.url)
    assert unknown.exit_code == EXIT_FAILED
    assert "Unknown tool: nowhere__x" in unknown.stderr


def test_an_unreachable_gateway_is_exit_4() -> None:
    result = run("cache", "stats", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == EXIT_CONNECT
    assert "cannot reach the gateway" in result.stderr
