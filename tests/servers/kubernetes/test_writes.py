"""scale, restart and apply, against recorded responses, not a live cluster: each sends a
server-side dry run first (``dryRun=All``) and shows its result, changes nothing without
``confirm: true``, sends nothing for real when a dry run fails, and is audited."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from catalyst_mcp.errors import NotFound
from tests.servers.conftest import call, context, text
from tests.servers.kubernetes import recorded
from tests.servers.kubernetes.conftest import cluster
from tests.servers.kubernetes.fakeapi import FakeApiServer

pytestmark = pytest.mark.network

DEPLOY = "/apis/apps/v1/namespaces/shop/deployments/web"
SCALE = DEPLOY + "/scale"
CONFIGMAP = "/api/v1/namespaces/shop/configmaps/settings"
MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 5
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
"""


def real(api: FakeApiServer, path: str) -> list[object]:
    """The PATCH requests to ``path`` that were not dry runs."""
    return [s for s in api.requests("PATCH", path) if "dryRun" not in s.query]


async def test_writes_are_offered_only_when_enabled(api: FakeApiServer, tmp_path: Path) -> None:
    k8s = cluster(api, tmp_path)
    try:
        with pytest.raises(NotFound):
            await k8s.call(
                "tools/call",
                {"name": "scale", "arguments": {"kind": "deploy", "name": "web", "replicas": 0}},
                context(),
            )
    finally:
        await k8s.stop()
    both = cluster(api, tmp_path, allow_writes=True, allow_apply=True)
    try:
        listed = {t["name"]: t["annotations"] for t in both.items("tools")}
        for name in ("scale", "restart", "apply"):
            assert listed[name]["readOnlyHint"] is False
            assert listed[name]["destructiveHint"] is True
        assert listed["restart"]["idempotentHint"] is False
        assert listed["apply"]["idempotentHint"] is True
    finally:
        await both.stop()


async def test_scale_is_a_dry_run_until_confirmed(api: FakeApiServer, tmp_path: Path) -> None:
    api.add("GET", SCALE, recorded.SCALE_WEB)
    after = copy.deepcopy(recorded.SCALE_WEB)
    after["spec"]["replicas"] = 0
    api.add("PATCH", SCALE, after)
    k8s = cluster(api, tmp_path, allow_writes=True)
    try:
        ctx = context()
        dry = await call(k8s, "scale", ctx, kind="deploy", name="web", replicas=0)
        assert dry["structuredContent"] == {
            "kind": "Deployment",
            "name": "web",
            "namespace": "shop",
            "from": 3,
            "to": 0,
            "applied": False,
        }
        assert "Dry run passed, nothing changed" in text(dry)
        assert "confirm: true" in text(dry)
        (patch,) = api.requests("PATCH", SCALE)
        assert patch.query == {"dryRun": "All", "fieldManager": "catalyst"}
        assert patch.content_type == "application/merge-patch+json"
        assert patch.body == {"spec": {"replicas": 0}}
        assert ctx.audit_note is not None and ctx.audit_note["applied"] is False
        ctx = context()
        done = await call(
            k8s, "scale", ctx, kind="deployment", name="web", replicas=0, confirm=True
        )
        assert done["structuredContent"]["applied"] is True
        first, second = api.requests("PATCH", SCALE)[1:]
        assert first.query["dryRun"] == "All" and "dryRun" not in second.query
        assert ctx.audit_note == {
            "action": "scale",
            "kind": "Deployment",
            "name": "web",
            "namespace": "shop",
            "from": 3,
            "to": 0,
            "applied": True,
        }
        pods = await call(k8s, "scale", kind="pod", name="web-0", replicas=1)
        assert "Pod cannot be scaled (no scale subresource)" in text(pods)
    finally:
        await k8s.stop()


async def test_a_failed_dry_run_changes_nothing(api: FakeApiServer, tmp_path: Path) -> None:
    api.add("GET", SCALE, recorded.SCALE_WEB)
    denied = recorded.status(
        403,
        "Forbidden",
        'deployments.apps "web" is forbidden: cannot patch resource "deployments/scale"',
    )
    api.add("PATCH", SCALE, denied, 403)
    k8s = cluster(api, tmp_path, allow_writes=True)
    try:
        result = await call(k8s, "scale", kind="deploy", name="web", replicas=9, confirm=True)
        assert "forbidden by the cluster's RBAC" in text(result)
        assert real(api, SCALE) == []
    finally:
        await k8s.stop()


async def test_restart_annotates_the_pod_template(api: FakeApiServer, tmp_path: Path) -> None:
    api.add("PATCH", DEPLOY, recorded.DEPLOYMENT_WEB)
    k8s = cluster(api, tmp_path, allow_writes=True)
    try:
        dry = await call(k8s, "restart", kind="deployment", name="web")
        assert dry["structuredContent"]["applied"] is False
        (patch,) = api.requests("PATCH", DEPLOY)
        assert patch.query["dryRun"] == "All"
        stamp = patch.body["spec"]["template"]["metadata"]["annotations"][
            "kubectl.kubernetes.io/restartedAt"
        ]
        assert stamp == dry["structuredContent"]["restarted_at"] and stamp.endswith("Z")
        assert real(api, DEPLOY) == []
        done = await call(k8s, "restart", kind="deployment", name="web", confirm=True)
        assert done["structuredContent"]["applied"] is True and len(real(api, DEPLOY)) == 1
        pod = await call(k8s, "restart", kind="pod", name="web-0")
        assert "restart works on Deployment, StatefulSet, DaemonSet, not Pod" in text(pod)
    finally:
        await k8s.stop()


async def test_apply_shows_a_dry_run_diff_then_applies_on_confirm(
    api: FakeApiServer, tmp_path: Path
) -> None:
    api.add("GET", DEPLOY, recorded.DEPLOYMENT_WEB)
    changed = copy.deepcopy(recorded.DEPLOYMENT_WEB)
    changed["spec"]["replicas"] = 5
    changed["metadata"]["resourceVersion"] = "4900"
    api.add("PATCH", DEPLOY, changed)
    created = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "settings", "namespace": "shop", "uid": "u1"},
        "data": {"mode": "fast"},
    }
    api.add("PATCH", CONFIGMAP, created, 201)
    k8s = cluster(api, tmp_path, allow_apply=True)
    try:
        ctx = context()
        dry = await call(k8s, "apply", ctx, manifest=MANIFEST)
        objects = dry["structuredContent"]["objects"]
        assert [(o["kind"], o["result"]) for o in objects] == [
            ("Deployment", "changed"),
            ("ConfigMap", "created"),
        ]
        assert "-  replicas: 3\n+  replicas: 5" in objects[0]["diff"]
        assert "resourceVersion" not in objects[0]["diff"]
        assert text(dry).startswith("Dry run, nothing changed (call again with confirm: true")
        for path in (DEPLOY, CONFIGMAP):
            (patch,) = api.requests("PATCH", path)
            assert patch.query == {"fieldManager": "catalyst", "force": "false", "dryRun": "All"}
            assert patch.content_type == "application/apply-patch+yaml"
            assert patch.body["metadata"]["namespace"] == "shop"
        assert ctx.audit_note == {
            "action": "apply",
            "objects": [
                {"kind": "Deployment", "name": "web", "namespace": "shop", "result": "changed"},
                {"kind": "ConfigMap", "name": "settings", "namespace": "shop", "result": "created"},
            ],
            "applied": False,
        }
        done = await call(k8s, "apply", manifest=MANIFEST, confirm=True, force=True)
        assert done["structuredContent"]["applied"] is True
        assert len(real(api, DEPLOY)) == 1 and len(real(api, CONFIGMAP)) == 1
        assert real(api, DEPLOY)[0].query == {"fieldManager": "catalyst", "force": "true"}  # type: ignore[attr-defined]
    finally:
        await k8s.stop()


async def test_apply_sends_nothing_for_real_if_any_dry_run_fails(
    api: FakeApiServer, tmp_path: Path
) -> None:
    api.add("GET", DEPLOY, recorded.DEPLOYMENT_WEB)
    api.add("PATCH", DEPLOY, recorded.DEPLOYMENT_WEB)
    invalid = recorded.status(
        422, "Invalid", 'ConfigMap "settings" is invalid: data[mode]: Invalid value'
    )
    api.add("PATCH", CONFIGMAP, invalid, 422)
    k8s = cluster(api, tmp_path, allow_apply=True)
    try:
        result = await call(k8s, "apply", manifest=MANIFEST, confirm=True)
        assert 'the API server refused the request: ConfigMap "settings" is invalid' in text(result)
        assert real(api, DEPLOY) == [] and real(api, CONFIGMAP) == []
    finally:
        await k8s.stop()


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ("kind: [unclosed", "the manifest is not valid YAML or JSON (line 1)"),
        ("- just\n- a list\n", "object 1 of the manifest is not a mapping"),
        ("apiVersion: v1\nkind: ConfigMap\n", "object 1 of the manifest lacks metadata.name"),
        ("---\n", "the manifest holds no object"),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: evil}\n",
            "Namespace is cluster-scoped; only objects in shop may be applied here",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: kube-system}\n",
            "namespace 'kube-system' is not served here",
        ),
    ],
)
async def test_a_bad_manifest_is_refused_before_any_change(
    api: FakeApiServer, tmp_path: Path, manifest: str, problem: str
) -> None:
    k8s = cluster(api, tmp_path, allow_apply=True, namespaces=["shop"], max_manifest_objects=2)
    try:
        result = await call(k8s, "apply", manifest=manifest, confirm=True)
        assert problem in text(result)
        assert api.requests("PATCH") == []
        many = "\n---\n".join(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}" for i in range(3)
        )
        assert "more than 2 (max_manifest_objects)" in text(await call(k8s, "apply", manifest=many))
    finally:
        await k8s.stop()
