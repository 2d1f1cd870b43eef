"""The Kubernetes server's changes: scale, restart, apply — each a dry run first.

Every change is sent first with ``dryRun=All``: the API server runs admission, validation and
RBAC and answers with the object as it would be, and nothing is stored. That answer is shown
(replicas from and to; the restart's annotation; for apply, per object whether it would be
created, changed or left as it is, with a diff). Only a call with ``confirm: true`` then sends
the same request for real, and only when every dry run succeeded. What was asked and whether
it was applied goes into the call's audit record.

- ``scale`` patches the ``scale`` subresource (Deployments, StatefulSets, ReplicaSets and any
  custom resource that has one).
- ``restart`` sets ``kubectl.kubernetes.io/restartedAt`` on the pod template, as
  ``kubectl rollout restart`` does (Deployments, StatefulSets, DaemonSets).
- ``apply`` is server-side apply (``application/apply-patch+yaml``, the server's
  ``field_manager``) of each object of a YAML or JSON manifest.
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import yaml

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.servers.base import Json, Result, Tool, obj

if TYPE_CHECKING:
    from catalyst_mcp.servers.kubernetes.discovery import ResourceType
    from catalyst_mcp.servers.kubernetes.server import KubernetesServer

__all__ = ["apply_tools", "scale_and_restart"]

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RESTARTABLE = ("Deployment", "StatefulSet", "DaemonSet")
MAX_MANIFEST_CHARS = 1024 * 1024
MAX_DIFF_LINES = 400
# fields that change on every write, or that the server owns: left out of apply's diff
VOLATILE_METADATA = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp")
CONFIRM: Json = {
    "type": "boolean",
    "default": False,
    "description": "false (default): only a dry run, nothing changes. true: the dry run, then "
    "the change itself.",
}
TARGET = {
    "kind": {"type": "string", "minLength": 1, "maxLength": 253},
    "name": {"type": "string", "minLength": 1, "maxLength": 253},
    "namespace": {"type": ["string", "null"], "maxLength": 63},
}


def _outcome(extra: Json, required: list[str]) -> Json:
    return obj(
        {
            **TARGET,
            **extra,
            "applied": {"type": "boolean", "description": "The change was made (confirm)."},
        },
        ["kind", "name", "namespace", *required, "applied"],
    )


def scale_and_restart(server: KubernetesServer) -> list[Tool]:
    from catalyst_mcp.servers.kubernetes.server import KIND, NAME, NAMESPACE

    async def scale(args: Json, ctx: CallContext) -> Result:
        resource = await server.resolve(ctx, args)
        if "scale" not in resource.subresources:
            raise BuiltinError(
                f"{server.name}: {resource.kind} cannot be scaled (no scale subresource)"
            )
        namespace = await _namespace(server, resource, args.get("namespace"))
        path = resource.path(namespace, args["name"], "scale")
        replicas = args["replicas"]
        _, current = await server.cluster.request(ctx, "GET", path)
        before = (current.get("spec") or {}).get("replicas", 0)
        note: Json = {
            "action": "scale",
            "kind": resource.kind,
            "name": args["name"],
            "namespace": namespace,
            "from": before,
            "to": replicas,
            "applied": False,
        }
        ctx.audit_note = note
        body = {"spec": {"replicas": replicas}}
        query = {"dryRun": "All", "fieldManager": server.options.field_manager}
        await server.cluster.request(
            ctx, "PATCH", path, query=query, body=body, content_type=MERGE_PATCH
        )
        confirm = bool(args.get("confirm"))
        if confirm:
            del query["dryRun"]
            await server.cluster.request(
                ctx, "PATCH", path, query=query, body=body, content_type=MERGE_PATCH
            )
            note["applied"] = True
        structured = {
            "kind": resource.kind,
            "name": args["name"],
            "namespace": namespace,
            "from": before,
            "to": replicas,
            "applied": confirm,
        }
        what = f"{resource.kind} {args['name']}: replicas {before} -> {replicas}"
        if confirm:
            return Result(structured, f"Scaled {what} (the dry run passed first).")
        return Result(structured, _dry(what))

    async def restart(args: Json, ctx: CallContext) -> Result:
        resource = await server.resolve(ctx, args)
        if resource.kind not in RESTARTABLE:
            raise BuiltinError(
                f"{server.name}: restart works on {', '.join(RESTARTABLE)}, not {resource.kind}"
            )
        namespace = await _namespace(server, resource, args.get("namespace"))
        path = resource.path(namespace, args["name"])
        stamp = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        note: Json = {
            "action": "restart",
            "kind": resource.kind,
            "name": args["name"],
            "namespace": namespace,
            "applied": False,
        }
        ctx.audit_note = note
        query = {"dryRun": "All", "fieldManager": server.options.field_manager}
        await server.cluster.request(
            ctx, "PATCH", path, query=query, body=body, content_type=MERGE_PATCH
        )
        confirm = bool(args.get("confirm"))
        if confirm:
            del query["dryRun"]
            await server.cluster.request(
                ctx, "PATCH", path, query=query, body=body, content_type=MERGE_PATCH
            )
            note["applied"] = True
        structured = {
            "kind": resource.kind,
            "name": args["name"],
            "namespace": namespace,
            "restarted_at": stamp,
            "applied": confirm,
        }
        what = (
            f"{resource.kind} {args['name']}: pod template annotated {RESTARTED_AT}={stamp}, "
            "so its pods are replaced by a rolling update"
        )
        if confirm:
            return Result(structured, f"Restarting {what} (the dry run passed first).")
        return Result(structured, _dry(what))

    target = {"kind": KIND, "name": NAME, "namespace": NAMESPACE}
    return [
        Tool(
            "scale",
            "Scale a workload",
            "Set the replicas of a Deployment, StatefulSet, ReplicaSet (or any kind with a "
            "scale subresource). Always a server-side dry run first, whose result is shown; "
            "nothing changes without confirm: true. Audited.",
            obj(
                {
                    **target,
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 10_000},
                    "confirm": CONFIRM,
                },
                ["kind", "name", "replicas"],
            ),
            _outcome({"from": {"type": "integer"}, "to": {"type": "integer"}}, ["from", "to"]),
            scale,
            read_only=False,
            destructive=True,
            idempotent=True,
        ),
        Tool(
            "restart",
            "Restart a workload",
            "Rolling restart of a Deployment, StatefulSet or DaemonSet, as kubectl rollout "
            "restart does (a restartedAt annotation on the pod template). Always a server-side "
            "dry run first, whose result is shown; nothing changes without confirm: true. "
            "Audited.",
            obj({**target, "confirm": CONFIRM}, ["kind", "name"]),
            _outcome({"restarted_at": {"type": "string"}}, ["restarted_at"]),
            restart,
            read_only=False,
            destructive=True,
            idempotent=False,
        ),
    ]


def apply_tools(server: KubernetesServer) -> list[Tool]:
    from catalyst_mcp.servers.kubernetes.server import NAMESPACE

    limit = server.options.max_manifest_objects

    async def apply(args: Json, ctx: CallContext) -> Result:
        documents = _documents(args["manifest"], limit)
        force = bool(args.get("force", False))
        confirm = bool(args.get("confirm"))
        plans = []
        for document in documents:
            api_version, kind = document["apiVersion"], document["kind"]
            resource = await server.discovery.resolve(ctx, kind, api_version)
            meta = document["metadata"]
            namespace: str | None = None
            if resource.namespaced:
                namespace = await server.namespace_of(
                    meta.get("namespace") or args.get("namespace")
                )
                meta["namespace"] = namespace
            elif server.options.namespaces:
                raise BuiltinError(
                    f"{server.name}: {resource.kind} is cluster-scoped; only objects in "
                    f"{', '.join(server.options.namespaces)} may be applied here"
                )
            plans.append((resource, namespace, meta["name"], document))
        note: Json = {
            "action": "apply",
            "objects": [{"kind": r.kind, "name": n, "namespace": ns} for r, ns, n, _ in plans],
            "applied": False,
        }
        ctx.audit_note = note
        query: dict[str, Any] = {
            "fieldManager": server.options.field_manager,
            "force": "true" if force else "false",
        }
        results = []
        for resource, namespace, name, document in plans:
            path = resource.path(namespace, name)
            try:
                _, live = await server.cluster.request(ctx, "GET", path)
            except BuiltinError as error:
                if "not found" not in error.message:
                    raise
                live = {}
            status, after = await server.cluster.request(
                ctx,
                "PATCH",
                path,
                query={**query, "dryRun": "All"},
                body=document,
                content_type=APPLY_PATCH,
            )
            diff = _diff(server, live, after)
            verdict = "created" if not live or status == 201 else "changed" if diff else "unchanged"
            results.append(
                {
                    "kind": resource.kind,
                    "api_version": resource.api_version,
                    "name": name,
                    "namespace": namespace,
                    "result": verdict,
                    "diff": diff,
                }
            )
        if confirm:
            for resource, namespace, name, document in plans:
                await server.cluster.request(
                    ctx,
                    "PATCH",
                    resource.path(namespace, name),
                    query=query,
                    body=document,
                    content_type=APPLY_PATCH,
                )
            note["applied"] = True
        for entry, outcome in zip(note["objects"], results, strict=True):
            entry["result"] = outcome["result"]
        lines = []
        for r in results:
            where = f" in {r['namespace']}" if r["namespace"] else ""
            verb = r["result"] if confirm else f"would be {r['result']}"
            lines.append(f"{r['kind']} {r['name']}{where}: {verb}")
            if r["diff"]:
                lines.append(r["diff"])
        head = (
            "Applied (every dry run passed first):"
            if confirm
            else "Dry run, nothing changed (call again with confirm: true to apply):"
        )
        return Result({"objects": results, "applied": confirm}, "\n".join([head, *lines]))

    return [
        Tool(
            "apply",
            "Apply a manifest",
            "Server-side apply of a YAML or JSON manifest (one or more objects, at most "
            f"{limit}), as the field manager '{server.options.field_manager}'. Always a "
            "server-side dry run of every object first, whose result is shown (created, "
            "changed with a diff, or unchanged); nothing changes without confirm: true, and "
            "nothing at all if any dry run fails. Audited.",
            obj(
                {
                    "manifest": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_MANIFEST_CHARS,
                        "description": "YAML (documents separated by ---) or JSON; a List "
                        "kind is unpacked.",
                    },
                    "namespace": {
                        **NAMESPACE,
                        "description": "For namespaced objects that name none; default: the "
                        "server's.",
                    },
                    "force": {
                        "type": "boolean",
                        "default": False,
                        "description": "Take over fields another manager owns (conflicts "
                        "otherwise refuse the apply).",
                    },
                    "confirm": CONFIRM,
                },
                ["manifest"],
            ),
            obj(
                {
                    "objects": {
                        "type": "array",
                        "items": obj(
                            {
                                **TARGET,
                                "api_version": {"type": "string"},
                                "result": {"enum": ["created", "changed", "unchanged"]},
                                "diff": {
                                    "type": "string",
                                    "description": "Unified diff, live -> after the apply.",
                                },
                            },
                            ["kind", "api_version", "name", "namespace", "result", "diff"],
                        ),
                    },
                    "applied": {"type": "boolean"},
                },
                ["objects", "applied"],
            ),
            apply,
            read_only=False,
            destructive=True,
            idempotent=True,
        )
    ]


async def _namespace(
    server: KubernetesServer, resource: ResourceType, given: str | None
) -> str | None:
    if resource.namespaced:
        return await server.namespace_of(given)
    if server.options.namespaces:
        raise BuiltinError(
            f"{server.name}: {resource.kind} is cluster-scoped; only objects in "
            f"{', '.join(server.options.namespaces)} may be changed here"
        )
    return None


def _dry(what: str) -> str:
    return f"Dry run passed, nothing changed: {what}. Call again with confirm: true to do it."


def _documents(manifest: str, limit: int) -> list[Json]:
    """The objects of a manifest, each with apiVersion, kind and metadata.name."""
    try:
        loaded = [d for d in yaml.safe_load_all(manifest) if d is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise BuiltinError(f"the manifest is not valid YAML or JSON{where}") from None
    documents: list[Any] = []
    for document in loaded:
        if isinstance(document, dict) and str(document.get("kind", "")).endswith("List"):
            documents += document.get("items") or []
        else:
            documents.append(document)
    if not documents:
        raise BuiltinError("the manifest holds no object")
    if len(documents) > limit:
        raise BuiltinError(
            f"the manifest holds {len(documents)} objects, more than {limit} "
            "(max_manifest_objects): apply it in parts"
        )
    for number, document in enumerate(documents, 1):
        if not isinstance(document, dict):
            raise BuiltinError(f"object {number} of the manifest is not a mapping")
        missing = [k for k in ("apiVersion", "kind") if not isinstance(document.get(k), str)]
        meta = document.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            missing.append("metadata.name")
        if missing:
            raise BuiltinError(f"object {number} of the manifest lacks {', '.join(missing)}")
    return documents


def _diff(server: KubernetesServer, live: Json, after: Json) -> str:
    """What the apply would change, as a unified diff of the objects' YAML."""

    def shown(item: Json) -> list[str]:
        if not item:
            return []
        cleaned = server.clean(item)
        cleaned.pop("status", None)
        meta = cleaned.get("metadata")
        if isinstance(meta, dict):
            for key in VOLATILE_METADATA:
                meta.pop(key, None)
        return yaml.safe_dump(cleaned, sort_keys=True, allow_unicode=True).splitlines()

    lines = list(
        difflib.unified_diff(shown(live), shown(after), "live", "after apply", lineterm="", n=2)
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... {len(lines) - MAX_DIFF_LINES} more lines"]
    return "\n".join(lines)
