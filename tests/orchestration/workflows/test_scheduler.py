"""Cron schedules: due times in the schedule's time zone, and each due time fired by exactly
one of several gateways sharing a database (two instances on the real PostgreSQL, a schedule
every second, for a few seconds)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from catalyst_mcp.orchestration.workflows.scheduler import due_times
from catalyst_mcp.orchestration.workflows.schema import Schedule
from catalyst_mcp.storage.workflow_model import WorkflowFire, WorkflowRun
from tests.orchestration.workflows.support import (
    ToolBox,
    pg_database_url,
    running_gateway,
    write,
)


def test_due_times_follow_the_time_zone_across_daylight_saving() -> None:
    seven = Schedule(cron="0 7 * * *", timezone="Europe/Paris")
    winter = due_times(seven, datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC))
    # 07:00 in Paris: 06:00 UTC in winter, 05:00 UTC from Sunday 29 March (summer time)
    assert [d.isoformat() for d in winter] == [
        "2026-03-27T06:00:00+00:00",
        "2026-03-28T06:00:00+00:00",
        "2026-03-29T05:00:00+00:00",
    ]
    every = Schedule(cron="* * * * * */2")  # croniter: a sixth field is seconds
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert len(due_times(every, start, start.replace(second=10))) == 5


TICK = """
name: tick
steps: [{id: e, tool: box__echo, arguments: {text: tick}}]
schedules: [{cron: "* * * * * *", as: ticker, roles: [admin]}]
"""


@pytest.mark.postgres
async def test_two_instances_fire_each_due_time_once(tmp_path: Path) -> None:
    write(tmp_path / "workflows", "tick", TICK)
    boxes = ToolBox(), ToolBox()
    async with (
        pg_database_url() as url,
        running_gateway(tmp_path, boxes[0], database=url) as one,
        running_gateway(tmp_path, boxes[1], database=url) as two,
    ):
        for gateway in (one, two):  # both read the same folder
            assert gateway.workflows is not None
            assert gateway.workflows.provider.plan("tick") is not None
        await asyncio.sleep(4.5)
        assert one.workflows is not None and two.workflows is not None
        for gateway in (one, two):  # no fire between what each holds and what the database says
            assert gateway.workflows is not None
            await gateway.workflows.scheduler.stop()
        fired = [*one.workflows.scheduler.fired, *two.workflows.scheduler.fired]
        lost = one.workflows.scheduler.taken_elsewhere + two.workflows.scheduler.taken_elsewhere
        await one.workflows.runner.wait(fired[-1][2]) if fired else None
        db = one.workflows.store.db
        async with db.begin() as conn:
            fires = (await conn.execute(select(WorkflowFire.fire_at))).scalars().all()
            runs = (
                await conn.execute(
                    select(WorkflowRun.id, WorkflowRun.subject).where(
                        WorkflowRun.trigger == "schedule"
                    )
                )
            ).all()
    due = Counter(at for _, at, _ in fired)
    assert len(fires) >= 3
    assert all(count == 1 for count in due.values()), due  # no due time fired twice
    assert len(due) == len(fires) == len(runs)
    assert lost >= len(fires) - 2  # both instances tried (nearly) every due time
    assert {subject for _, subject in runs} == {"ticker"}
    assert sum(box.counts["echo"] for box in boxes) >= len(fires) - 1  # the last may be running


async def test_stopping_during_a_fire_lets_it_start_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A due time this instance claimed is never left without its run: stopping waits for the
    fire under way (another instance, seeing the claim, does not fire it)."""
    write(tmp_path / "workflows", "tick", TICK)
    async with running_gateway(tmp_path, ToolBox()) as gateway:
        assert gateway.workflows is not None
        scheduler, runner = gateway.workflows.scheduler, gateway.workflows.runner
        claiming, release = asyncio.Event(), asyncio.Event()
        claim = runner.store.claim_fire

        async def slow_claim(schedule: str, fire_at: datetime, run_id: str) -> bool:
            claiming.set()
            await release.wait()
            return await claim(schedule, fire_at, run_id)

        monkeypatch.setattr(runner.store, "claim_fire", slow_claim)
        await asyncio.wait_for(claiming.wait(), 5)
        stopping = asyncio.ensure_future(scheduler.stop())
        await asyncio.sleep(0.2)
        assert not stopping.done()  # the fire under way goes first
        release.set()
        await asyncio.wait_for(stopping, 5)
        assert len(scheduler.fired) == 1
        run_id = scheduler.fired[0][2]
        await runner.wait(run_id)
        async with runner.store.db.begin() as conn:
            fires = (await conn.execute(select(WorkflowFire.run_id))).scalars().all()
            runs = (await conn.execute(select(WorkflowRun.id))).scalars().all()
        assert fires == [run_id] and runs == [run_id]
