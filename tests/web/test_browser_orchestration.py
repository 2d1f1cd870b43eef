"""The orchestration and trust pages in headless Chromium: an approver approves one held call
and rejects another, tests a call against the rules, approves a changed tool definition after
reading its diff, and a user without the role is refused; a workflow run is followed live and
cancelled. Screenshots go to ``.test-artifacts/ui/``; no console error (a CSP violation is
one) may appear."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Dialog, expect

from catalyst_mcp.context import Identity
from catalyst_mcp.security.vault import generate_key
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams import upstream as upstream_module
from tests.api.conftest import settings, start_tools_api
from tests.live import poll, serve_asgi
from tests.orchestration.workflows.support import ToolBox, running_gateway, write
from tests.trust.conftest import INJECTED, ScriptedServer, World
from tests.web.browser import Watched, chromium

pytestmark = [pytest.mark.browser, pytest.mark.network, pytest.mark.timeout(150)]
RULES = """\
- id: echo-needs-ok
  tools: [fake__echo]
  action: require_approval
  message: Echoes need an approver
- id: no-drop
  tools: [fake__add]
  if: arguments.a > 100
  action: deny
  message: too big
"""


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    found = World()

    def build(name: str, config: ServerConfig) -> ScriptedServer:
        found.transports.append(ScriptedServer(found))
        return found.transports[-1]

    monkeypatch.setattr(upstream_module, "build_transport", build)
    return found


async def test_approvals_rules_and_tool_changes_in_a_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    monkeypatch.setenv("CATALYST_SECRET_KEY", generate_key())
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "policy.yaml").write_text(RULES)
    files = {"url": "http://unused.invalid/mcp", "era": "legacy", "pin": "strict"}
    api = await start_tools_api(
        settings(
            tmp_path,
            rules={"path": str(folder), "watch": False},
            servers={"files": {**files, "ping_interval_seconds": 0}},
            gateway={"watch_config": False},
        )
    )
    gateway = api.gateway
    try:
        await poll(lambda: gateway.pinning.live("files"), what="files pinned")
        for text in ("first please", "second please"):
            held = await api.call("POST", "/tools/fake__echo/call", {"text": text}, token="bob")
            assert held.status == 403, held.body
        world.describe("read", "Read a file." + INJECTED)
        await world.announce()
        await poll(lambda: "read" in gateway.pinning.held_on("files"), what="read held back")
        async with (
            serve_asgi(gateway.asgi, lifespan="off") as live,
            chromium(tmp_path / "profile") as browser,
        ):
            base = f"{live.base}/ui"
            page = await browser.new_page()
            page.on("dialog", accept)
            watch = Watched(page)
            await page.goto(f"{base}/login")
            await page.fill("#credential", api.tokens["root"])
            await page.click("form button[type=submit]")
            await expect(page).to_have_url(f"{base}/")

            # approvals: approve the first held call with a reason, reject the second
            await page.click("header nav >> text=Approvals")
            await expect(page).to_have_url(f"{base}/approvals")
            rows = page.locator("#pending tbody tr")
            await expect(rows).to_have_count(2)
            first = rows.filter(has_text="first please")
            await expect(first).to_contain_text("bob")
            await expect(first).to_contain_text("echo-needs-ok")
            await watch.shot("16-approvals")
            await first.locator("input[name=note]").fill("fine this once")
            await first.locator("button.approve").click()
            await expect(page.locator("#flash")).to_contain_text("approved: the held call runs")
            await expect(rows).to_have_count(1)
            decided = page.locator("#decided tbody tr").first
            await expect(decided).to_contain_text("approved")
            await expect(decided).to_contain_text("fine this once")
            second = page.locator("#pending tbody tr").filter(has_text="second please")
            await second.locator("input[name=note]").fill("use the report")
            await second.locator("button.reject").click()
            await expect(page.locator("#flash")).to_contain_text("rejected")
            await expect(page.locator("#pending")).to_contain_text("No calls wait for approval")
            await watch.shot("17-approvals-decided")
            ran = await api.call(
                "POST", "/tools/fake__echo/call", {"text": "first please"}, token="bob"
            )
            assert ran.status == 200, ran.body

            # rules: in force with their place, and a call tested from the form
            await page.click("header nav >> text=Rules")
            await expect(page.locator("#rule-echo-needs-ok")).to_contain_text("policy.yaml:1")
            await page.fill("#rule-test [name=user]", "bob")
            await page.fill("#rule-test [name=tool]", "fake__add")
            await page.fill("#rule-test [name=arguments]", '{"a": 500, "b": 1}')
            await page.click("#rule-test button[type=submit]")
            await expect(page.locator("#rule-decision")).to_contain_text(
                "denied by rule 'no-drop': too big"
            )
            await watch.shot("18-rules")

            # tool changes: the injected sentence marked in the diff, then approved
            await page.click("header nav >> text=Tool changes")
            change = page.locator("#change-files-read")
            await expect(change).to_contain_text("held back")
            await expect(change.locator("pre.diff span.add")).to_contain_text("id_rsa")
            await watch.shot("19-tool-changes")
            await change.locator("button.approve").click()
            await expect(page.locator("#flash")).to_contain_text("files: approved read (changed)")
            await expect(page.locator("#no-changes")).to_be_visible()
            assert gateway.pinning.held_on("files") == set()

            # bob is no approver: no menu entry, and the page is refused
            await page.click("header button:has-text('Sign out')")
            await expect(page).to_have_url(re.compile(r"/ui/login"))
            await page.fill("#credential", api.tokens["bob"])
            await page.click("form button[type=submit]")
            await expect(page).to_have_url(f"{base}/")
            await expect(page.locator("header nav")).not_to_contain_text("Approvals")
            response = await page.goto(f"{base}/approvals")
            assert response is not None and response.status == 403
            await watch.shot("20-approvals-refused")
            assert watch.clean() == [], watch.errors
    finally:
        await gateway.stop()


async def test_a_workflow_run_followed_and_cancelled_in_a_browser(tmp_path: Path) -> None:
    box = ToolBox()
    folder = tmp_path / "workflows"
    write(folder, "held", "name: held\nsteps: [{id: wait, tool: box__gate}]\n")
    write(folder, "quick", "name: quick\nsteps: [{id: e, tool: box__echo, arguments: {text: q}}]\n")
    async with running_gateway(tmp_path, box) as gateway:
        assert gateway.workflows is not None
        ann = Identity(subject="ann", kind="user", roles=("admin",))
        await gateway.dispatcher.direct("tools/call", {"name": "workflows__quick"}, ann)
        plan = gateway.workflows.provider.plan("held")
        assert plan is not None
        run = gateway.workflows.runner.new_run(plan, {}, ann, trigger="task")
        await gateway.workflows.runner.start(plan, run)
        await box.entered.wait()
        async with (
            serve_asgi(gateway.asgi, lifespan="off") as live,
            chromium(tmp_path / "profile") as browser,
        ):
            base = f"{live.base}/ui"
            page = await browser.new_page()
            page.on("dialog", accept)
            watch = Watched(page)
            await page.goto(f"{base}/workflows")
            await expect(page.locator("#workflow-held")).to_contain_text("workflows__held")
            await expect(page.locator(f"#run-{run.id}")).to_contain_text("running")
            await watch.shot("21-workflows")
            await page.click(f"#run-{run.id} a")
            await expect(page.locator("#run-status")).to_have_text("running")
            await expect(page.locator("#step-1")).to_contain_text("wait")
            await watch.shot("22-run-running")
            await page.click("#cancel-run")
            await expect(page.locator("#flash")).to_contain_text("cancel requested")
            # the live part asks again every 2 s until the run has ended
            await expect(page.locator("#run-status")).to_have_text("cancelled", timeout=15_000)
            await expect(page.locator("#cancel-run")).to_have_count(0)
            # the step it was in ended with it
            await expect(page.locator("#step-1 .state")).to_have_text("cancelled")
            await watch.shot("23-run-cancelled")
            assert watch.clean() == [], watch.errors
        final = await gateway.workflows.store.get(run.id)
        assert final is not None and final.status == "cancelled"
