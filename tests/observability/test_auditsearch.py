"""Searching and exporting the audit trail."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from catalyst_mcp.observability.audit import AuditLog, export, search
from catalyst_mcp.storage.db import Database
from tests.observability.conftest import event_, write


async def test_search_filters(db: Database) -> None:
    async with AuditLog(db) as log:
        log.record(event_(1, actor="alice", target="github__create_issue"))
        log.record(event_(2, actor="bob", target="github_x_issue", outcome="denied"))
        log.record(event_(3, actor="alice", action="resources/read", target="file:///a%b"))
        log.record(event_(4, actor="carol", action="admin.users.create", target="dave"))
    assert [r["seq"] for r in await search(db, actor="alice")] == [1, 3]
    assert [r["seq"] for r in await search(db, outcome="denied")] == [2]
    assert [r["seq"] for r in await search(db, action="admin.users.create")] == [4]
    assert [r["seq"] for r in await search(db, target="github__*")] == [1]  # "_" is literal
    assert [r["seq"] for r in await search(db, target="github?x*")] == [2]
    assert [r["seq"] for r in await search(db, target="file:///a%b")] == [3]
    assert [r["seq"] for r in await search(db, target="*%*")] == [3]
    assert [r["seq"] for r in await search(db, limit=2)] == [1, 2]
    assert [r["seq"] for r in await search(db, limit=2, after_seq=2)] == [3, 4]
    assert [r["seq"] for r in await search(db, limit=2, newest_first=True)] == [4, 3]
    assert [r["seq"] for r in await search(db, newest_first=True, after_seq=3)] == [2, 1]
    assert await search(db, actor="alice", outcome="denied") == []


async def test_search_by_time(db: Database) -> None:
    await write(db, 3)
    found = await search(db)
    middle = datetime.fromisoformat(found[1]["at"])
    assert [r["seq"] for r in await search(db, since=middle)] == [2, 3]
    assert [r["seq"] for r in await search(db, until=middle)] == [1]
    naive = middle.replace(tzinfo=None)
    assert [r["seq"] for r in await search(db, since=naive)] == [2, 3]
    elsewhere = middle.astimezone(timezone(timedelta(hours=5)))
    assert [r["seq"] for r in await search(db, since=elsewhere)] == [2, 3]
    later = datetime.now(UTC) + timedelta(days=1)
    assert await search(db, since=later) == []


async def test_export_writes_json_lines_with_filters(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalyst_mcp.observability import auditsearch

    monkeypatch.setattr(auditsearch, "EXPORT_BATCH", 4)
    await write(db, 11)
    stream = io.StringIO()
    assert await export(db, stream, actor="alice") == 6
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == [1, 3, 5, 7, 9, 11]
    assert set(lines[0]) == {
        "v",
        "seq",
        "at",
        "actor",
        "actor_kind",
        "action",
        "target",
        "outcome",
        "latency_ms",
        "detail",
        "prev_hash",
        "hash",
    }
    everything = io.StringIO()
    assert await export(db, everything) == 11
