"""What a workflow adds per step over calling its steps one by one, through the same gateway.

One gateway (default settings: the audit trail on, runs in a SQLite file in a temporary state
folder, ``workflows.synchronous: normal``) serves an in-process ``echo`` tool and two 5-step
workflows of it:

* ``echo5``: five sequential ``bench__echo`` steps, each ``retry_safe`` (an echo may run again:
  its end is written behind, after the run answered);
* ``echo5_durable``: the same steps without ``retry_safe`` (each step's end is committed before
  the next step starts, the last one's with the run's end: five commits per run).

A second gateway, the same but with ``workflows.synchronous: full`` (every commit synced to the
disk), serves ``echo5_durable`` too: its row is information, with no target.

Both sides enter the gateway the same way, through ``Dispatcher.direct`` (the REST API's and the
workflow engine's own entry: authorization, rate limits, audit, metrics around every call):

* **one by one**: five ``tools/call`` of ``bench__echo``, each templated from the last result
  as a workflow step would be;
* **workflow**: one ``tools/call`` of ``workflows__echo5`` (or ``echo5_durable``).

After each call the benchmark yields to the event loop once, untimed, so that the background
work a call leaves (the audit writer's batches, the run store's writes behind, its WAL
checkpoints) runs between calls as it does between requests in a server, for every side alike.
Rounds alternate the sides after a warm-up; each batch times ``--calls`` iterations. The table
gives the median of the round medians, and the overhead per step: (workflow - one by one) / 5.
The target is at most 0.2 ms per step, for plain and durable steps.

``--postgres URL`` (an admin connection, e.g. ``postgresql://postgres@127.0.0.1:5432/test``)
runs the gateways on a scratch PostgreSQL database created and dropped by the benchmark.

    .venv/bin/python bench/workflows.py [--rounds 7] [--calls 300] [--postgres URL] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from sqlalchemy.engine import make_url

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.settings import Settings

TARGET_MS = 0.2
DURABLE_FULL = "workflow (durable steps, synchronous: full)"
STEPS = 5
CALLER = Identity(subject="bench", kind="user", roles=("admin",), via="api_key")


class Echo(Provider):
    """``bench__echo``: answers its ``text`` as text and structured content."""

    def __init__(self) -> None:
        super().__init__("bench", "bench")

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        return [{"name": "echo", "inputSchema": schema}] if kind == "tools" else []

    def health(self) -> dict[str, Any]:
        return {"name": self.name, "status": "ready"}

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        text = (params.get("arguments") or {}).get("text", "")
        return {"content": [{"type": "text", "text": text}], "structuredContent": {"text": text}}


def workflow(name: str, retry_safe: bool) -> str:
    steps = [
        f"  - {{id: s1, tool: bench__echo, arguments: {{text: hi}}, retry_safe: {retry_safe}}}"
    ]
    for i in range(2, STEPS + 1):
        steps.append(
            f"  - {{id: s{i}, tool: bench__echo, "
            f'arguments: {{text: "${{steps.s{i - 1}.result.text}}"}}, retry_safe: {retry_safe}}}'
        )
    return f"name: {name}\nsteps:\n" + "\n".join(steps) + "\n"


async def one_by_one(gateway: Gateway) -> None:
    text = "hi"
    for _ in range(STEPS):
        result = await gateway.dispatcher.direct(
            "tools/call", {"name": "bench__echo", "arguments": {"text": text}}, CALLER
        )
        text = result["structuredContent"]["text"]


async def as_workflow(gateway: Gateway, name: str) -> None:
    result = await gateway.dispatcher.direct(
        "tools/call", {"name": f"workflows__{name}", "arguments": {}}, CALLER
    )
    assert result["structuredContent"] == {"text": "hi"}, result


async def batch(calls: int, once: Any) -> float:
    """Median ms of ``calls`` sequential runs of ``once``."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        await once()
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0)  # the background work the call left, as between requests
    return statistics.median(times)


@contextlib.asynccontextmanager
async def scratch_database(tmp: str, name: str, postgres: str | None) -> AsyncIterator[str]:
    """A database URL for one gateway: a SQLite file, or a new PostgreSQL database."""
    if postgres is None:
        yield f"sqlite+aiosqlite:///{tmp}/{name}/catalyst.db"
        return
    import asyncpg

    admin_url = make_url(postgres).set(drivername="postgresql")
    database = f"catalyst_bench_wf_{name}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url.render_as_string(hide_password=False))
    try:
        await admin.execute(f"CREATE DATABASE {database}")
        yield admin_url.set(drivername="postgresql+asyncpg", database=database).render_as_string(
            hide_password=False
        )
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await admin.close()


@contextlib.asynccontextmanager
async def started_gateway(url: str, folder: Path, synchronous: str) -> AsyncIterator[Gateway]:
    settings = Settings.model_validate(
        {
            "packs": {"path": None},
            "storage": {"url": url},
            "workflows": {"path": str(folder), "watch": False, "synchronous": synchronous},
        }
    )
    gateway = Gateway(settings, [Echo()])
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


async def measure(rounds: int, calls: int, postgres: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="catalyst-bench-wf-") as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        (folder / "echo5.yaml").write_text(workflow("echo5", True))
        (folder / "echo5_durable.yaml").write_text(workflow("echo5_durable", False))
        async with (
            scratch_database(tmp, "normal", postgres) as normal_url,
            scratch_database(tmp, "full", postgres) as full_url,
            started_gateway(normal_url, folder, "normal") as gateway,
            started_gateway(full_url, folder, "full") as full,
        ):
            sides = {
                "one by one": lambda: one_by_one(gateway),
                "workflow": lambda: as_workflow(gateway, "echo5"),
                "workflow (durable steps)": lambda: as_workflow(gateway, "echo5_durable"),
                DURABLE_FULL: lambda: as_workflow(full, "echo5_durable"),
            }
            for once in sides.values():  # warm-up
                await batch(max(20, calls // 5), once)
            medians: dict[str, list[float]] = {side: [] for side in sides}
            order = list(sides)
            for _ in range(rounds):
                for side in order:
                    medians[side].append(await batch(calls, sides[side]))
                order.reverse()
            assert gateway.workflows is not None
            store = gateway.workflows.store
            writes = {
                "batches": store.batches,
                "busy": store.sqlite.busy if store.sqlite else None,
                "checkpoints": store.sqlite.checkpoints if store.sqlite else None,
            }
    result = {side: statistics.median(values) for side, values in medians.items()}
    base = result["one by one"]
    return {
        "database": "postgresql" if postgres else "sqlite",
        "ms": result,
        "per_step_ms": {
            side: (ms - base) / STEPS for side, ms in result.items() if side != "one by one"
        },
        "writer": writes,
        "rounds": rounds,
        "calls": calls,
    }


def report(numbers: dict[str, Any]) -> str:
    base = numbers["ms"]["one by one"]
    lines = [
        f"workflows: {STEPS} sequential echo steps, median of {numbers['rounds']} round medians "
        f"of {numbers['calls']} calls (Python {platform.python_version()}, {os.cpu_count()} CPUs)",
        "",
        "| side | ms per 5 steps | added per step (ms) | target |",
        "|---|---|---|---|",
        f"| one by one (5 x tools/call) | {base:.3f} | - | - |",
    ]
    for side, per_step in numbers["per_step_ms"].items():
        if side == DURABLE_FULL:
            target = "(information)"
        else:
            target = f"<= {TARGET_MS} {'ok' if per_step <= TARGET_MS else 'MISSED'}"
        lines.append(f"| {side} | {numbers['ms'][side]:.3f} | {per_step:+.3f} | {target} |")
    writer = numbers["writer"]
    lines.append("")
    lines.append(
        f"runs in {numbers['database']}; the first gateway's store committed "
        f"{writer['batches']} batches"
        + (
            f" (write lock found taken {writer['busy']} times, {writer['checkpoints']} WAL "
            "checkpoints)"
            if writer["busy"] is not None
            else ""
        )
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on PostgreSQL: an admin URL; a scratch database is created and dropped",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a side with a target misses it"
    )
    options = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    numbers = runner(measure(options.rounds, options.calls, options.postgres))
    print(report(numbers))
    if options.json:
        options.json.write_text(json.dumps(numbers, indent=2))
    checked = ("workflow", "workflow (durable steps)")
    if options.check and any(numbers["per_step_ms"][side] > TARGET_MS for side in checked):
        sys.exit(1)


if __name__ == "__main__":
    main()
