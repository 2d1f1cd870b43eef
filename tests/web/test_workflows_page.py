"""The workflows pages: the workflows served as tools, runs filtered, one run with its steps
(state, attempts, timings, errors) that follows itself while it runs, and cancelling a run
through the API (audited); administrators only."""

from __future__ import annotations

import html
import re
from pathlib import Path

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import Identity
from catalyst_mcp.orchestration.workflows.runstate import StepState
from catalyst_mcp.storage.models import utcnow
from tests.api.conftest import settings, start_tools_api
from tests.asgiclient import AsgiClient
from tests.orchestration.workflows.support import ToolBox, running_gateway, write
from tests.web.conftest import Browser, Dashboard, text_of

HELD = "name: held\ndescription: Waits at a gate\nsteps: [{id: g, tool: box__gate}]\n"
QUICK = "name: quick\nsteps: [{id: e, tool: box__echo, arguments: {text: q}}]\n"
BROKEN = "name: broken\nsteps: [{id: b, tool: box__broken}]\n"


async def local_browser(gateway: Gateway) -> Browser:
    browser = Browser(AsgiClient(gateway.asgi))
    await browser.get("/ui/")
    return browser


async def test_workflows_runs_and_a_run_cancelled(tmp_path: Path) -> None:
    box = ToolBox()
    folder = tmp_path / "workflows"
    write(folder, "held", HELD)
    write(folder, "quick", QUICK)
    write(folder, "broken", BROKEN)
    write(folder, "bad", "name: bad\nsteps: nope\n")
    async with running_gateway(tmp_path, box) as gateway:
        assert gateway.workflows is not None
        ann = Identity(subject="ann", kind="user", roles=("admin",))
        await gateway.dispatcher.direct("tools/call", {"name": "workflows__quick"}, ann)
        await gateway.dispatcher.direct("tools/call", {"name": "workflows__broken"}, ann)
        plan = gateway.workflows.provider.plan("held")
        assert plan is not None
        run = gateway.workflows.runner.new_run(plan, {"why": "<i>test</i>"}, ann, trigger="task")
        await gateway.workflows.runner.start(plan, run)
        await box.entered.wait()
        browser = await local_browser(gateway)

        listing = await browser.get("/ui/workflows")
        assert listing.status == 200, listing.body
        body = text_of(listing)
        for name in ("held", "quick", "broken"):
            assert f'id="workflow-{name}"' in body and f"workflows__{name}" in body
        assert "Waits at a gate" in body
        assert 'class="problem"' in body and "bad.yaml" in body  # the file not served
        runs = re.findall(r'id="run-(wr_[^"]+)"', body)
        assert len(runs) == 3 and run.id in runs
        assert "run-running" in body and "run-completed" in body and "run-failed" in body
        completed = text_of(await browser.get("/ui/workflows?status=completed&workflow=quick"))
        assert len(re.findall(r'id="run-(wr_[^"]+)"', completed)) == 1
        assert (await browser.get("/ui/workflows?status=sleeping")).status == 422
        nobody = text_of(await browser.get("/ui/workflows?user=zed"))
        assert "No runs match." in nobody

        (quick_id,) = re.findall(r'id="run-(wr_[^"]+)"', completed)
        quick = text_of(await browser.get(f"/ui/workflows/runs/{quick_id}"))
        assert "run-completed" in quick and 'id="step-1"' in quick and "<code>e</code>" in quick
        assert 'id="run-output"' in quick and "hx-trigger" not in quick
        assert re.search(r"\d+ ms|\d+\.\d s", quick)  # the step's time

        live = text_of(await browser.get(f"/ui/workflows/runs/{run.id}"))
        assert 'hx-trigger="every 2s"' in live and 'id="cancel-run"' in live
        assert html.escape("<i>test</i>") in live and "<i>test" not in live
        cancelled = await browser.post(f"/ui/workflows/runs/{run.id}/cancel")
        assert cancelled.status == 200, cancelled.body
        assert f"run {run.id}: cancel requested" in text_of(cancelled)
        await gateway.workflows.runner.wait(run.id)
        after = text_of(await browser.get(f"/ui/workflows/runs/{run.id}"))
        assert 'id="run-status">cancelled<' in after
        assert "hx-trigger" not in after and 'id="cancel-run"' not in after
        # the gate step never finished: it ended with the run
        assert 'class="state step-cancelled">cancelled<' in after
        assert ">interrupted<" not in after
        # a step a run left "running" before steps ended with their runs is shown as such
        old = StepState("running", started_at=utcnow())
        await gateway.workflows.store.step(run, "old", old, durable=True)
        older = text_of(await browser.get(f"/ui/workflows/runs/{run.id}"))
        assert ">interrupted<" in older and older.count('class="state step-cancelled"') == 2
        again = await browser.post(f"/ui/workflows/runs/{run.id}/cancel")
        assert again.status == 409 and "is not running" in text_of(again)
        assert (await browser.get("/ui/workflows/runs/wr_nothing")).status == 404
        broken_id = re.findall(
            r'id="run-(wr_[^"]+)"',
            text_of(await browser.get("/ui/workflows?workflow=broken")),
        )[0]
        broken = text_of(await browser.get(f"/ui/workflows/runs/{broken_id}"))
        assert "run-failed" in broken and "error-text" in broken


async def test_a_gateway_without_workflows_says_so(dashboard: Dashboard) -> None:
    root = await dashboard.signed_in("root")
    page = await root.get("/ui/workflows")
    assert page.status == 200
    assert 'id="workflows-off"' in text_of(page)
    assert (await root.get("/ui/workflows/runs/wr_x")).status == 404


async def test_only_administrators_see_runs_or_cancel(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    write(folder, "say", "name: say\nsteps: [{id: e, tool: fake__echo, arguments: {text: hi}}]\n")
    api = await start_tools_api(settings(tmp_path, workflows={"path": str(folder), "watch": False}))
    try:
        dashboard = Dashboard(api)
        root = await dashboard.signed_in("root")
        assert (await root.get("/ui/workflows")).status == 200
        bob = await dashboard.signed_in("bob")
        assert "/ui/workflows" not in text_of(await bob.get("/ui/"))
        refused = await bob.get("/ui/workflows")
        assert refused.status == 403 and "'admin' role" in html.unescape(text_of(refused))
        assert (await bob.get("/ui/workflows/runs/wr_x")).status == 403
        assert (await bob.post("/ui/workflows/runs/wr_x/cancel")).status == 403
        denied = await api.audit(action="admin.workflow_run.cancel", outcome="denied")
        assert [r["actor"] for r in denied] == ["bob"]
    finally:
        await api.gateway.stop()
