"""The observability benchmark's in-process driver: each variant's dispatcher called directly.

    python bench/obs_inprocess.py --upstream URL --sink URL --out FILE
        [--marker cpu|callgrind] [--go FILE] [--rounds 3] [--requests 1000] [--warmup 300]
        [--variants off,metrics,...]

Builds one gateway per variant of :data:`VARIANTS` in this process, as ``catalyst serve`` would
run it (uvloop; ``Gateway.settle_memory`` after start-up), all in front of the same lean HTTP
upstream (another process), and calls ``Dispatcher.modern`` with a ``tools/call`` of
``up__echo``: a warm-up of each variant, then ``--rounds`` rounds of ``--requests`` sequential
calls per variant, the order rotated every round. Tracing variants export over OTLP/HTTP to
``--sink`` (``otlp_sink.py``, its own process); each batch ends with a flush of the exporter, so
the export work is charged to the batch that made it. ``random`` is seeded before every batch:
the same trace ids, hence the same calls sampled, in every round and every run.

A *marker* before and after each batch (and after its flush) reads the cost:

* ``cpu``: the process's CPU time, user + system and user alone (every thread: the exporter's
  too);
* ``callgrind``: a call of ``os.getppid()``. Run under ``valgrind --tool=callgrind
  --dump-before=getppid``, each marker writes a dump of the instructions executed since the one
  before (every thread), so each dump holds exactly one stretch between markers: a batch, its
  flush, or what is not measured. With ``--go FILE`` the driver prints ``ready`` after the
  warm-up and waits for FILE to exist, so that the parent can switch valgrind's instrumentation
  on (``callgrind_control -i on``) only then (``--instr-atstart=no``): start-up and warm-up run
  at valgrind's uninstrumented speed.

``--out`` receives JSON: ``{"batches": [...], "markers": [...]}``; a batch is ``{"variant",
"round", "calls", "sampled", "cpu_s", "user_s"}`` (``sampled``: calls whose trace was recorded,
from the sink's span count, two spans each), ``markers`` names, in order, what each marker
closed: ``"VARIANT#ROUND"`` (a batch), ``"VARIANT#ROUND/export"`` (its flush), or null.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mcpwire import ECHO_TEXT, META

TOOL = "up__echo"
TARGETS_US = {"metrics": 10.0, "tracing 1%": 15.0}
VARIANTS: dict[str, dict[str, Any]] = {
    "off": {"metrics": {"enabled": False}},
    "metrics": {},
    "tracing 100%": {"metrics": {"enabled": False}, "telemetry": {"sample_ratio": 1.0}},
    "tracing 1%": {"metrics": {"enabled": False}, "telemetry": {"sample_ratio": 0.01}},
    "metrics + tracing 1%": {"telemetry": {"sample_ratio": 0.01}},
}
SEED = 20260728
# A gateway's background loops that have nothing to do with a call and wake on wall-clock
# timers (under valgrind a batch lasts 50 times as long, so they would wake 50 times as often
# per call): stopped once every gateway has started. Pack watching is off in the settings.
BACKGROUND = frozenset(
    {"MetricsWindow._every", "RuleSet._refresh", "Access._refresh", "Pinning._poll"}
)


def sink_spans(sink: str) -> int:
    with urllib.request.urlopen(f"{sink}/count", timeout=10) as answer:
        return int(json.loads(answer.read())["spans"])


def cpu_now() -> tuple[float, float]:
    """(user + system, user) CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_utime


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    from catalyst_mcp.app import Gateway
    from catalyst_mcp.deadlines import deadlines
    from catalyst_mcp.observability import tracing
    from catalyst_mcp.settings import Settings

    # The call time limits' ticker wakes every 50 ms of wall-clock time (once per ~500 calls
    # natively, every few calls under valgrind): no limit is reached here, so it sleeps on.
    deadlines.tick = 3600.0

    gateways: dict[str, Gateway] = {}
    for name in args.variants.split(","):
        extra = VARIANTS[name]
        data: dict[str, Any] = {
            # no liveness probes: nothing but the measured calls runs during a batch
            "servers": {"up": {"url": args.upstream, "ping_interval_seconds": 0}},
            "packs": {"path": None, "watch": False},
            "audit": {"enabled": False},
            **extra,
        }
        if "telemetry" in extra:
            data["telemetry"] = {**extra["telemetry"], "otlp_endpoint": args.sink}
        gateway = Gateway(Settings.model_validate(data))
        await gateway.start()
        gateways[name] = gateway
    for task in asyncio.all_tasks():
        if getattr(task.get_coro(), "__qualname__", "") in BACKGROUND:
            task.cancel()
    await asyncio.sleep(0)
    Gateway.settle_memory()  # as catalyst serve does after start-up
    message: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": TOOL, "arguments": {"text": ECHO_TEXT}, "_meta": META},
    }
    meta = message["params"]["_meta"]
    markers: list[str | None] = []
    callgrind = args.marker == "callgrind"

    def mark(label: str | None) -> tuple[float, float]:
        if callgrind:
            os.getppid()  # --dump-before=getppid: a dump of everything since the last marker
            markers.append(label)
        return cpu_now()

    async def drop(_: Any) -> None:
        return None

    async def batch(name: str, n: int, label: str | None) -> dict[str, Any]:
        gateway = gateways[name]
        provider = gateway.telemetry.tracer_provider
        if provider is None:
            tracing.deactivate()
        else:
            tracing.activate(provider)
        dispatcher = gateway.dispatcher
        spans = sink_spans(args.sink) if provider is not None else 0
        random.seed(SEED)
        started = mark(None)
        for _ in range(n):
            answer = await dispatcher.modern(message, meta, drop)
            if answer is None or "result" not in answer or answer["result"].get("isError"):
                raise SystemExit(f"{name}: bad answer {answer}")
        mark(label)
        if provider is not None:  # its exports are this batch's cost, not the next one's
            provider.force_flush()
        ended = mark(None if label is None else f"{label}/export")
        sampled = (sink_spans(args.sink) - spans) // 2 if provider is not None else 0
        return {
            "variant": name,
            "calls": n,
            "sampled": sampled,
            "cpu_s": ended[0] - started[0],
            "user_s": ended[1] - started[1],
        }

    batches: list[dict[str, Any]] = []
    try:
        names = list(gateways)
        for name in names:
            await batch(name, args.warmup, None)
        if args.go is not None:  # the parent switches instrumentation on now
            print("ready", flush=True)
            while not args.go.exists():
                await asyncio.sleep(0.02)
            markers.clear()  # the warm-up's markers wrote no dumps (nothing was instrumented)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                n = (
                    args.requests_100
                    if name == "tracing 100%" and args.requests_100
                    else args.requests
                )
                batches.append({**await batch(name, n, f"{name}#{r}"), "round": r})
            line = ", ".join(
                f"{b['variant']} {b['cpu_s'] / b['calls'] * 1e6:.1f}"
                for b in batches[-len(names) :]
            )
            print(
                f"  in process ({args.marker}), round {r + 1}/{args.rounds}: µs/call {line}",
                file=sys.stderr,
            )
    finally:
        for gateway in gateways.values():
            await gateway.stop()
    return {"batches": batches, "markers": markers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the lean upstream's MCP URL")
    parser.add_argument("--sink", required=True, help="the OTLP receiver's base URL")
    parser.add_argument("--out", required=True, type=Path, help="where the JSON result goes")
    parser.add_argument("--marker", choices=("cpu", "callgrind"), default="cpu")
    parser.add_argument("--go", type=Path, help="after the warm-up, wait for this file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument(
        "--requests-100", type=int, help="calls per batch of tracing 100%% (default: --requests)"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        result = asyncio.run(drive(args))
    else:
        result = uvloop.run(drive(args))
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
