"""Kubernetes objects as a model should see them: short rows for listings, cleaned objects
for descriptions, events in time order.

A listing row says what ``kubectl get`` says — ready counts, phase, restarts — in one
``status`` string. A described object loses ``managedFields`` and the
``last-applied-configuration`` annotation (a copy of the object, with a Secret's values in
it); a Secret's values are replaced by their sizes unless ``show_secret_values``; strings past
``max_value_chars`` are cut.
"""

from __future__ import annotations

from typing import Any

__all__ = ["clean", "event_row", "row", "status_of"]

Json = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SECRET_FIELDS = ("data", "stringData")


def row(item: Json, kind: str) -> Json:
    """One object of a listing: name, namespace, creation time, labels and a status line."""
    meta = item.get("metadata") or {}
    found: Json = {"name": meta.get("name", "")}
    if meta.get("namespace"):
        found["namespace"] = meta["namespace"]
    found["created"] = meta.get("creationTimestamp")
    status = status_of(item, kind)
    if status:
        found["status"] = status
    if meta.get("labels"):
        found["labels"] = {str(k): str(v) for k, v in meta["labels"].items()}
    return found


def status_of(item: Json, kind: str) -> str:
    """What ``kubectl get`` shows of an object's state, in a few words."""
    spec = item.get("spec") or {}
    status = item.get("status") or {}
    if kind == "Pod":
        containers = status.get("containerStatuses") or []
        ready = sum(1 for c in containers if c.get("ready"))
        restarts = sum(int(c.get("restartCount") or 0) for c in containers)
        waiting = [
            c["state"]["waiting"].get("reason")
            for c in containers
            if (c.get("state") or {}).get("waiting")
        ]
        phase = next((w for w in waiting if w), None) or status.get("phase") or "Unknown"
        total = len(spec.get("containers") or containers)
        return f"{phase}, {ready}/{total} ready, {restarts} restarts"
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        wanted = spec.get("replicas", 1)
        return f"{status.get('readyReplicas') or 0}/{wanted} ready"
    if kind == "DaemonSet":
        return f"{status.get('numberReady') or 0}/{status.get('desiredNumberScheduled') or 0} ready"
    if kind == "Job":
        wanted = spec.get("completions", 1)
        done = f"{status.get('succeeded') or 0}/{wanted} succeeded"
        return done + (f", {status['failed']} failed" if status.get("failed") else "")
    if kind == "CronJob":
        suspended = ", suspended" if spec.get("suspend") else ""
        return f"schedule {spec.get('schedule', '?')}{suspended}"
    if kind == "Service":
        return f"{spec.get('type', 'ClusterIP')} {spec.get('clusterIP', '')}".strip()
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return "Ready" if condition.get("status") == "True" else "NotReady"
    return str(status.get("phase") or "")


def clean(item: Json, *, show_secrets: bool, max_chars: int) -> Json:
    """A copy of ``item`` to show: bookkeeping dropped, secrets hidden, long strings cut."""
    found: Json = _cut(item, max_chars)
    meta = found.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            annotations[LAST_APPLIED] = "(omitted: a copy of the object)"
    if found.get("kind") == "Secret" and not show_secrets:
        for name in SECRET_FIELDS:
            values = item.get(name)
            if isinstance(values, dict):
                found[name] = {k: _hidden(v) for k, v in values.items()}
    return found


def _hidden(value: Any) -> str:
    size = len(value) * 3 // 4 if isinstance(value, str) else 0
    return f"(hidden, about {size} bytes)"


def _cut(value: Any, max_chars: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= max_chars else value[:max_chars] + "..."
    if isinstance(value, dict):
        return {k: _cut(v, max_chars) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v, max_chars) for v in value]
    return value


def event_row(event: Json) -> Json:
    """One event: type, reason, message, the object it is about, count and times."""
    involved = event.get("involvedObject") or event.get("regarding") or {}
    meta = event.get("metadata") or {}
    last = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("series") or {}).get("lastObservedTime")
        or meta.get("creationTimestamp")
    )
    return {
        "type": event.get("type") or "Normal",
        "reason": event.get("reason") or "",
        "message": (event.get("message") or event.get("note") or "").strip(),
        "object": f"{involved.get('kind', '?')}/{involved.get('name', '?')}",
        "namespace": meta.get("namespace") or involved.get("namespace"),
        "count": int(event.get("count") or (event.get("series") or {}).get("count") or 1),
        "first_seen": event.get("firstTimestamp") or event.get("eventTime") or last,
        "last_seen": last,
    }
