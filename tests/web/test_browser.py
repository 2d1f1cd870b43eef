"""The dashboard in headless Chromium, served by the gateway on a loopback port: sign in, see
the servers, stop and start one, search the tools, call one from its form, find that call in
the audit trail, use the admin pages, and be refused a page without the role. Every page is
screenshotted into ``.test-artifacts/ui/``; no console error (a CSP violation is one) may
appear."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Dialog, expect

from catalyst_mcp.security.vault import generate_key
from tests.api.conftest import settings, start_tools_api
from tests.live import serve_asgi
from tests.web.browser import Watched, chromium
from tests.web.fakeoidc import AUDIENCE, CLIENT_ID, FakeOidc

pytestmark = [pytest.mark.browser, pytest.mark.network, pytest.mark.timeout(150)]
SECRET_VALUE = "browser-S3cret-never-shown"


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_the_dashboard_in_a_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALYST_SECRET_KEY", generate_key())
    files = tmp_path / "files"
    files.mkdir()
    (files / "notes.txt").write_text("hello\n")
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "broken.yaml").write_text("pack: broken\ntools:\n  - name: [oops\n")
    api = await start_tools_api(
        settings(
            tmp_path,
            servers={"files": {"filesystem": {"roots": [str(files)]}}},
            packs={"path": str(tmp_path / "packs")},
        )
    )
    gateway = api.gateway
    try:
        async with (
            serve_asgi(gateway.asgi, lifespan="off") as live,
            chromium(tmp_path / "profile") as browser,
        ):
            base = f"{live.base}/ui"
            page = await browser.new_page()
            page.on("dialog", accept)
            watch = Watched(page)

            # sign in
            await page.goto(f"{base}/")
            await expect(page).to_have_url(re.compile(r"/ui/login\?next=%2F$"))
            await watch.shot("01-login")
            await page.fill("#credential", api.tokens["root"])
            await page.click("form button[type=submit]")
            await expect(page).to_have_url(f"{base}/")

            # the servers, on the overview and their own page
            servers = page.locator("table.servers")
            await expect(servers).to_contain_text("fake")
            await expect(page.locator("#server-files")).to_contain_text("ready")
            await expect(page.locator("#calls-per-minute")).to_be_visible()
            await watch.shot("02-overview")
            await page.click("header nav >> text=Servers")
            await expect(page).to_have_url(f"{base}/servers")
            await watch.shot("03-servers")
            await page.click("table.servers >> text=files")
            await expect(page.locator("dl.facts")).to_contain_text("ready")
            await page.click("button:has-text('Stop')")
            await expect(page.locator("#flash")).to_contain_text("files: stopped")
            await expect(page.locator("h1")).to_contain_text("stopped")
            await page.click("button:has-text('Start')")
            await expect(page.locator("#flash")).to_contain_text("files: started")
            await expect(page.locator("h1")).to_contain_text("ready")
            await watch.shot("04-server")

            # the tools: search as you type, then call one from its form
            await page.goto(f"{base}/tools")
            await page.fill("input[name=q]", "echo")
            await expect(page).to_have_url(re.compile(r"/ui/tools\?q=echo"))
            await expect(page.locator("#tool-list")).to_contain_text("1 tool(s)")
            await watch.shot("05-tools")
            await page.click("#tool-list >> text=fake__echo")
            await expect(page.locator("h1")).to_have_text("fake__echo")
            await page.fill("[name='arg.text']", "hello browser")
            await page.fill("[name='arg.times']", "2")
            await page.click("#try-form button[type=submit]")
            await expect(page.locator("#result")).to_contain_text("hello browser hello browser")
            await watch.shot("06-tool-call")

            # that call in the audit trail, and the chain verified
            audit = gateway.access.audit
            assert audit is not None
            await audit.flush()
            await page.goto(f"{base}/audit?action=tools%2Fcall")
            row = page.locator("table.audit tbody tr").first
            await expect(row).to_contain_text("fake__echo")
            await expect(row).to_contain_text("root")
            await expect(row).to_contain_text("ok")
            await page.click("text=Verify the hash chain")
            await expect(page.locator("#verification")).to_contain_text("The chain holds")
            await watch.shot("07-audit")

            # the knowledge packs, with the broken file's problem at its line
            await page.goto(f"{base}/packs")
            await expect(page.locator("code.problem")).to_contain_text("broken.yaml:")
            await watch.shot("08-packs")

            # users, keys (a new token shown once), roles
            await page.goto(f"{base}/users")
            await page.fill("form.grid [name=name]", "dana")
            await page.click("form.grid button[type=submit]")
            await expect(page.locator("#flash")).to_contain_text("user dana created")
            await watch.shot("09-users")
            await page.goto(f"{base}/keys")
            await page.select_option("form.grid select[name=user]", "dana")
            await page.fill("form.grid [name=name]", "laptop")
            await page.click("form.grid button[type=submit]")
            await expect(page.locator("#new-token")).to_contain_text("cat_")
            await watch.shot("10-keys")
            await page.goto(f"{base}/roles")
            await expect(page.locator("table.roles")).to_contain_text("reader")
            await watch.shot("11-roles")

            # a secret: set from the form, its value never shown
            await page.goto(f"{base}/secrets")
            await page.fill("[name=owner]", "dana")
            await page.fill("[name=scope]", "files")
            await page.fill("[name=name]", "TOKEN")
            await page.fill("[name=value]", SECRET_VALUE)
            await page.click("form.grid button[type=submit]")
            await expect(page.locator("#flash")).to_contain_text("secret dana/files/TOKEN set")
            assert SECRET_VALUE not in await page.content()
            await page.reload()
            assert SECRET_VALUE not in await page.content()
            await watch.shot("12-secrets")

            await page.goto(f"{base}/packages")
            await expect(page.locator("h1")).to_have_text("Packages")
            await watch.shot("13-packages")

            # sign out; bob (no admin role) is refused the admin pages
            await page.click("header button:has-text('Sign out')")
            await expect(page).to_have_url(re.compile(r"/ui/login"))
            await page.fill("#credential", api.tokens["bob"])
            await page.click("form button[type=submit]")
            await expect(page).to_have_url(f"{base}/")
            await expect(page.locator("header nav")).not_to_contain_text("Users")
            response = await page.goto(f"{base}/users")
            assert response is not None and response.status == 403
            await expect(page.locator(".error-page")).to_contain_text("'admin' role")
            await watch.shot("14-refused")

            assert watch.clean() == [], watch.errors
    finally:
        await gateway.stop()


async def test_signing_in_with_the_identity_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOidc() as provider:
        api = await start_tools_api(
            settings(
                tmp_path,
                auth={"jwt": {"oidc_issuer": provider.issuer, "audience": [AUDIENCE]}},
                ui={"oidc_client_id": CLIENT_ID},
            )
        )
        gateway = api.gateway
        try:
            async with (
                serve_asgi(gateway.asgi, lifespan="off") as live,
                chromium(tmp_path / "profile") as browser,
            ):
                base = f"{live.base}/ui"
                page = await browser.new_page()
                watch = Watched(page)
                await page.goto(f"{base}/tools")
                await page.click("text=Sign in with your identity provider")
                await expect(page).to_have_url(f"{base}/tools")
                await expect(page.locator("header .who")).to_contain_text("olivia")
                await expect(page.locator("header .who")).to_contain_text("admin")
                await watch.shot("15-oidc-signed-in")
                asked = provider.authorize_requests[-1]
                assert asked["code_challenge_method"] == "S256"
                assert asked["redirect_uri"] == f"{base}/login/callback"
                assert watch.clean() == [], watch.errors
        finally:
            await gateway.stop()
