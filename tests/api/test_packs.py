"""``GET /packs``: each pack file served, stale or failed, with its problems at their lines."""

from __future__ import annotations

from pathlib import Path

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import Settings
from tests.api.conftest import error_of, settings, start_tools_api

GOOD = """\
pack: notes
description: A pack for the test.
connections:
  db:
    type: sql
    url: "sqlite:///{db}"
tools:
  - name: count
    description: How many notes.
    sql:
      connection: db
      statement: SELECT 1 AS n
"""


async def test_served_stale_and_failed_packs(tmp_path: Path) -> None:
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "notes.yaml").write_text(GOOD.format(db=tmp_path / "n.db"))
    (packs / "broken.yaml").write_text("pack: broken\ntools: [\n")
    api = await start_tools_api(settings(tmp_path, packs={"path": str(packs), "watch": False}))
    try:
        listing = (await api.call("GET", "/packs")).json()
        assert listing["path"] == str(packs) and listing["watching"] is False
        by_file = {p["file"]: p for p in listing["packs"]}
        assert by_file["notes.yaml"]["status"] == "ready"
        assert by_file["notes.yaml"]["name"] == "notes" and by_file["notes.yaml"]["tools"] == 1
        broken = by_file["broken.yaml"]
        assert broken["status"] == "failed" and broken["name"] is None
        problem = broken["problems"][0]
        assert problem["line"] is not None
        assert problem["text"].startswith(f"{packs / 'broken.yaml'}:{problem['line']}")
        # an invalid edit of a served pack: the last good version serves on, stale
        (packs / "notes.yaml").write_text(GOOD.format(db=tmp_path / "n.db") + "  - name: [\n")
        assert api.gateway.packs is not None
        await api.gateway.packs.reload([packs / "notes.yaml"])
        listing = (await api.call("GET", "/packs")).json()
        notes = next(p for p in listing["packs"] if p["file"] == "notes.yaml")
        assert notes["status"] == "stale" and notes["tools"] == 1 and notes["problems"]
        refused = await api.call("GET", "/packs", token="bob")
        assert refused.status == 403 and error_of(refused)["code"] == "forbidden"
    finally:
        await api.gateway.stop()


async def test_without_packs_the_list_is_empty(tmp_path: Path) -> None:
    api = await start_tools_api(settings(tmp_path))
    try:
        assert (await api.call("GET", "/packs")).json() == {
            "path": None,
            "watching": False,
            "packs": [],
        }
    finally:
        await api.gateway.stop()


def test_packs_need_no_storage() -> None:
    gateway = Gateway(
        Settings.model_validate({"packs": {"path": None}, "audit": {"enabled": False}})
    )
    route = next(r for r in gateway.api.router.routes if r.path == "/packs")
    assert route.admin and not route.needs_storage
