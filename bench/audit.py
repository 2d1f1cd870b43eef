"""What auditing costs: ``AuditLog.record()`` on the hot path, and records committed per second.

    .venv/bin/python bench/audit.py                  # SQLite file in a temporary folder
    .venv/bin/python bench/audit.py --records 200000 --url postgresql://postgres@127.0.0.1/test

* record(): median nanoseconds per call over samples of 1,000 calls (the writer not running,
  so only the caller's cost is measured); digest_arguments() for a typical 3-argument call.
* PostgreSQL (``--url``): everything happens in a fresh schema, dropped at the end.
* throughput: N records recorded as fast as the loop allows (yielding every 100), then
  ``flush()``; records/s = N / (time until the last one is committed), per batch size.

Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from catalyst_mcp.observability.audit import AuditEvent, AuditLog, digest_arguments, verify
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade

ARGUMENTS = {"repo": "octo/hello", "title": "Crash on start", "labels": ["bug", "p1"]}
SAMPLE = 1000


def event(n: int) -> AuditEvent:
    detail = {"request_id": n, "arguments": {"repo": {"hmac-sha256": "ab" * 32}}}
    return AuditEvent("alice", "user", "tools/call", "github__create_issue", "ok", 1.25, detail)


def median_ns(samples: list[int]) -> float:
    return statistics.median(samples) / SAMPLE


def record_cost(db: Database, rounds: int) -> float:
    log = AuditLog(db, max_queue=SAMPLE * rounds + 1)
    events = [event(n) for n in range(SAMPLE)]
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for item in events:
            log.record(item)
        samples.append(time.perf_counter_ns() - start)
    return median_ns(samples)


def digest_cost(rounds: int) -> float:
    key = b"k" * 32
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(SAMPLE):
            digest_arguments(ARGUMENTS, frozenset({"repo"}), key=key)
        samples.append(time.perf_counter_ns() - start)
    return median_ns(samples)


async def throughput(db: Database, records: int, batch_size: int) -> float:
    async with AuditLog(db, batch_size=batch_size, max_queue=records + 1) as log:
        start = time.perf_counter()
        for n in range(records):
            log.record(event(n))
            if n % 100 == 0:
                await asyncio.sleep(0)
        await log.flush()
        return records / (time.perf_counter() - start)


@contextlib.asynccontextmanager
async def database(url: str | None) -> AsyncIterator[Database]:
    """A migrated database: a temporary SQLite file, or a fresh schema at a PostgreSQL URL."""
    if url is None:
        with tempfile.TemporaryDirectory() as folder:
            db = Database(f"sqlite:///{Path(folder) / 'audit.db'}")
            try:
                await upgrade(db)
                yield db
            finally:
                await db.close()
        return
    import asyncpg

    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    schema = f"catalyst_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(plain)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        db = Database(url, connect_args={"server_settings": {"search_path": schema}})
        try:
            await upgrade(db)
            yield db
        finally:
            await db.close()
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def main(url: str | None, records: int) -> None:
    async with database(url) as db:
        rows = [
            ("record() per call", f"{record_cost(db, 50):,.0f} ns"),
            ("digest_arguments() (3 arguments)", f"{digest_cost(20):,.0f} ns"),
        ]
        for batch in (50, 200, 1000):
            rate = await throughput(db, records, batch)
            rows.append((f"committed, batch_size={batch}", f"{rate:,.0f} records/s"))
        start = time.perf_counter()
        report = await verify(db)
        rate = report.records / (time.perf_counter() - start)
        rows.append((f"verify() over {report.records:,} records", f"{rate:,.0f} records/s"))
    print(f"audit trail on {db.dialect}, {records:,} records per throughput run\n")
    print("| measure | value |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="records per run")
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    options = parser.parse_args()
    asyncio.run(main(options.url, options.records))
