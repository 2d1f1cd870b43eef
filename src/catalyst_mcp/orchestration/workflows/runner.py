"""The runs of one gateway: start them (now, or in the background as tasks and schedules do),
wait for them, cancel them, keep them alive and resume the interrupted ones.

* A run called synchronously (``tools/call``) is recorded behind and answered once its end is
  committed: a gateway killed after answering never runs it again.
* A run in the background (an MCP task, a schedule, a resumed run) is committed before its id
  is handed out (``tasks/get`` on another instance finds it at once).
* Every ``heartbeat_seconds`` the runner marks its running runs alive, asks the store which of
  them someone cancelled (``catalyst workflows cancel`` from anywhere), and takes over runs
  whose heartbeat is older than three heartbeats: their gateway died. A resumed run starts
  again after its last completed step; one cancelled meanwhile ends at once, not resumed.
* A run's end ends the steps it was still running (``cancelled``, in the same commit).
* A gateway that stops leaves its runs running in the store with an expired heartbeat, so
  the next instance (or the restarted one) resumes them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from catalyst_mcp.context import Identity
from catalyst_mcp.orchestration.workflows.config import WorkflowsSettings
from catalyst_mcp.orchestration.workflows.engine import Engine
from catalyst_mcp.orchestration.workflows.plan import WorkflowPlan
from catalyst_mcp.orchestration.workflows.runstate import RunState, new_run_id
from catalyst_mcp.orchestration.workflows.store import RunStore
from catalyst_mcp.storage.models import utcnow

__all__ = ["STALE_HEARTBEATS", "WorkflowRunner"]

log = logging.getLogger("catalyst.workflows")

STALE_HEARTBEATS = 3  # a run whose heartbeat is this many beats old belongs to a dead instance
EXPIRED = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class _Local:
    run: RunState
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class WorkflowRunner:
    """Runs workflows of ``plans`` (a lookup by name, kept current by hot reload)."""

    def __init__(
        self,
        settings: WorkflowsSettings,
        store: RunStore,
        engine: Engine,
        plans: Callable[[str], WorkflowPlan | None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.plans = plans
        self.local: dict[str, _Local] = {}
        self.stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.resumed = 0  # runs taken over from a dead instance (tests, /ready)

    # ---- running -----------------------------------------------------------------------------

    def new_run(
        self,
        plan: WorkflowPlan,
        inputs: dict[str, Any],
        identity: Identity,
        *,
        trigger: str = "call",
        task_era: str | None = None,
        run_id: str | None = None,
    ) -> RunState:
        return RunState(
            id=run_id or new_run_id(),
            workflow=plan.name,
            inputs=inputs,
            identity=identity,
            trigger=trigger,
            task_era=task_era,
        )

    async def call(self, plan: WorkflowPlan, run: RunState) -> RunState:
        """Run ``run`` to its end in this request; it is answered once its end is committed,
        unless every step is ``retry_safe`` (then a gateway killed before the commit resumes
        the run, and running its steps again is safe by their own account)."""
        local = _Local(run)
        self.local[run.id] = local
        try:
            await self.store.save_run(run)
            await self._execute(plan, run)
        except asyncio.CancelledError:
            if not self.stopping:  # the caller went away: the run ends with it
                run.status = "cancelled"
                run.finished_at = run.updated_at = utcnow()
                await asyncio.shield(self.store.save_run(run, durable=True))
            raise
        finally:
            local.done.set()
            self.local.pop(run.id, None)
        await self.store.save_run(run, durable=not plan.retry_safe)
        return run

    async def start(self, plan: WorkflowPlan, run: RunState) -> RunState:
        """Run ``run`` in the background; return once its creation is committed."""
        await self.store.save_run(run, durable=True)
        self._spawn(plan, run)
        return run

    def _spawn(self, plan: WorkflowPlan, run: RunState) -> None:
        local = _Local(run)
        self.local[run.id] = local
        local.task = asyncio.get_running_loop().create_task(
            self._background_run(plan, local), name=f"workflow run {run.id}"
        )
        self._background.add(local.task)
        local.task.add_done_callback(self._background.discard)

    async def _background_run(self, plan: WorkflowPlan, local: _Local) -> None:
        run = local.run
        try:
            await self._execute(plan, run)
        except asyncio.CancelledError:
            if self.stopping:  # left running in the store: resumed by the next instance
                local.done.set()
                self.local.pop(run.id, None)
                return
            run.status = "cancelled"
            run.finished_at = run.updated_at = utcnow()
        except Exception as exc:  # a bug must not lose the run's end
            log.exception("workflow run %s failed unexpectedly", run.id)
            run.status = "failed"
            run.error = {"step": None, "message": f"internal error: {type(exc).__name__}"}
            run.finished_at = run.updated_at = utcnow()
        try:
            await self.store.save_run(run, durable=True)
        except Exception:  # the database is away: the heartbeat stops, another resumes it
            log.warning("could not record the end of workflow run %s", run.id, exc_info=True)
        finally:  # waiters read the end from the store: only now is it there
            local.done.set()
            self.local.pop(run.id, None)

    async def _execute(self, plan: WorkflowPlan, run: RunState) -> None:
        limit = plan.workflow.timeout_seconds
        if limit is None:
            await self.engine.execute(plan, run)
            return
        try:
            async with asyncio.timeout(limit):
                await self.engine.execute(plan, run)
        except TimeoutError:
            run.status = "failed"
            run.error = {"step": None, "message": f"the run took longer than {limit:g}s"}
            run.finished_at = run.updated_at = utcnow()

    # ---- waiting and cancelling ---------------------------------------------------------------

    async def wait(self, run_id: str, poll: float = 0.2) -> None:
        """Until ``run_id`` has ended (here or on another instance)."""
        while True:
            local = self.local.get(run_id)
            if local is not None:
                await local.done.wait()
                return
            record = await self.store.get(run_id)
            if record is None or record.status != "running":
                return
            await asyncio.sleep(poll)

    async def cancel(self, run_id: str) -> bool:
        """Cancel a running run wherever it runs; False if it is not running."""
        requested = await self.store.request_cancel(run_id)
        local = self.local.get(run_id)
        if local is not None and local.task is not None:
            local.task.cancel()
            return True
        return requested

    # ---- heartbeat, cancellation requests, resume ---------------------------------------------

    def start_loop(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(
                self._loop(), name="catalyst-workflow-heartbeat"
            )

    async def stop(self) -> None:
        self.stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        running = [local for local in self.local.values() if local.task is not None]
        for local in running:
            assert local.task is not None
            local.task.cancel()
        await asyncio.gather(
            *(local.task for local in running if local.task), return_exceptions=True
        )
        with contextlib.suppress(Exception):
            await self.store.flush()
            await self._release([local.run.id for local in running])

    async def _release(self, run_ids: list[str]) -> None:
        """Runs this instance stops executing: expired at once, for the next to resume."""
        if not run_ids:
            return
        from sqlalchemy import update

        from catalyst_mcp.storage.workflow_model import WorkflowRun

        async with self.store.db.begin(write=True) as conn:
            await conn.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id.in_(run_ids), WorkflowRun.status == "running")
                .values(heartbeat_at=EXPIRED)
            )

    async def _loop(self) -> None:
        beat = self.settings.heartbeat_seconds
        while True:
            try:
                await self.tick()
            except Exception:  # the database may be away for a while
                log.warning("workflow heartbeat failed; trying again", exc_info=True)
            await asyncio.sleep(beat)

    async def tick(self) -> None:
        """One heartbeat: keep ours alive, honour cancellations, resume the orphans."""
        ours = [run_id for run_id, local in self.local.items() if not local.run.done]
        await self.store.heartbeat(ours)
        for run_id in await self.store.cancels_for(ours):
            local = self.local.get(run_id)
            if local is not None and local.task is not None:
                local.task.cancel()
        if self.settings.resume and not self.stopping:
            await self.resume_orphans()

    async def resume_orphans(self) -> list[str]:
        """Take over and continue the runs of dead instances; their ids."""
        stale = utcnow() - timedelta(seconds=self.settings.heartbeat_seconds * STALE_HEARTBEATS)
        resumed = []
        for run_id in await self.store.claim_stale(stale):
            if run_id in self.local:
                continue
            run = await self.store.load(run_id)
            if run is None:
                continue
            plan = self.plans(run.workflow)
            if plan is None or run.cancel_requested:
                # ended here, without running on (its steps still running end with it)
                if run.cancel_requested:
                    run.status = "cancelled"
                else:
                    run.status = "failed"
                    run.error = {"step": None, "message": f"workflow {run.workflow!r} is gone"}
                run.finished_at = run.updated_at = utcnow()
                await self.store.save_run(run, durable=True)
                continue
            log.info("resuming workflow run %s of %s", run.id, run.workflow)
            self.resumed += 1
            self._spawn(plan, run)
            resumed.append(run_id)
        return resumed
