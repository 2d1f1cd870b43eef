"""``/api/v1/workflows``: the workflows served, runs, one run, cancel (audited)."""

from __future__ import annotations

from pathlib import Path

from catalyst_mcp.context import Identity
from tests.asgiclient import AsgiClient
from tests.conftest import ROOT
from tests.orchestration.workflows.support import ToolBox, running_gateway, write

API = "/api/v1"


async def test_workflows_runs_show_and_cancel(tmp_path: Path) -> None:
    box = ToolBox()
    folder = tmp_path / "workflows"
    write(folder, "held", "name: held\nsteps: [{id: g, tool: box__gate}]\n")
    write(folder, "quick", "name: quick\nsteps: [{id: e, tool: box__echo, arguments: {text: q}}]\n")
    async with running_gateway(tmp_path, box) as gateway:
        client = AsgiClient(gateway.asgi)
        served = (await client.get(f"{API}/workflows")).json()
        assert [w["tool"] for w in served["workflows"]] == ["workflows__held", "workflows__quick"]
        await gateway.dispatcher.direct(
            "tools/call",
            {"name": "workflows__quick"},
            Identity(subject="ann", kind="user", roles=("admin",)),
        )
        assert gateway.workflows is not None
        plan = gateway.workflows.provider.plan("held")
        assert plan is not None
        held = gateway.workflows.runner.new_run(plan, {}, Identity(), trigger="task")
        await gateway.workflows.runner.start(plan, held)
        await box.entered.wait()
        runs = (await client.get(f"{API}/workflows/runs?status=completed")).json()["runs"]
        assert [(r["workflow"], r["subject"]) for r in runs] == [("quick", "ann")]
        shown = (await client.get(f"{API}/workflows/runs/{runs[0]['id']}")).json()
        assert shown["steps"][0]["key"] == "e" and shown["output"] == {"text": "q"}
        assert (await client.get(f"{API}/workflows/runs/wr_nope")).status == 404
        cancelled = await client.post(f"{API}/workflows/runs/{held.id}/cancel", {})
        assert cancelled.status == 200
        assert (await client.post(f"{API}/workflows/runs/{held.id}/cancel", {})).status == 409
        await gateway.workflows.runner.wait(held.id)
        final = (await client.get(f"{API}/workflows/runs/{held.id}")).json()
        assert final["status"] == "cancelled"
        [step] = final["steps"]  # the step it was in ended with it
        assert step["key"] == "g" and step["status"] == "cancelled"
        assert step["finishedAt"] == final["finishedAt"] is not None
        document = (await client.get(f"{API}/openapi.json")).json()
        assert "/api/v1/workflows/runs/{run_id}/cancel" in document["paths"]
        routes = [r for r in gateway.api.router.routes if r.path.startswith("/workflows")]
    text = (ROOT / "docs" / "api.md").read_text()
    missing = [f"{r.method} {r.path}" for r in routes if f"`{r.method} {r.path}" not in text]
    assert len(routes) == 4 and not missing, f"docs/api.md does not list {missing}"
