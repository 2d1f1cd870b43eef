"""Responses of the Kubernetes API (v1.33 shapes) that the fake API server replays.

They are written in the shapes the API server returns (discovery lists, object lists with a
``continue`` token, ``Status`` objects for 404, 403 and 410, a plain-text log stream), not
captured from a live cluster: no cluster can run on these machines. ``test_recorded.py``
checks each against the official client's own models, so a shape the client would not
accept fails there.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def resource(
    name: str, kind: str, namespaced: bool, verbs: str, short: list[str] | None = None
) -> Json:
    found: Json = {
        "name": name,
        "singularName": "" if "/" in name else kind.lower(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs.split(),
    }
    if short:
        found["shortNames"] = short
    return found


ALL = "create delete deletecollection get list patch update watch"
CORE_V1: Json = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        resource("configmaps", "ConfigMap", True, ALL, ["cm"]),
        resource("events", "Event", True, ALL, ["ev"]),
        resource(
            "namespaces", "Namespace", False, "create delete get list patch update watch", ["ns"]
        ),
        resource("nodes", "Node", False, ALL, ["no"]),
        resource("pods", "Pod", True, ALL, ["po"]),
        resource("pods/log", "Pod", True, "get"),
        resource("pods/status", "Pod", True, "get patch update"),
        resource("secrets", "Secret", True, ALL),
        resource("services", "Service", True, ALL, ["svc"]),
    ],
}
GROUPS: Json = {
    "kind": "APIGroupList",
    "apiVersion": "v1",
    "groups": [
        {
            "name": name,
            "versions": [{"groupVersion": f"{name}/{version}", "version": version}],
            "preferredVersion": {"groupVersion": f"{name}/{version}", "version": version},
        }
        for name, version in (
            ("apps", "v1"),
            ("events.k8s.io", "v1"),
            ("batch", "v1"),
            ("stable.example.com", "v1"),
            ("metrics.k8s.io", "v1beta1"),  # an aggregated API that is down: 503
        )
    ],
}
APPS_V1: Json = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "apps/v1",
    "resources": [
        resource("daemonsets", "DaemonSet", True, ALL, ["ds"]),
        resource("deployments", "Deployment", True, ALL, ["deploy"]),
        resource("deployments/scale", "Scale", True, "get patch update"),
        resource("replicasets", "ReplicaSet", True, ALL, ["rs"]),
        resource("replicasets/scale", "Scale", True, "get patch update"),
        resource("statefulsets", "StatefulSet", True, ALL, ["sts"]),
        resource("statefulsets/scale", "Scale", True, "get patch update"),
    ],
}
EVENTS_V1: Json = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "events.k8s.io/v1",
    "resources": [resource("events", "Event", True, ALL, ["ev"])],
}
BATCH_V1: Json = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "batch/v1",
    "resources": [
        resource("cronjobs", "CronJob", True, ALL, ["cj"]),
        resource("jobs", "Job", True, ALL),
    ],
}
CRD_V1: Json = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "stable.example.com/v1",
    "resources": [resource("crontabs", "CronTab", True, ALL, ["ct"])],
}


def pod(name: str, phase: str = "Running", restarts: int = 0, ready: bool = True) -> Json:
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "resourceVersion": "4711",
            "creationTimestamp": "2026-11-20T08:00:00Z",
            "labels": {"app": "web"},
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-20T08:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {}},
                }
            ],
        },
        "spec": {"containers": [{"name": "app", "image": "shop/web:1.4"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": ready,
                    "restartCount": restarts,
                    "image": "shop/web:1.4",
                    "imageID": "sha256:abc",
                    "state": {"running": {"startedAt": "2026-11-20T08:00:05Z"}},
                }
            ],
        },
    }


PODS_PAGE_1: Json = {
    "kind": "PodList",
    "apiVersion": "v1",
    "metadata": {
        "resourceVersion": "5000",
        "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NTAwMCwic3RhcnQiOiJ3ZWItMVx1MDAwMCJ9",
        "remainingItemCount": 1,
    },
    "items": [pod("web-0"), pod("web-1", restarts=3)],
}
PODS_PAGE_2: Json = {
    "kind": "PodList",
    "apiVersion": "v1",
    "metadata": {"resourceVersion": "5000"},
    "items": [pod("web-2", phase="Pending", ready=False)],
}
POD_WEB_0: Json = {"kind": "Pod", "apiVersion": "v1", **pod("web-0")}
POD_WEB_0["metadata"]["annotations"] = {
    "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"v1","kind":"Pod"}'
}
DEPLOYMENT_WEB: Json = {
    "kind": "Deployment",
    "apiVersion": "apps/v1",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "uid-deploy-web",
        "resourceVersion": "4800",
        "generation": 3,
        "creationTimestamp": "2026-11-01T10:00:00Z",
        "labels": {"app": "web"},
    },
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "shop/web:1.4"}]},
        },
    },
    "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2},
}
DEPLOYMENTS: Json = {
    "kind": "DeploymentList",
    "apiVersion": "apps/v1",
    "metadata": {"resourceVersion": "5001"},
    "items": [DEPLOYMENT_WEB],
}
SCALE_WEB: Json = {
    "kind": "Scale",
    "apiVersion": "autoscaling/v1",
    "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "4800"},
    "spec": {"replicas": 3},
    "status": {"replicas": 3, "selector": "app=web"},
}
SECRET_DB: Json = {
    "kind": "Secret",
    "apiVersion": "v1",
    "metadata": {"name": "db", "namespace": "shop", "uid": "uid-secret-db"},
    "type": "Opaque",
    "data": {"password": "aHVudGVyMi1zZWNyZXQ="},  # hunter2-secret
}
CRONTABS: Json = {
    "kind": "CronTabList",
    "apiVersion": "stable.example.com/v1",
    "metadata": {"resourceVersion": "77"},
    "items": [
        {
            "apiVersion": "stable.example.com/v1",
            "kind": "CronTab",
            "metadata": {
                "name": "nightly",
                "namespace": "shop",
                "creationTimestamp": "2026-11-02T00:00:00Z",
            },
            "spec": {"cronSpec": "0 3 * * *", "image": "shop/report:2"},
        }
    ],
}


def event(name: str, kind: str, obj: str, reason: str, type_: str, last: str, count: int) -> Json:
    return {
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": last},
        "involvedObject": {"kind": kind, "namespace": "shop", "name": obj, "uid": f"uid-{obj}"},
        "reason": reason,
        "message": f"{reason} for {obj}",
        "source": {"component": "kubelet"},
        "firstTimestamp": "2026-11-20T08:00:00Z",
        "lastTimestamp": last,
        "count": count,
        "type": type_,
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1",
    }


EVENTS: Json = {
    "kind": "EventList",
    "apiVersion": "v1",
    "metadata": {"resourceVersion": "5002"},
    "items": [
        event("web-1.a", "Pod", "web-1", "BackOff", "Warning", "2026-11-20T09:10:00Z", 7),
        event("web-0.b", "Pod", "web-0", "Pulled", "Normal", "2026-11-20T08:00:04Z", 1),
        event("web-0.c", "Pod", "web-0", "Started", "Normal", "2026-11-20T08:00:05Z", 1),
    ],
}


def status(code: int, reason: str, message: str, **details: Any) -> Json:
    found: Json = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        found["details"] = details
    return found


NOT_FOUND = status(404, "NotFound", 'pods "nope" not found', name="nope", kind="pods")
FORBIDDEN = status(
    403,
    "Forbidden",
    'secrets is forbidden: User "system:serviceaccount:shop:reader" cannot list resource '
    '"secrets" in API group "" in the namespace "shop"',
    kind="secrets",
)
EXPIRED = status(
    410,
    "Expired",
    "The provided continue parameter is too old to display a consistent list result.",
)
CONTAINER_NEEDED = status(
    400,
    "BadRequest",
    "a container name must be specified for pod web-0, choose one of: [app sidecar]",
)
UNAVAILABLE = status(
    503, "ServiceUnavailable", "the server is currently unable to handle the request"
)
LOG_LINES = [f"2026-11-20T09:00:{i:02d}Z GET /healthz 200" for i in range(60)]
LOG = "\n".join(LOG_LINES) + "\n"
