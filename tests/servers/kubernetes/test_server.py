"""The Kubernetes server's read tools, against canned (hand-written) responses, not a live
cluster: a fake API server on a loopback port replays what the Kubernetes API answers
(``recorded.py``), and the tools run through the official client (kubeconfig loading, its
request serialisation and bearer-token authentication) to it. ``test_live.py`` runs against a
real cluster when ``CATALYST_TEST_KUBECONFIG`` names one."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.servers.config import KubernetesOptions
from catalyst_mcp.servers.kubernetes import KubernetesServer
from tests.servers.conftest import call, context, text
from tests.servers.kubernetes import recorded
from tests.servers.kubernetes.conftest import cluster
from tests.servers.kubernetes.fakeapi import FakeApiServer

pytestmark = pytest.mark.network


async def test_kinds_come_from_discovery_with_custom_resources(
    api: FakeApiServer, tmp_path: Path
) -> None:
    k8s = cluster(api, tmp_path)
    try:
        found = await call(k8s, "list_kinds")
        kinds = {k["kind"]: k for k in found["structuredContent"]["kinds"]}
        assert kinds["Deployment"]["api_version"] == "apps/v1"
        assert kinds["CronTab"]["api_version"] == "stable.example.com/v1"
        assert kinds["Node"]["namespaced"] is False
        assert "Scale" not in kinds  # subresources are not kinds
        # the aggregated API that answers 503 is skipped, not fatal
        assert api.requests("GET", "/apis/metrics.k8s.io/v1beta1")
        assert api.seen[0].authorization == "Bearer t0ken"
        only = await call(k8s, "list_kinds", group="batch")
        assert {k["kind"] for k in only["structuredContent"]["kinds"]} == {"CronJob", "Job"}
    finally:
        await k8s.stop()


async def test_listing_pages_with_the_continue_token_as_cursor(
    api: FakeApiServer, tmp_path: Path
) -> None:
    path = "/api/v1/namespaces/shop/pods"
    api.add("GET", path, recorded.PODS_PAGE_1, query={"limit": "2"})
    token = recorded.PODS_PAGE_1["metadata"]["continue"]
    api.add("GET", path, recorded.PODS_PAGE_2, query={"continue": token})
    k8s = cluster(api, tmp_path)
    try:
        first = await call(k8s, "list_resources", kind="po", limit=2)
        page = first["structuredContent"]
        assert (page["kind"], page["api_version"], page["namespace"]) == ("Pod", "v1", "shop")
        assert [i["name"] for i in page["items"]] == ["web-0", "web-1"]
        assert page["items"][1]["status"] == "Running, 1/1 ready, 3 restarts"
        assert page["items"][0]["labels"] == {"app": "web"}
        assert (page["cursor"], page["remaining"]) == (token, 1)
        assert "More follow (1 more): call again with the cursor." in text(first)
        second = await call(k8s, "list_resources", kind="pods", cursor=token)
        rest = second["structuredContent"]
        assert [i["name"] for i in rest["items"]] == ["web-2"] and rest["cursor"] is None
        assert rest["items"][0]["status"] == "Pending, 0/1 ready, 0 restarts"
        sent = api.requests("GET", path)[-1].query
        assert sent == {"limit": "200", "continue": token}
    finally:
        await k8s.stop()


async def test_group_kinds_and_custom_resources_resolve_by_any_name(
    api: FakeApiServer, tmp_path: Path
) -> None:
    api.add("GET", "/apis/apps/v1/namespaces/shop/deployments", recorded.DEPLOYMENTS)
    api.add("GET", "/apis/stable.example.com/v1/namespaces/shop/crontabs", recorded.CRONTABS)
    k8s = cluster(api, tmp_path)
    try:
        for kind in ("Deployment", "deployments", "deploy", "deployments.apps"):
            found = await call(k8s, "list_resources", kind=kind)
            assert found["structuredContent"]["items"][0]["status"] == "2/3 ready", kind
        tabs = await call(k8s, "list_resources", kind="ct", label_selector="app=report")
        assert tabs["structuredContent"]["items"][0]["name"] == "nightly"
        sent = api.requests("GET", "/apis/stable.example.com/v1/namespaces/shop/crontabs")[0]
        assert sent.query["labelSelector"] == "app=report"
        unknown = await call(k8s, "list_resources", kind="Gizmo")
        assert "the cluster has no kind 'Gizmo' (list_kinds lists them)" in text(unknown)
    finally:
        await k8s.stop()


async def test_describe_hides_bookkeeping_and_secret_values(
    api: FakeApiServer, tmp_path: Path
) -> None:
    api.add("GET", "/api/v1/namespaces/shop/pods/web-0", recorded.POD_WEB_0)
    api.add("GET", "/api/v1/namespaces/shop/secrets/db", recorded.SECRET_DB)
    api.add(
        "GET",
        "/api/v1/namespaces/shop/events",
        recorded.EVENTS,
        query={"fieldSelector": "involvedObject.uid=uid-web-0"},
    )
    k8s = cluster(api, tmp_path)
    try:
        found = await call(k8s, "describe_resource", kind="pod", name="web-0")
        described = found["structuredContent"]
        assert "managedFields" not in described["object"]["metadata"]
        annotation = described["object"]["metadata"]["annotations"]
        assert annotation["kubectl.kubernetes.io/last-applied-configuration"].startswith("(omitted")
        assert described["events"][0]["reason"] == "BackOff"  # newest first
        assert "Events (newest first):" in text(found)
        secret = await call(k8s, "describe_resource", kind="secret", name="db", events=False)
        assert secret["structuredContent"]["object"]["data"] == {
            "password": "(hidden, about 15 bytes)"
        }
        assert "aHVudGVy" not in str(secret)
    finally:
        await k8s.stop()
    shown = cluster(api, tmp_path, show_secret_values=True)
    try:
        secret = await call(shown, "describe_resource", kind="secret", name="db", events=False)
        assert secret["structuredContent"]["object"]["data"]["password"] == "aHVudGVyMi1zZWNyZXQ="
    finally:
        await shown.stop()


async def test_api_refusals_are_specific(api: FakeApiServer, tmp_path: Path) -> None:
    api.add("GET", "/api/v1/namespaces/shop/pods/nope", recorded.NOT_FOUND, 404)
    api.add("GET", "/api/v1/namespaces/shop/secrets", recorded.FORBIDDEN, 403)
    api.add("GET", "/api/v1/namespaces/shop/pods", recorded.EXPIRED, 410, query={"continue": "old"})
    k8s = cluster(api, tmp_path)
    try:
        missing = await call(k8s, "describe_resource", kind="pod", name="nope")
        assert text(missing) == 'k8s: not found: pods "nope" not found'
        denied = await call(k8s, "list_resources", kind="secrets")
        assert text(denied).startswith(
            "k8s: forbidden by the cluster's RBAC: secrets is forbidden: User \"system:"
        )
        expired = await call(k8s, "list_resources", kind="pods", cursor="old")
        assert "the cursor has expired (Expired); list again without it" in text(expired)
        bad = await call(k8s, "describe_resource", kind="pod", name="../../etc")
        assert "argument 'name' must match the pattern" in text(bad)
        foreign = await call(k8s, "list_resources", kind="pods", namespace="Not_A_Namespace")
        assert "argument 'namespace' must match the pattern" in text(foreign)
    finally:
        await k8s.stop()


async def test_pod_logs_are_bounded_in_lines_and_bytes(api: FakeApiServer, tmp_path: Path) -> None:
    path = "/api/v1/namespaces/shop/pods/web-0/log"
    api.add("GET", path, recorded.LOG, content_type="text/plain")
    api.add("GET", path, recorded.CONTAINER_NEEDED, 400, query={"container": "missing-choice"})
    k8s = cluster(api, tmp_path, max_log_bytes=1024, max_log_lines=50)
    try:
        found = await call(
            k8s, "pod_logs", pod="web-0", container="app", tail_lines=50, previous=True
        )
        logs = found["structuredContent"]
        sent = api.requests("GET", path)[0].query
        assert sent == {"container": "app", "tailLines": "50", "previous": "true"}
        # the fake replays 60 lines (about 2.2 KiB): only the last whole lines within 1 KiB stay
        assert logs["truncated"] is True and len(logs["text"]) <= 1024
        assert logs["text"].endswith(recorded.LOG_LINES[-1] + "\n")
        assert logs["text"].startswith("2026-11-20T09:00:")  # starts at a line start
        assert logs["lines"] == logs["text"].count("\n")
        assert "older lines dropped" in text(found)
        too_many = await call(k8s, "pod_logs", pod="web-0", tail_lines=51)
        assert "argument 'tail_lines' must be at most 50" in text(too_many)
        which = await call(k8s, "pod_logs", pod="web-0", container="missing-choice")
        assert "a container name must be specified for pod web-0, choose one of: [app sidecar]" in (
            text(which)
        )
    finally:
        await k8s.stop()


async def test_events_newest_first_filtered_by_object_and_type(
    api: FakeApiServer, tmp_path: Path
) -> None:
    api.add("GET", "/api/v1/namespaces/shop/events", recorded.EVENTS)
    k8s = cluster(api, tmp_path)
    try:
        found = await call(k8s, "list_events", kind="po", name="web-1", warnings_only=True, limit=2)
        events = found["structuredContent"]["events"]
        assert [e["reason"] for e in events] == ["BackOff", "Started"]
        assert found["structuredContent"]["truncated"] is True
        assert events[0] == {
            "type": "Warning",
            "reason": "BackOff",
            "message": "BackOff for web-1",
            "object": "Pod/web-1",
            "namespace": "shop",
            "count": 7,
            "first_seen": "2026-11-20T08:00:00Z",
            "last_seen": "2026-11-20T09:10:00Z",
        }
        sent = api.requests("GET", "/api/v1/namespaces/shop/events")[-1].query
        assert (
            sent["fieldSelector"]
            == "involvedObject.kind=Pod,involvedObject.name=web-1,type=Warning"
        )
    finally:
        await k8s.stop()


async def test_served_namespaces_are_enforced_before_any_request(
    api: FakeApiServer, tmp_path: Path
) -> None:
    k8s = cluster(api, tmp_path, namespaces=["shop"])
    try:
        before = len(api.seen)
        other = await call(k8s, "pod_logs", pod="x", namespace="kube-system")
        assert "namespace 'kube-system' is not served here (served: shop)" in text(other)
        everywhere = await call(k8s, "list_events", all_namespaces=True)
        assert "events across all namespaces are refused here" in text(everywhere)
        assert len(api.seen) == before
    finally:
        await k8s.stop()


async def test_the_context_and_per_caller_tokens(api: FakeApiServer, tmp_path: Path) -> None:
    api.add("GET", "/api/v1/namespaces/other/pods", recorded.PODS_PAGE_2)
    tokens = {"ann": "ann-token"}

    async def lookup(name: str, ctx: CallContext | None) -> str | None:
        assert name == "K8S_TOKEN" and ctx is not None
        return tokens.get(ctx.identity.subject)

    opts = KubernetesOptions(
        kubeconfig=str(api.kubeconfig(tmp_path)), context="other", token="${secret:K8S_TOKEN}"
    )
    k8s = KubernetesServer("k8s", "k8s", opts, timeout=30, secrets=lookup)
    try:
        ann = context(identity=Identity(subject="ann", kind="user"))
        found = await call(k8s, "list_resources", ann, kind="pods")
        assert found["structuredContent"]["namespace"] == "other"  # the context's namespace
        assert {s.authorization for s in api.seen} == {"Bearer ann-token"}
        eve = await call(
            k8s, "list_resources", context(identity=Identity(subject="eve")), kind="pods"
        )
        assert "secret K8S_TOKEN is not set for this user" in text(eve)
    finally:
        await k8s.stop()


async def test_a_missing_kubeconfig_or_cluster_is_named(tmp_path: Path) -> None:
    opts = KubernetesOptions(kubeconfig=str(tmp_path / "none"))
    k8s = KubernetesServer("k8s", "k8s", opts, timeout=30)
    try:
        found = await call(k8s, "list_kinds")
        assert f"k8s: cannot load the kubeconfig: no kubeconfig file at {tmp_path}/none" in text(
            found
        )
    finally:
        await k8s.stop()
    down = FakeApiServer()  # never started: nothing listens on its port
    k8s = cluster(down, tmp_path, timeout_seconds=5)
    try:
        found = await call(k8s, "list_kinds")
        assert "k8s: cannot reach the API server (ClientConnectorError)" in text(found)
        assert "t0ken" not in text(found)
    finally:
        await k8s.stop()


async def test_tools_are_read_only_by_default(api: FakeApiServer, tmp_path: Path) -> None:
    k8s = cluster(api, tmp_path)
    try:
        listed = {t["name"]: t["annotations"] for t in k8s.items("tools")}
        assert set(listed) == {
            "list_kinds",
            "list_resources",
            "describe_resource",
            "pod_logs",
            "list_events",
        }
        assert all(a["readOnlyHint"] and not a["destructiveHint"] for a in listed.values())
    finally:
        await k8s.stop()
