"""Cron schedules: each workflow's ``schedules`` fire runs at their due times.

Due times come from ``croniter`` in the schedule's own time zone (so ``0 7 * * *`` in
Europe/Paris is 07:00 there, summer and winter). Every instance computes the same due times;
before firing one, an instance inserts the claim row (schedule, due time): the primary key lets
exactly one insert succeed, on SQLite and PostgreSQL alike, so a due time fires once however
many gateways share the database. The claim is committed before the run starts: a gateway
killed in between loses that one run (at most once; the next due time fires as usual).

Due times that passed while no instance ran are not made up for: a schedule starts from the
moment its instance starts (or its file was loaded) and fires what falls due from then on.
The scheduler's identity is the schedule's ``as`` (kind ``service``, its ``roles``), so RBAC,
secrets and audit treat scheduled runs as that account's calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zoneinfo
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from croniter import croniter

from catalyst_mcp.aio import cancel_and_wait
from catalyst_mcp.context import Identity
from catalyst_mcp.orchestration.workflows.plan import WorkflowPlan
from catalyst_mcp.orchestration.workflows.runner import WorkflowRunner
from catalyst_mcp.orchestration.workflows.runstate import new_run_id
from catalyst_mcp.orchestration.workflows.schema import Schedule
from catalyst_mcp.storage.models import utcnow

__all__ = ["Scheduler", "due_times", "schedule_key"]

log = logging.getLogger("catalyst.workflows")

MAX_SLEEP_SECONDS = 1.0  # look again at least this often (new files, clock changes)
MAX_CATCH_UP = 100  # due times fired in one look at most (a clock that jumped)
STOP_GRACE_SECONDS = 5.0  # stopping waits this long for a fire under way to start its run


def schedule_key(workflow: str, index: int, schedule: Schedule) -> str:
    """The claim key of one schedule: a changed expression is a new schedule."""
    return f"{workflow}#{index}:{schedule.cron}@{schedule.timezone}"[:300]


def due_times(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """The due times in (``after``, ``until``], in UTC."""
    zone = zoneinfo.ZoneInfo(schedule.timezone)
    times = croniter(schedule.cron, after.astimezone(zone))
    out: list[datetime] = []
    while len(out) < MAX_CATCH_UP:
        nxt = times.get_next(datetime)
        if nxt > until:
            break
        out.append(nxt.astimezone(until.tzinfo))
    return out


class Scheduler:
    """Fires the schedules of ``plans()`` through ``runner`` (one task per gateway)."""

    def __init__(
        self, plans: Callable[[], dict[str, WorkflowPlan]], runner: WorkflowRunner
    ) -> None:
        self.plans = plans
        self.runner = runner
        self._since: dict[str, datetime] = {}  # schedule key -> last due time looked at
        self._task: asyncio.Task[None] | None = None
        # (key, due time, run id) fired here, the latest; and due times another instance took
        self.fired: deque[tuple[str, datetime, str]] = deque(maxlen=1000)
        self.taken_elsewhere = 0
        self._stopping = False
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._wake.clear()
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="catalyst-workflow-scheduler"
            )

    async def stop(self) -> None:
        """Stop firing. A fire under way first starts its run (within
        :data:`STOP_GRACE_SECONDS`): a due time claimed here is never left without its run."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                await asyncio.shield(task)
        except TimeoutError:
            await cancel_and_wait(task)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except Exception:  # the database may be away for a while
                log.warning("workflow schedules: a look failed; trying again", exc_info=True)
            now = utcnow()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                    max(0.01, MAX_SLEEP_SECONDS - now.microsecond / 1_000_000)
                ):
                    await self._wake.wait()

    async def tick(self, now: datetime | None = None) -> None:
        """Fire every schedule due since the last look."""
        now = now or utcnow()
        seen: set[str] = set()
        for plan in self.plans().values():
            for index, schedule in enumerate(plan.schedules):
                key = schedule_key(plan.name, index, schedule)
                seen.add(key)
                since = self._since.setdefault(key, now)
                for due in due_times(schedule, since, now):
                    if self._stopping:
                        return  # another instance, if one runs, fires the rest
                    await self._fire(plan, schedule, key, due)
                self._since[key] = now
        for key in set(self._since) - seen:
            del self._since[key]

    async def _fire(self, plan: WorkflowPlan, schedule: Schedule, key: str, due: datetime) -> None:
        run_id = new_run_id()
        if not await self.runner.store.claim_fire(key, due, run_id):
            self.taken_elsewhere += 1  # another instance fired it
            return
        identity = Identity(
            subject=schedule.as_user, kind="service", roles=tuple(schedule.roles), via="schedule"
        )
        run = self.runner.new_run(
            plan, dict(schedule.inputs), identity, trigger="schedule", run_id=run_id
        )
        await self.runner.start(plan, run)
        self.fired.append((key, due, run_id))
        log.info("schedule %s fired for %s: run %s", key, due.isoformat(), run_id)

    async def forget_old_claims(self, keep: timedelta = timedelta(days=7)) -> None:
        await self.runner.store.forget_fires(utcnow() - keep)
