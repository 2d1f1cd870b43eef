"""The approval requests' table: the newest requests (what the dashboard's approvals page asks
for) are read through an index, newest first, not by sorting the whole table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from catalyst_mcp.storage.approvals import ApprovalRepo
from catalyst_mcp.storage.db import Database


async def plan_of_list(db: Database, status: str | None) -> str:
    """How the database runs the query of ``ApprovalRepo.list(status)``, as it was sent."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, sql: str, parameters: Any, *rest: Any) -> None:
        if "FROM rule_approvals" in sql:
            sent.append((sql, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        await ApprovalRepo(db).list(status, limit=80)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    [(sql, parameters)] = sent
    async with db.begin() as conn:
        if db.dialect == "sqlite":
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters)
            return " / ".join(str(row[-1]) for row in rows)
        # the tables are empty: tell the planner a full scan is dear, as it is on a big table
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = await conn.exec_driver_sql(f"EXPLAIN {sql}", parameters)
        return " / ".join(str(row[0]).strip() for row in rows)


async def test_the_newest_requests_are_read_through_an_index(database: Database) -> None:
    plan = await plan_of_list(database, None)
    if database.dialect == "sqlite":
        assert plan == "SCAN rule_approvals USING INDEX ix_rule_approvals_created_at"
    else:
        assert "Index Scan Backward using ix_rule_approvals_created_at" in plan
        assert "Sort" not in plan


async def test_the_newest_pending_requests_need_no_full_scan(database: Database) -> None:
    plan = await plan_of_list(database, "pending")
    assert "ix_rule_approvals_" in plan  # status or created_at: a handful of rows either way
    assert "SCAN rule_approvals /" not in f"{plan} /" and "Seq Scan" not in plan
