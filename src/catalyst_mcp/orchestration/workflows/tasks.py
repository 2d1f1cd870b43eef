"""The MCP tasks extension through the gateway, in both eras.

A task is made by whoever serves the tool: a workflow (this package's provider runs it in the
background) or an upstream server that supports tasks (its ``CreateTaskResult`` is relayed).
The gateway remembers which provider made each task and for whom, and sends the task methods
there; a task is only ever visible to the subject that created it (anyone else gets the same
-32602 as for a task that does not exist).

* **modern** (2026-07-28, the ``io.modelcontextprotocol/tasks`` extension, SEP-2663): the
  server advertises ``capabilities.extensions["io.modelcontextprotocol/tasks"]``; a client
  that declares the extension in a request's capabilities may get a flat ``CreateTaskResult``
  (``resultType: "task"``); ``tasks/get`` (result inlined once terminal), ``tasks/update``
  (``inputResponses``), ``tasks/cancel`` (an empty ack); without the extension those methods
  are -32021 and ``tasks/result``/``tasks/list`` do not exist (-32601).
* **legacy** (2025-11-25, experimental tasks): ``capabilities.tasks``; a ``tools/call`` with a
  ``task`` param gets ``{"task": {...}}``; ``tasks/get``, ``tasks/result`` (waits for the end),
  ``tasks/list`` and ``tasks/cancel``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import InvalidParams, MethodNotFound, MissingCapability
from catalyst_mcp.providers import Provider

__all__ = [
    "LEGACY_TASKS_CAPABILITY",
    "MODERN_METHODS",
    "RELATED_TASK",
    "TASKS_EXTENSION",
    "TASK_METHODS",
    "TaskRouter",
    "client_wants_task",
    "created_task_id",
]

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
RELATED_TASK = "io.modelcontextprotocol/related-task"
LEGACY_TASKS_CAPABILITY: dict[str, Any] = {
    "list": {},
    "cancel": {},
    "requests": {"tools": {"call": {}}},
}
MODERN_METHODS = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})
LEGACY_METHODS = frozenset({"tasks/get", "tasks/result", "tasks/list", "tasks/cancel"})
TASK_METHODS = MODERN_METHODS | LEGACY_METHODS
MAX_REMEMBERED = 100_000  # relayed tasks whose owner is kept in memory (oldest forgotten)

Resolver = Callable[[str], Awaitable[tuple[Provider, str] | None]]
Lister = Callable[[CallContext], Awaitable[list[dict[str, Any]]]]


def client_wants_task(ctx: CallContext, params: dict[str, Any]) -> bool:
    """Whether this ``tools/call`` may be answered with a task: a modern client declared the
    extension; a legacy one sent a ``task`` param. REST callers never get tasks."""
    if ctx.channel != "mcp":
        return False
    if ctx.era == "modern":
        extensions = ctx.client_capabilities.get("extensions")
        return isinstance(extensions, dict) and TASKS_EXTENSION in extensions
    return isinstance(params.get("task"), dict)


def created_task_id(result: dict[str, Any]) -> str | None:
    """The task id of a ``CreateTaskResult`` (either era's shape), else None."""
    if result.get("resultType") == "task":
        task_id = result.get("taskId")
        return task_id if isinstance(task_id, str) else None
    task = result.get("task")
    if isinstance(task, dict) and isinstance(task.get("taskId"), str) and "content" not in result:
        return str(task["taskId"])
    return None


def missing_extension() -> MissingCapability:
    return MissingCapability(
        f"Missing required client capability: the {TASKS_EXTENSION} extension",
        data={"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
    )


class TaskRouter:
    """Which provider made each task, for whom; the task methods sent there."""

    def __init__(self) -> None:
        # task id -> (provider, subject) of relayed tasks (upstreams'); workflows resolve theirs
        self._owners: OrderedDict[str, tuple[Provider, str]] = OrderedDict()
        self.resolvers: list[Resolver] = []
        self.listers: list[Lister] = []

    def created(self, result: dict[str, Any], provider: Provider, ctx: CallContext) -> None:
        """Remember the task a ``tools/call`` result created (if it did)."""
        task_id = created_task_id(result)
        if task_id is None:
            return
        self._owners[task_id] = (provider, ctx.identity.subject)
        if len(self._owners) > MAX_REMEMBERED:
            self._owners.popitem(last=False)

    async def handle(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        if ctx.era == "modern":
            if method not in MODERN_METHODS:
                raise MethodNotFound(f"Method not found: {method}")
            if not client_wants_task(ctx, params):
                raise missing_extension()
        elif method not in LEGACY_METHODS:
            raise MethodNotFound(f"Method not found: {method}")
        if method == "tasks/list":
            tasks: list[dict[str, Any]] = []
            for lister in self.listers:
                tasks.extend(await lister(ctx))
            return {"tasks": tasks}
        task_id = params.get("taskId")
        if not isinstance(task_id, str) or not task_id:
            raise InvalidParams(f'{method} needs a string "taskId"')
        provider = await self._owner(task_id, ctx)
        forwarded = {k: v for k, v in params.items() if k != "_meta"}
        return await provider.call(method, forwarded, ctx)

    async def _owner(self, task_id: str, ctx: CallContext) -> Provider:
        found = self._owners.get(task_id)
        if found is None:
            for resolve in self.resolvers:
                found = await resolve(task_id)
                if found is not None:
                    break
        if found is None or found[1] != ctx.identity.subject:
            raise InvalidParams(f"Unknown task: {task_id}")
        return found[0]
