"""Everything workflows need in one gateway, built from the settings and started and stopped
with it: the folder (hot reloaded), the provider in the registry, the store, the engine whose
steps enter the gateway's pipeline, the runner (heartbeat, resume) and the scheduler.

Steps enter through :meth:`Dispatcher.direct` (what the REST API uses) with transport
``workflow``: the same pipeline as every MCP request, under the run's identity (RBAC, key
scopes, per-user secrets, rate limits, audit, metrics and traces at every step), only listed
tools, arguments checked against each tool's input schema, and a failing upstream an error.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import ConfigProblem, NotFound
from catalyst_mcp.orchestration.workflows.config import WorkflowsSettings
from catalyst_mcp.orchestration.workflows.engine import Engine
from catalyst_mcp.orchestration.workflows.plan import WorkflowPlan
from catalyst_mcp.orchestration.workflows.provider import WorkflowProvider
from catalyst_mcp.orchestration.workflows.runner import WorkflowRunner
from catalyst_mcp.orchestration.workflows.scheduler import Scheduler
from catalyst_mcp.orchestration.workflows.store import RunStore
from catalyst_mcp.orchestration.workflows.workflowset import WorkflowSet

if TYPE_CHECKING:
    from catalyst_mcp.packs.watcher import PackWatcher
    from catalyst_mcp.protocol.dispatch import Dispatcher
    from catalyst_mcp.storage.db import Database

__all__ = ["Workflows", "instance_id"]

log = logging.getLogger("catalyst.workflows")


def instance_id() -> str:
    """This process among the gateways sharing a database: host, pid and a random part."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


class Workflows:
    """The workflows room of one gateway."""

    def __init__(self, settings: WorkflowsSettings, db: Database, dispatcher: Dispatcher) -> None:
        assert settings.path is not None
        self.settings = settings
        self.dispatcher = dispatcher
        self.store = RunStore(db, instance_id(), synchronous=settings.synchronous)
        self.engine = Engine(self._call, self.store)
        self.runner = WorkflowRunner(settings, self.store, self.engine, self._plan)
        self.provider = WorkflowProvider(settings, self.runner)
        self.files = WorkflowSet(settings.path, self.provider)
        self.files.load_all()
        self.scheduler = Scheduler(lambda: self.provider.plans, self.runner)
        self.watcher: PackWatcher | None = None
        tasks = dispatcher.server.tasks
        tasks.resolvers.append(self.provider.resolve)
        tasks.listers.append(self.provider.list_tasks)

    def _plan(self, name: str) -> WorkflowPlan | None:
        return self.provider.plan(name)

    async def _call(
        self, tool: str, arguments: dict[str, Any], identity: Identity
    ) -> dict[str, Any]:
        params = {"name": tool, "arguments": arguments}
        return await self.dispatcher.direct("tools/call", params, identity, transport="workflow")

    async def fire(
        self, workflow: str, inputs: dict[str, Any], identity: Identity, *, trigger: str
    ) -> str:
        """Start a run of ``workflow`` in the background as ``identity``; its id. The entry of
        triggers: the scheduler's kind is ``schedule``; the event bus will start ``event``
        runs (``on: event``) the same way. NotFound if there is no such workflow."""
        plan = self.provider.plan(workflow)
        if plan is None:
            raise NotFound(f"no workflow {workflow!r}")
        run = self.runner.new_run(plan, inputs, identity, trigger=trigger)
        await self.runner.start(plan, run)
        return run.id

    @property
    def problems(self) -> list[ConfigProblem]:
        return self.files.problems

    async def start(self) -> None:
        """After the database is migrated: the writer, watching, resuming, schedules."""
        self.store.start()
        if self.settings.watch and self.watcher is None:
            from catalyst_mcp.packs.watcher import PackWatcher

            self.watcher = PackWatcher(self.files, what="workflows", logger=log)
            self.watcher.start()
        if self.settings.resume:
            await self.runner.resume_orphans()
        self.runner.start_loop()
        if self.settings.schedules:
            self.scheduler.start()

    async def stop(self) -> None:
        """Before the database closes: running runs are left for the next instance."""
        await self.scheduler.stop()
        if self.watcher is not None:
            await self.watcher.stop()
        await self.runner.stop()
        await self.store.close()
