"""Several gateway processes sharing ``PROMETHEUS_MULTIPROC_DIR``: any one's ``/metrics`` adds
up every process's counts, and shows each one's state (``pid`` label)."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PYTHON, Process, free_port, wait_for_port
from tests.fakes import modern_headers, modern_request

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

MAIN = "from catalyst_mcp.cli.main import main; main()"


def post(port: int) -> None:
    message = modern_request("tools/list")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/mcp",
        data=json.dumps(message).encode(),
        headers=modern_headers(message),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_counts_add_up_across_worker_processes(tmp_path: Path) -> None:
    folder = tmp_path / "prom"
    folder.mkdir()
    config = tmp_path / "catalyst.yaml"
    config.write_text(json.dumps({"packs": {"path": None}, "audit": {"enabled": False}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CATALYST_", "PROMETHEUS_"))}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    ports = [free_port(), free_port()]
    workers = [
        Process([PYTHON, "-c", MAIN, "serve", "--config", str(config), "--port", str(p)], env=env)
        for p in ports
    ]
    try:
        for port in ports:
            wait_for_port(port)
        for port, calls in zip(ports, (2, 3), strict=True):
            for _ in range(calls):
                post(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/metrics", timeout=10) as r:
            text = r.read().decode()
    finally:
        for worker in workers:
            worker.stop()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    total = sum(
        s.value
        for s in samples
        if s.name == "catalyst_requests_total" and s.labels.get("method") == "tools/list"
    )
    assert total == 5  # 2 + 3, served by two processes, read from one
    ready = {int(s.labels["pid"]): s.value for s in samples if s.name == "catalyst_ready"}
    assert ready == {w.proc.pid: 1.0 for w in workers}  # each worker's state, by pid
