"""What a workflow adds per step over calling its steps one by one, through the same gateway.

One gateway (default settings: the audit trail on, runs in a SQLite file in a temporary state
folder) serves an in-process ``echo`` tool and two 5-step workflows of it:

* ``echo5``: five sequential ``bench__echo`` steps, each ``retry_safe`` (an echo may run again:
  its end is written behind, in the next batch of the store's writer);
* ``echo5_durable``: the same steps without ``retry_safe`` (each step's end is committed before
  the next step starts).

Both sides enter the gateway the same way, through ``Dispatcher.direct`` (the REST API's and the
workflow engine's own entry: authorization, rate limits, audit, metrics around every call):

* **one by one**: five ``tools/call`` of ``bench__echo``, each templated from the last result
  as a workflow step would be;
* **workflow**: one ``tools/call`` of ``workflows__echo5`` (its run recorded and committed before
  it answers).

Rounds alternate the sides after a warm-up; each batch times ``--calls`` iterations. The table
gives the median of the round medians, and the overhead per step: (workflow - one by one) / 5.
The target is at most 0.2 ms per step.

    .venv/bin/python bench/workflows.py [--rounds 7] [--calls 300] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.settings import Settings

TARGET_MS = 0.2
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
    return statistics.median(times)


async def measure(rounds: int, calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="catalyst-bench-wf-") as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        (folder / "echo5.yaml").write_text(workflow("echo5", True))
        (folder / "echo5_durable.yaml").write_text(workflow("echo5_durable", False))
        settings = Settings.model_validate(
            {
                "packs": {"path": None},
                "storage": {"url": f"sqlite+aiosqlite:///{tmp}/state/catalyst.db"},
                "workflows": {"path": str(folder), "watch": False},
            }
        )
        gateway = Gateway(settings, [Echo()])
        await gateway.start()
        try:
            sides = {
                "one by one": lambda: one_by_one(gateway),
                "workflow": lambda: as_workflow(gateway, "echo5"),
                "workflow (durable steps)": lambda: as_workflow(gateway, "echo5_durable"),
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
            batches = gateway.workflows.store.batches
        finally:
            await gateway.stop()
    result = {side: statistics.median(values) for side, values in medians.items()}
    base = result["one by one"]
    return {
        "ms": result,
        "per_step_ms": {
            side: (ms - base) / STEPS for side, ms in result.items() if side != "one by one"
        },
        "writer_batches": batches,
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
        ok = "ok" if per_step <= TARGET_MS else "MISSED"
        lines.append(
            f"| {side} | {numbers['ms'][side]:.3f} | {per_step:+.3f} | <= {TARGET_MS} {ok} |"
        )
    lines.append("")
    lines.append(f"store writer batches committed: {numbers['writer_batches']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    options = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    numbers = runner(measure(options.rounds, options.calls))
    print(report(numbers))
    if options.json:
        options.json.write_text(json.dumps(numbers, indent=2))
    if options.check and numbers["per_step_ms"]["workflow"] > TARGET_MS:
        sys.exit(1)


if __name__ == "__main__":
    main()
