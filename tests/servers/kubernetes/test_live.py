"""The Kubernetes server against a real cluster — only when ``CATALYST_TEST_KUBECONFIG`` names
a kubeconfig (``CATALYST_TEST_KUBECONFIG=~/.kube/config pytest -m kubernetes_live``). No
cluster can run on the project's machines, so these skip there, in CI too. They only read:
discovery, the namespaces, the pods and events of the context's namespace."""

from __future__ import annotations

import os

import pytest

from catalyst_mcp.servers.config import KubernetesOptions
from catalyst_mcp.servers.kubernetes import KubernetesServer
from tests.servers.conftest import call, text

KUBECONFIG = os.environ.get("CATALYST_TEST_KUBECONFIG")
pytestmark = [
    pytest.mark.kubernetes_live,
    pytest.mark.skipif(not KUBECONFIG, reason="CATALYST_TEST_KUBECONFIG names no cluster"),
]


async def test_a_real_cluster_is_read() -> None:
    opts = KubernetesOptions(kubeconfig=KUBECONFIG)
    k8s = KubernetesServer("live", "live", opts, timeout=60)
    try:
        kinds = await call(k8s, "list_kinds")
        names = {k["kind"] for k in kinds["structuredContent"]["kinds"]}
        assert {"Pod", "Deployment", "Job", "Namespace"} <= names, text(kinds)
        namespaces = await call(k8s, "list_resources", kind="namespaces", limit=5)
        assert namespaces["structuredContent"]["items"], text(namespaces)
        pods = await call(k8s, "list_resources", kind="pods", limit=5)
        assert "isError" not in pods, text(pods)
        for item in pods["structuredContent"]["items"][:1]:
            described = await call(k8s, "describe_resource", kind="pod", name=item["name"])
            assert "managedFields" not in described["structuredContent"]["object"]["metadata"]
            logs = await call(k8s, "pod_logs", pod=item["name"], tail_lines=5)
            assert "isError" not in logs or "container name must be specified" in text(logs)
        events = await call(k8s, "list_events", limit=5)
        assert "isError" not in events, text(events)
    finally:
        await k8s.stop()
