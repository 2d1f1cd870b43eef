"""The built-in Kubernetes server: a cluster's resources, pod logs and events as tools.

Read tools — ``list_kinds``, ``list_resources``, ``describe_resource``, ``pod_logs``,
``list_events`` — work on any kind the API server's discovery lists, custom resources
included (:mod:`.discovery`). ``scale`` and ``restart`` (``allow_writes``) and ``apply``
(``allow_apply``) are in :mod:`.writes`: each runs as a server-side dry run first and changes
nothing without ``confirm: true``. Namespaces outside ``namespaces`` are refused before any
request; the credentials' RBAC in the cluster is the real boundary.
"""

from __future__ import annotations

from typing import Any

import yaml

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.servers.base import BuiltinServer, Json, Result, Tool, obj
from catalyst_mcp.servers.config import KubernetesOptions
from catalyst_mcp.servers.kubernetes import shapes, writes
from catalyst_mcp.servers.kubernetes.client import Cluster, SecretLookup
from catalyst_mcp.servers.kubernetes.discovery import Discovery, ResourceType

__all__ = ["KubernetesServer"]

MAX_TEXT_ROWS = 100
EVENTS_FETCHED = 500  # one page of events, sorted here by time (the API does not sort)
NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._:@-]*[A-Za-z0-9])?$"
KIND: Json = {
    "type": "string",
    "minLength": 1,
    "maxLength": 253,
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9.-]*$",
    "description": "Kind as kubectl takes it: Deployment, deployments, deploy, "
    "deployments.apps, or a custom resource's kind (list_kinds lists them).",
}
API_VERSION: Json = {
    "type": "string",
    "minLength": 1,
    "maxLength": 253,
    "pattern": r"^([a-z0-9.-]+/)?v[0-9a-z]+$",
    "description": "Group/version to pick the kind from (apps/v1); default: the preferred one.",
}
NAME: Json = {
    "type": "string",
    "minLength": 1,
    "maxLength": 253,
    "pattern": NAME_PATTERN,
    "description": "The object's name.",
}
NAMESPACE: Json = {
    "type": "string",
    "minLength": 1,
    "maxLength": 63,
    "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "description": "Namespace; default: the server's.",
}
SELECTOR: Json = {"type": "string", "maxLength": 1024}
ROW = obj(
    {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "created": {"type": ["string", "null"]},
        "status": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    ["name", "created"],
)
EVENT = obj(
    {
        "type": {"type": "string"},
        "reason": {"type": "string"},
        "message": {"type": "string"},
        "object": {"type": "string", "description": "Kind/name it is about."},
        "namespace": {"type": ["string", "null"]},
        "count": {"type": "integer"},
        "first_seen": {"type": ["string", "null"]},
        "last_seen": {"type": ["string", "null"]},
    },
    ["type", "reason", "message", "object", "count", "last_seen"],
)


class KubernetesServer(BuiltinServer):
    kind = "kubernetes"

    def __init__(
        self,
        name: str,
        namespace: str,
        options: KubernetesOptions,
        *,
        timeout: float,
        secrets: SecretLookup | None = None,
    ) -> None:
        super().__init__(name, namespace, timeout=timeout)
        self.options = options
        self.cluster = Cluster(name, options, secrets)
        self.discovery = Discovery(self.cluster)
        tools = self._tools_of()
        if options.allow_writes:
            tools += writes.scale_and_restart(self)
        if options.allow_apply:
            tools += writes.apply_tools(self)
        self.declare(tools)

    @property
    def instructions(self) -> str:
        mode = (
            "read-only"
            if not (self.options.allow_writes or self.options.allow_apply)
            else ("changes need a dry run, then confirm: true")
        )
        return f"A Kubernetes cluster ({mode}); list_kinds names the kinds it has."

    def health(self) -> Json:
        report = super().health()
        report["writes"] = self.options.allow_writes or self.options.allow_apply
        return report

    async def stop(self) -> None:
        await self.cluster.close()

    # ---- shared ------------------------------------------------------------------------------

    async def namespace_of(self, given: str | None) -> str:
        """The namespace a call works in (given, else the server's), if it is served."""
        namespace = given or await self.cluster.namespace()
        served = self.options.namespaces
        if served and namespace not in served:
            raise BuiltinError(
                f"{self.name}: namespace {namespace!r} is not served here (served: "
                f"{', '.join(served)})"
            )
        return namespace

    async def resolve(self, ctx: CallContext, args: Json) -> ResourceType:
        return await self.discovery.resolve(ctx, args["kind"], args.get("api_version"))

    def clean(self, item: Json) -> Json:
        return shapes.clean(
            item,
            show_secrets=self.options.show_secret_values,
            max_chars=self.options.max_value_chars,
        )

    # ---- tools -------------------------------------------------------------------------------

    def _tools_of(self) -> list[Tool]:
        opts = self.options
        return [
            Tool(
                "list_kinds",
                "List resource kinds",
                "The kinds of resources the cluster serves (core, apps, batch, custom "
                "resources, ...), with their group/version, whether they are namespaced, short "
                "names and verbs.",
                obj(
                    {
                        "group": {
                            "type": "string",
                            "maxLength": 253,
                            "description": "Only this API group ('' for the core group).",
                        }
                    }
                ),
                obj(
                    {
                        "kinds": {
                            "type": "array",
                            "items": obj(
                                {
                                    "kind": {"type": "string"},
                                    "name": {"type": "string"},
                                    "api_version": {"type": "string"},
                                    "namespaced": {"type": "boolean"},
                                    "short_names": {"type": "array", "items": {"type": "string"}},
                                    "verbs": {"type": "array", "items": {"type": "string"}},
                                },
                                ["kind", "name", "api_version", "namespaced"],
                            ),
                        }
                    },
                    ["kinds"],
                ),
                self._list_kinds,
            ),
            Tool(
                "list_resources",
                "List resources",
                "Objects of a kind in a namespace (or all namespaces), filtered by label and "
                "field selectors, each with a one-line status as kubectl get shows it. At most "
                f"{opts.max_list_items:,} per call: pass the returned cursor for the next page.",
                obj(
                    {
                        "kind": KIND,
                        "api_version": API_VERSION,
                        "namespace": NAMESPACE,
                        "all_namespaces": {"type": "boolean", "default": False},
                        "label_selector": {
                            **SELECTOR,
                            "description": "e.g. 'app=web,tier!=cache'.",
                        },
                        "field_selector": {
                            **SELECTOR,
                            "description": "e.g. 'status.phase=Running'.",
                        },
                        "limit": {"type": "integer", "minimum": 1, "maximum": opts.max_list_items},
                        "cursor": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 8192,
                            "description": "The cursor a previous call returned (next page).",
                        },
                    },
                    ["kind"],
                ),
                obj(
                    {
                        "kind": {"type": "string"},
                        "api_version": {"type": "string"},
                        "namespace": {"type": ["string", "null"]},
                        "items": {"type": "array", "items": ROW},
                        "cursor": {"type": ["string", "null"]},
                        "remaining": {
                            "type": ["integer", "null"],
                            "description": "Objects after this page, when the server says.",
                        },
                    },
                    ["kind", "api_version", "namespace", "items", "cursor"],
                ),
                self._list_resources,
            ),
            Tool(
                "describe_resource",
                "Describe a resource",
                "One object in full (managedFields dropped; a Secret's values hidden unless the "
                "server shows them; long strings cut) and, by default, its recent events.",
                obj(
                    {
                        "kind": KIND,
                        "name": NAME,
                        "namespace": NAMESPACE,
                        "api_version": API_VERSION,
                        "events": {
                            "type": "boolean",
                            "default": True,
                            "description": "Add the object's events.",
                        },
                    },
                    ["kind", "name"],
                ),
                obj(
                    {
                        "kind": {"type": "string"},
                        "api_version": {"type": "string"},
                        "name": {"type": "string"},
                        "namespace": {"type": ["string", "null"]},
                        "object": {"type": "object"},
                        "events": {"type": "array", "items": EVENT},
                    },
                    ["kind", "api_version", "name", "namespace", "object", "events"],
                ),
                self._describe,
            ),
            Tool(
                "pod_logs",
                "Pod logs",
                "The last lines of a container's log: tail_lines (at most "
                f"{opts.max_log_lines:,}), at most {opts.max_log_bytes:,} bytes (the last "
                "ones). previous: the container's previous run (after a crash).",
                obj(
                    {
                        "pod": NAME,
                        "namespace": NAMESPACE,
                        "container": {
                            **NAME,
                            "description": "Which container (needed when the pod has several).",
                        },
                        "tail_lines": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": opts.max_log_lines,
                            "default": min(200, opts.max_log_lines),
                        },
                        "since_seconds": {"type": "integer", "minimum": 1},
                        "previous": {"type": "boolean", "default": False},
                        "timestamps": {"type": "boolean", "default": False},
                    },
                    ["pod"],
                ),
                obj(
                    {
                        "pod": {"type": "string"},
                        "namespace": {"type": "string"},
                        "container": {"type": ["string", "null"]},
                        "lines": {"type": "integer"},
                        "truncated": {
                            "type": "boolean",
                            "description": "Older lines were dropped to stay within the "
                            "byte limit.",
                        },
                        "text": {"type": "string"},
                    },
                    ["pod", "namespace", "container", "lines", "truncated", "text"],
                ),
                self._pod_logs,
            ),
            Tool(
                "list_events",
                "List events",
                "Recent events, newest first: of a namespace (or all), of one object (kind "
                f"and name), or only warnings. At most {opts.max_events:,}.",
                obj(
                    {
                        "namespace": NAMESPACE,
                        "all_namespaces": {"type": "boolean", "default": False},
                        "kind": KIND,
                        "name": NAME,
                        "warnings_only": {"type": "boolean", "default": False},
                        "limit": {"type": "integer", "minimum": 1, "maximum": opts.max_events},
                    }
                ),
                obj(
                    {
                        "events": {"type": "array", "items": EVENT},
                        "truncated": {"type": "boolean"},
                    },
                    ["events", "truncated"],
                ),
                self._list_events,
            ),
        ]

    # ---- handlers ----------------------------------------------------------------------------

    async def _list_kinds(self, args: Json, ctx: CallContext) -> Result:
        types = await self.discovery.types(ctx)
        group = args.get("group")
        kinds = [t.listing() for t in types if group is None or t.group == group]
        lines = [
            f"{k['kind']} ({k['name']}, {k['api_version']}"
            + (", namespaced)" if k["namespaced"] else ", cluster-wide)")
            for k in kinds
        ]
        return Result({"kinds": kinds}, "\n".join(lines) or "No kinds.")

    async def _list_resources(self, args: Json, ctx: CallContext) -> Result:
        resource = await self.resolve(ctx, args)
        everywhere = args.get("all_namespaces", False)
        namespace: str | None = None
        if resource.namespaced and not everywhere:
            namespace = await self.namespace_of(args.get("namespace"))
        elif resource.namespaced and self.options.namespaces:
            raise BuiltinError(
                f"{self.name}: listing across all namespaces is refused here (only "
                f"{', '.join(self.options.namespaces)} are served)"
            )
        query: dict[str, Any] = {
            "limit": args.get("limit", self.options.max_list_items),
            "continue": args.get("cursor"),
            "labelSelector": args.get("label_selector"),
            "fieldSelector": args.get("field_selector"),
        }
        _, found = await self.cluster.request(ctx, "GET", resource.path(namespace), query=query)
        items = [shapes.row(i, resource.kind) for i in found.get("items") or []]
        meta = found.get("metadata") or {}
        cursor = meta.get("continue") or None
        remaining = meta.get("remainingItemCount")
        structured = {
            "kind": resource.kind,
            "api_version": resource.api_version,
            "namespace": namespace,
            "items": items,
            "cursor": cursor,
            "remaining": remaining if isinstance(remaining, int) else None,
        }
        lines = [
            "  ".join(
                p
                for p in (
                    f"{i['namespace']}/{i['name']}"
                    if everywhere and "namespace" in i
                    else i["name"],
                    i.get("status", ""),
                    f"created {i['created']}" if i.get("created") else "",
                )
                if p
            )
            for i in items[:MAX_TEXT_ROWS]
        ]
        if len(items) > MAX_TEXT_ROWS:
            lines.append(f"... {len(items) - MAX_TEXT_ROWS} more in structuredContent")
        if cursor:
            more = f" ({remaining} more)" if isinstance(remaining, int) else ""
            lines.append(f"More follow{more}: call again with the cursor.")
        where = f" in {namespace}" if namespace else ""
        return Result(structured, "\n".join(lines) or f"No {resource.name}{where}.")

    async def _describe(self, args: Json, ctx: CallContext) -> Result:
        resource = await self.resolve(ctx, args)
        namespace = await self.namespace_of(args.get("namespace")) if resource.namespaced else None
        _, item = await self.cluster.request(ctx, "GET", resource.path(namespace, args["name"]))
        events: list[Json] = []
        uid = (item.get("metadata") or {}).get("uid")
        if args.get("events", True) and uid:
            events, _ = await self._events(
                ctx, namespace, f"involvedObject.uid={uid}", self.options.max_events
            )
        structured = {
            "kind": resource.kind,
            "api_version": resource.api_version,
            "name": args["name"],
            "namespace": namespace,
            "object": self.clean(item),
            "events": events,
        }
        text = yaml.safe_dump(structured["object"], sort_keys=False, allow_unicode=True)
        if events:
            text += "\nEvents (newest first):\n" + "\n".join(_event_line(e) for e in events)
        return Result(structured, text)

    async def _pod_logs(self, args: Json, ctx: CallContext) -> Result:
        namespace = await self.namespace_of(args.get("namespace"))
        opts = self.options
        query: dict[str, Any] = {
            "container": args.get("container"),
            "tailLines": args.get("tail_lines", min(200, opts.max_log_lines)),
            "sinceSeconds": args.get("since_seconds"),
            "previous": "true" if args.get("previous") else None,
            "timestamps": "true" if args.get("timestamps") else None,
        }
        path = f"/api/v1/namespaces/{namespace}/pods/{args['pod']}/log"
        text, dropped, stopped = await self.cluster.read_text(
            ctx, path, query, keep=opts.max_log_bytes, cap=opts.max_log_bytes * 32
        )
        if stopped:
            raise BuiltinError(
                f"{self.name}: the log is too long to reach its end; ask for fewer tail_lines "
                "or give since_seconds"
            )
        lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
        structured = {
            "pod": args["pod"],
            "namespace": namespace,
            "container": args.get("container"),
            "lines": lines,
            "truncated": dropped > 0,
            "text": text,
        }
        head = f"(older lines dropped: {dropped:,} bytes over max_log_bytes)\n" if dropped else ""
        return Result(structured, head + (text or "The log is empty."))

    async def _list_events(self, args: Json, ctx: CallContext) -> Result:
        selectors = []
        namespace: str | None = None
        if args.get("all_namespaces"):
            if self.options.namespaces:
                raise BuiltinError(
                    f"{self.name}: events across all namespaces are refused here (only "
                    f"{', '.join(self.options.namespaces)} are served)"
                )
        else:
            namespace = await self.namespace_of(args.get("namespace"))
        if "kind" in args:
            resource = await self.discovery.resolve(ctx, args["kind"])
            selectors.append(f"involvedObject.kind={resource.kind}")
        if "name" in args:
            selectors.append(f"involvedObject.name={args['name']}")
        if args.get("warnings_only"):
            selectors.append("type=Warning")
        events, truncated = await self._events(
            ctx, namespace, ",".join(selectors), args.get("limit", self.options.max_events)
        )
        text = "\n".join(_event_line(e) for e in events) or "No events."
        return Result({"events": events, "truncated": truncated}, text)

    async def _events(
        self, ctx: CallContext, namespace: str | None, selector: str, limit: int
    ) -> tuple[list[Json], bool]:
        path = f"/api/v1/namespaces/{namespace}/events" if namespace else "/api/v1/events"
        query = {"limit": EVENTS_FETCHED, "fieldSelector": selector or None}
        _, found = await self.cluster.request(ctx, "GET", path, query=query)
        rows = [shapes.event_row(e) for e in found.get("items") or [] if isinstance(e, dict)]
        rows.sort(key=lambda e: str(e["last_seen"] or ""), reverse=True)
        more = bool((found.get("metadata") or {}).get("continue"))
        return rows[:limit], more or len(rows) > limit


def _event_line(event: Json) -> str:
    count = f" (x{event['count']})" if event["count"] > 1 else ""
    return (
        f"{event['last_seen'] or '?'}  {event['type']}  {event['reason']}  {event['object']}: "
        f"{event['message']}{count}"
    )
