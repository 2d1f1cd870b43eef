"""``catalyst serve`` with ``audit.durability: strict``, killed with SIGKILL in the middle of a
burst of concurrent calls: every call a client saw answered has its record, and the chain of
what was committed still verifies (``catalyst audit verify``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from catalyst_mcp.observability.audit import search
from catalyst_mcp.storage.db import Database
from tests.conftest import PYTHON, UPSTREAM, Process, free_port, stdio_upstream
from tests.fakes import modern_headers, modern_request

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

CATALYST = str(Path(PYTHON).parent / "catalyst")  # the installed console script
CLIENTS = 32  # calls in flight at once
KILL_AFTER = 150  # answered calls before the SIGKILL


def start(tmp_path: Path, durability: str) -> tuple[Process, str, Path]:
    """``catalyst serve`` auditing to a new SQLite file, serving the SDK fixture server over
    stdio (tool ``io__echo``); waits until it is ready."""
    port = free_port()
    config = tmp_path / "catalyst.yaml"
    settings = {
        "gateway": {"port": port},
        "servers": {"io": stdio_upstream(UPSTREAM, era="legacy")},
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"},
        "audit": {"durability": durability},
        "packs": {"path": None},
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    gateway = Process([CATALYST, "serve", "--config", str(config)], cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx2.get(f"{base}/ready?strict").status_code == 200:
                return gateway, f"{base}/mcp", config
        except httpx2.TransportError:
            pass
        if gateway.proc.poll() is not None or time.monotonic() > deadline:
            gateway.stop()
            pytest.fail("catalyst serve did not become ready")
        time.sleep(0.05)


async def burst(url: str, gateway: Process) -> set[int]:
    """``CLIENTS`` clients call ``io__echo`` in a loop, each call with its own id, until the
    gateway is gone; it is killed (SIGKILL) once ``KILL_AFTER`` calls were answered. The ids
    of the calls answered with a result."""
    answered: set[int] = set()
    ids = iter(range(1, 1_000_000))
    enough = asyncio.Event()

    async def client(http: httpx2.AsyncClient) -> None:
        while True:
            n = next(ids)
            message = modern_request(
                "tools/call", {"name": "io__echo", "arguments": {"text": f"c{n}"}}, request_id=n
            )
            try:
                response = await http.post(url, json=message, headers=modern_headers(message))
            except httpx2.TransportError:
                return  # the gateway is gone
            body: dict[str, Any] = response.json()
            assert response.status_code == 200, body
            assert body["result"]["content"][0]["text"] == f"c{n}", body
            answered.add(n)
            if len(answered) >= KILL_AFTER:
                enough.set()

    limits = httpx2.Limits(max_connections=CLIENTS)
    async with httpx2.AsyncClient(timeout=30, limits=limits, trust_env=False) as http:
        clients = [asyncio.create_task(client(http)) for _ in range(CLIENTS)]
        await asyncio.wait_for(enough.wait(), 40)
        os.kill(gateway.pid, signal.SIGKILL)  # mid-burst: calls are in flight
        await asyncio.wait_for(asyncio.gather(*clients), 20)
    return answered


async def recorded_ids(path: Path) -> list[Any]:
    db = Database(f"sqlite:///{path}")
    try:
        found = await search(db, action="tools/call", limit=100_000)
    finally:
        await db.close()
    assert {r["outcome"] for r in found} == {"ok"}
    return [r["detail"]["request_id"] for r in found]


async def test_sigkill_mid_burst_loses_no_answered_call(tmp_path: Path) -> None:
    gateway, url, config = start(tmp_path, "strict")
    try:
        answered = await burst(url, gateway)
        assert gateway.proc.wait(10) == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):  # the stdio server it started
            os.killpg(gateway.pid, signal.SIGKILL)
        gateway.stop()
    recorded = await recorded_ids(tmp_path / "audit.db")
    assert len(recorded) == len(set(recorded))
    missing = answered - set(recorded)
    assert not missing, f"{len(missing)} of {len(answered)} answered calls have no record"
    verified = subprocess.run(
        [CATALYST, "audit", "verify", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
