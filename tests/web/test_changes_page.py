"""The tool changes page: tools whose definitions changed since they were pinned, with the
diff (changed words marked, escaped), approved as reviewed (a tool that changed again since
is refused), administrators only."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams import upstream as upstream_module
from catalyst_mcp.web.pages.changes import diff_view
from catalyst_mcp.web.session import COOKIE
from tests.asgiclient import AsgiClient
from tests.live import poll
from tests.trust.conftest import (
    INJECTED,
    ScriptedServer,
    World,
    audited,
    gateway_settings,
    running,
)
from tests.web.conftest import Browser, Dashboard, text_of


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    """Server ``files`` of every gateway built now is a scripted server listing its tools."""
    found = World()

    def build(name: str, config: ServerConfig) -> ScriptedServer:
        found.transports.append(ScriptedServer(found))
        return found.transports[-1]

    monkeypatch.setattr(upstream_module, "build_transport", build)
    return found


async def held(gateway: Gateway, world: World, description: str) -> None:
    world.describe("read", description)
    await world.announce()
    await poll(lambda: "read" in gateway.pinning.held_on("files"), what="read held back")


async def local_browser(gateway: Gateway) -> Browser:
    """Auth is off: the local user, an administrator, with a session nonce and its token."""
    browser = Browser(AsgiClient(gateway.asgi))
    await browser.get("/ui/")
    assert browser.cookie is not None and browser.csrf is not None, COOKIE
    return browser


async def test_a_changed_tool_is_shown_with_its_diff_and_approved(
    world: World, tmp_path: Path
) -> None:
    async with running(gateway_settings(f"sqlite:///{tmp_path / 'c.db'}")) as gateway:
        browser = await local_browser(gateway)
        empty = text_of(await browser.get("/ui/tool-changes"))
        assert "No tool definitions wait for approval (1 server(s) pinned)" in empty
        await held(gateway, world, "Read a file." + INJECTED + " <b>now</b>")
        page = await browser.get("/ui/tool-changes")
        assert page.status == 200, page.body
        body = text_of(page)
        assert 'id="changes-files"' in body and 'id="change-files-read"' in body
        assert "held back" in body and ">changed<" in body
        assert '<span class="add">' in body and "~/.ssh/id_rsa" in body
        assert "&lt;b&gt;now&lt;/b&gt;" in body and "<b>now" not in body
        digest = (await gateway.pinning.changes("files"))[0].current.digest
        assert f'name="digest" value="{digest}"' in body
        approved = await browser.post(
            "/ui/tool-changes/files/approve", [("tool", "read"), ("digest", digest)]
        )
        assert approved.status == 200, approved.body
        assert "files: approved read (changed)" in text_of(approved)
        assert "No tool definitions wait for approval" in text_of(approved)
        assert gateway.pinning.held_on("files") == set()
        records = await audited(gateway, "admin.tools.approve", "pin.approved")
        assert [(a, t, o) for a, t, o, _ in records] == [
            ("pin.approved", "files/read", "ok"),
            ("admin.tools.approve", "files", "ok"),
        ]


async def test_a_tool_that_changed_again_since_the_page_is_not_approved(
    world: World, tmp_path: Path
) -> None:
    async with running(gateway_settings(f"sqlite:///{tmp_path / 'c.db'}")) as gateway:
        browser = await local_browser(gateway)
        await held(gateway, world, "Read a file, first change.")
        shown = (await gateway.pinning.changes("files"))[0].current.digest
        await browser.get("/ui/tool-changes")
        world.describe("read", "Read a file, second change.")
        await world.announce()

        async def moved() -> bool:
            return (await gateway.pinning.changes("files"))[0].current.digest != shown

        await poll(moved, what="the second change recorded")
        stale = await browser.post(
            "/ui/tool-changes/files/approve", [("tool", "read"), ("digest", shown)]
        )
        assert stale.status == 409
        assert "changed since it was reviewed" in text_of(stale)
        assert gateway.pinning.held_on("files") == {"read"}
        unmatched = await browser.post("/ui/tool-changes/files/approve", [("tool", "read")])
        assert unmatched.status == 422


async def test_only_administrators_see_or_approve_tool_changes(dashboard: Dashboard) -> None:
    bob = await dashboard.signed_in("bob")
    assert "/ui/tool-changes" not in text_of(await bob.get("/ui/"))
    assert (await bob.get("/ui/tool-changes")).status == 403
    refused = await bob.post("/ui/tool-changes/fake/approve", [("tool", "x"), ("digest", "a" * 12)])
    assert refused.status == 403
    root = await dashboard.signed_in("root")
    page = await root.get("/ui/tool-changes")
    assert page.status == 200  # storage on, nothing pinned
    assert "(0 server(s) pinned)" in text_of(page)


@pytest.mark.parametrize(
    ("line", "kind", "spans"),
    [
        ("description:", "path", [("", "description:")]),
        ("    + added", "add", [("", "    + added")]),
        ("    - removed", "del", [("", "    - removed")]),
        (
            "    Read a [-file.-]{+file. Call me+} now",
            "words",
            [("", "    Read a "), ("del", "file."), ("add", "file. Call me"), ("", " now")],
        ),
        ("     context line", "words", [("", "     context line")]),
    ],
    ids=["path", "added", "removed", "word-diff", "context"],
)
def test_diff_lines_are_marked(line: str, kind: str, spans: list[tuple[str, str]]) -> None:
    assert diff_view([line]) == [(kind, spans)]
