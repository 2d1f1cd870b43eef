"""The approvals page's reads, with and without the index on ``rule_approvals.created_at``.

    .venv/bin/python bench/approvals_list.py                  # 200, 5,000 and 20,000 decided
    .venv/bin/python bench/approvals_list.py --decided 5000 --rounds 100

For each number of decided requests (and 30 pending, the newest), two SQLite files with the
same rows (bench/dashboard_seed.py): one migrated to the latest revision, one with the index
``ix_rule_approvals_created_at`` (migration ``0006_approvals_created_index``) dropped again.
A round times, on each file in turn, what the dashboard's ``/ui/approvals`` reads: the pending
requests (``ApprovalRepo.list("pending", 200)``) then the newest requests, to find the 50
newest decided among them (``ApprovalRepo.list(None, pending + 50)``). Prints a Markdown
table (medians, and the index's ratio against the same reads without it in the same run) and
each query's plan on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dashboard_seed import seed_approvals
from sqlalchemy import select, text

from catalyst_mcp.storage.approvals import ApprovalRepo
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from catalyst_mcp.storage.rules_model import RuleApproval

PENDING = 30
RECENT = 50  # the decided requests the page shows
INDEX = "ix_rule_approvals_created_at"
USERS = [f"user{i:02}" for i in range(20)]


async def database(folder: Path, name: str, decided: int, *, index: bool) -> Database:
    db = Database(f"sqlite+aiosqlite:///{folder / name}")
    await upgrade(db)
    await seed_approvals(db, USERS, pending=PENDING, decided=decided)
    if not index:
        async with db.begin(write=True) as conn:
            await conn.execute(text(f"DROP INDEX {INDEX}"))
    return db


async def plan(db: Database) -> str:
    query = select(RuleApproval).order_by(RuleApproval.created_at.desc()).limit(RECENT)
    compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
    async with db.begin() as conn:
        rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
        return " / ".join(str(row[-1]) for row in rows)


async def page_reads(repo: ApprovalRepo) -> float:
    started = time.perf_counter()
    pending = await repo.list("pending", 200)
    newest = await repo.list(None, len(pending) + RECENT)
    assert len([a for a in newest if a.status != "pending"]) == RECENT
    return (time.perf_counter() - started) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decided", type=int, nargs="+", default=[200, 5000, 20_000])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    rows = []
    for decided in args.decided:
        folder = Path(tempfile.mkdtemp(prefix="catalyst-bench-approvals-"))
        without = await database(folder, "without.db", decided, index=False)
        with_index = await database(folder, "with.db", decided, index=True)
        try:
            for name, db in (("without", without), ("with", with_index)):
                print(f"{decided:,} decided, {name} the index: {await plan(db)}", file=sys.stderr)
            repos = {"without": ApprovalRepo(without), "with": ApprovalRepo(with_index)}
            times: dict[str, list[float]] = {"without": [], "with": []}
            for round_ in range(args.rounds + 3):
                for name, repo in repos.items():
                    took = await page_reads(repo)
                    if round_ >= 3:
                        times[name].append(took)
        finally:
            await without.close()
            await with_index.close()
        slow, fast = statistics.median(times["without"]), statistics.median(times["with"])
        rows.append((decided, slow, fast))
    print(f"### The approvals page's reads (SQLite, {PENDING} pending), {args.rounds} rounds\n")
    print("| decided requests | without the index, median ms | with it, median ms | ratio |")
    print("|--:|--:|--:|--:|")
    for decided, slow, fast in rows:
        print(f"| {decided:,} | {slow:.2f} | {fast:.2f} | {fast / slow:.2f}x |")


if __name__ == "__main__":
    asyncio.run(main())
