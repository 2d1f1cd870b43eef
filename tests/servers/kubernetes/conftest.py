"""The fake API server (canned, hand-written responses on a loopback port) and servers
pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.servers.config import KubernetesOptions
from catalyst_mcp.servers.kubernetes import KubernetesServer
from tests.servers.kubernetes.fakeapi import FakeApiServer


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    server = FakeApiServer()
    server.discovery()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def cluster(api: FakeApiServer, folder: Path, **options: Any) -> KubernetesServer:
    opts = KubernetesOptions(kubeconfig=str(api.kubeconfig(folder)), **options)
    return KubernetesServer("k8s", "k8s", opts, timeout=30)
