"""What metrics and tracing add to a gateway ``tools/call``, in one run.

Gateways in front of the same lean HTTP upstream (``upstream_lean.py``: its cost is near zero,
so what differs is the gateway's), differing only in observability:

* **off**: ``metrics.enabled: false``, no tracing (logs as always: the request's log context
  is set either way);
* **metrics**: ``/metrics`` on (the default), scraped once per round;
* **tracing 100%**: metrics off, traces exported over OTLP/HTTP to a local receiver
  (``otlp_sink.py``, its own process, decoding every export) with ``sample_ratio: 1.0``;
* **tracing 1%**: the same with ``sample_ratio: 0.01``;
* **metrics + tracing 1%** (info): what a production setting costs.

Three measurements, each with a table:

1. **Out of process** (realistic, noisy): one ``httpx2.AsyncClient`` (keep-alive, one request
   at a time) sends batches of modern-era ``tools/call`` to a ``catalyst serve`` per variant in
   turn, the order rotated every round, after a warm-up of each. The gateway's CPU time during
   a batch is read from ``/proc/PID/task/*/schedstat`` (nanoseconds, all its threads: the span
   exporter's too), divided by the requests.
2. **In process, CPU time**: ``obs_inprocess.py`` builds the same variants in one process and
   calls each dispatcher directly (the upstream still over HTTP); CPU time per call.
3. **In process, instructions** (load-independent): the same driver under valgrind's callgrind
   (``obs_instructions.py``); instructions per call, converted to µs with the off variant's
   instructions per µs of CPU in run 2. This is the figure to judge the targets by on a busy
   machine: it does not move with what else runs.

Tables give medians over rounds of (variant - off) in the same round; targets: metrics add
<= 10 µs CPU per call, tracing at 1% <= 15 µs; 100% is reported. ``--check`` exits 1 when the
instruction figure (the in-process CPU figure with ``--no-instructions``) misses a target.

    .venv/bin/python bench/observability.py [--rounds 5] [--requests 2000]
        [--callgrind-rounds 2] [--callgrind-requests 1000] [--no-instructions] [--keep DIR]
        [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx2
from mcpwire import ECHO_TEXT, call_body, call_headers
from measure import CpuWatch
from obs_inprocess import TARGETS_US, TOOL, VARIANTS
from obs_instructions import (
    Plan,
    cpu_per_call,
    cpu_table,
    instructions_table,
    per_call,
    run_callgrind,
    run_cpu,
    start_sink,
)
from packs_gateway import child_env, wait_ready
from procs import BENCH, BenchError, Processes, free_port, gateway_argv
from report import code_version


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in nanoseconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total


def config(workdir: Path, name: str, upstream: str, sink: str, extra: dict[str, Any]) -> Path:
    port = free_port()
    settings: dict[str, Any] = {
        "gateway": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
        "servers": {"up": {"url": upstream}},
        "packs": {"path": None},
        "audit": {"enabled": False},
        "log": {"format": "json"},
    }
    for section, values in extra.items():
        settings[section] = {**settings.get(section, {}), **values}
    if "sample_ratio" in settings.get("telemetry", {}):
        settings["telemetry"]["otlp_endpoint"] = sink
    path = workdir / f"{name.replace(' ', '-').replace('%', 'pct').replace('+', 'and')}.yaml"
    path.write_text(json.dumps(settings, indent=2))
    return path


async def measure(
    urls: dict[str, str], pids: dict[str, int], args: argparse.Namespace, procs: Processes
) -> dict[str, list[dict[str, float]]]:
    body = call_body(TOOL)
    headers = call_headers(TOOL)
    watch = CpuWatch()
    watch.track(procs)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    async with httpx2.AsyncClient(timeout=10.0, trust_env=False) as http:

        async def batch(name: str, n: int) -> dict[str, float]:
            url, pid = urls[name], pids[name]
            latencies = []
            snapshot = watch.snapshot()
            before = cpu_ns(pid)
            for _ in range(n):
                started = time.perf_counter()
                response = await http.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or ECHO_TEXT.encode() not in response.content:
                    raise BenchError(f"{name}: bad answer {response.status_code}")
            used = (cpu_ns(pid) - before) / n / 1000
            return {
                "cpu_us": used,
                "median_ms": statistics.median(latencies) * 1000,
                "foreign": watch.foreign(snapshot, watch.snapshot()),
            }

        for name in urls:
            await batch(name, args.warmup)
        names = list(urls)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                runs[name].append(await batch(name, args.requests))
            if "metrics" in urls:  # a scrape per round, as Prometheus would
                scraped = await http.get(urls["metrics"].replace("/mcp", "/metrics"))
                if b"catalyst_tool_calls_total" not in scraped.content:
                    raise BenchError("metrics: /metrics lacks catalyst_tool_calls_total")
            line = ", ".join(f"{n} {runs[n][-1]['cpu_us']:.0f}" for n in names)
            print(f"  round {r + 1}/{args.rounds}: CPU µs/call {line}", file=sys.stderr)
    return runs


def table(
    runs: dict[str, list[dict[str, float]]],
    requests: int,
    load: tuple[float, ...],
) -> tuple[str, bool]:
    def med(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    def added(name: str) -> float:
        return statistics.median(
            on["cpu_us"] - off["cpu_us"] for on, off in zip(runs[name], runs["off"], strict=True)
        )

    foreign = max(run["foreign"] for all_runs in runs.values() for run in all_runs)
    rounds = len(runs["off"])
    lines = [
        "### Catalyst observability — what metrics and tracing add to tools/call",
        "",
        "#### Out of process: catalyst serve behind HTTP, CPU time",
        "",
        f"- Machine: {platform.machine()}, Python {platform.python_version()}, load average "
        f"{load[0]:.2f} at start; other processes used at most {foreign:.2f} cores during a "
        f"batch. Gateway code: {code_version()}.",
        f"- {rounds} rounds of {requests} sequential calls per gateway (lean HTTP upstream), "
        "order rotated every round.",
        "",
        "| Gateway | gateway CPU / call | added CPU / call (vs off) | median latency | target |",
        "|---|--:|--:|--:|---|",
    ]
    ok = True
    for name in runs:
        extra = added(name) if name != "off" else 0.0
        target = TARGETS_US.get(name)
        verdict = "-"
        if target is not None:
            passed = extra <= target
            ok = ok and passed
            verdict = f"≤ {target:.0f} µs: **{'PASS' if passed else 'MISSED'}**"
        elif name == "tracing 100%":
            verdict = "reported"
        lines.append(
            f"| {name} | {med(name, 'cpu_us'):.1f} µs | "
            f"{'-' if name == 'off' else f'{extra:+.1f} µs'} | {med(name, 'median_ms'):.3f} ms | "
            f"{verdict} |"
        )
    lines.append("")
    lines.append("Added CPU is the median over rounds of (variant - off) in the same round.")
    return "\n".join(lines), ok


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the CPU-time runs")
    parser.add_argument("--requests", type=int, default=2000, help="calls per CPU-time batch")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--callgrind-rounds", type=int, default=2)
    parser.add_argument("--callgrind-requests", type=int, default=1000)
    parser.add_argument("--no-instructions", action="store_true", help="skip the callgrind run")
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps in this folder")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # every process started is stopped on the way out
    load = os.getloadavg()
    started = time.monotonic()
    counted: dict[str, Any] | None = None
    skipped: str | None = None
    with tempfile.TemporaryDirectory(prefix="catalyst-bench-obs-") as tmp:
        workdir = Path(tmp)
        procs = Processes(workdir)
        try:
            port = free_port()
            python = sys.executable
            procs.start("upstream", [python, str(BENCH / "upstream_lean.py"), "http", str(port)])
            upstream_url = f"http://127.0.0.1:{port}/mcp"
            sink = start_sink(procs, "sink")
            urls, pids = {}, {}
            for name, extra in VARIANTS.items():
                path = config(workdir, name, upstream_url, sink, extra)
                proc = procs.start(name, gateway_argv(path), env=child_env())
                settings = json.loads(path.read_text())
                base = f"http://127.0.0.1:{settings['gateway']['port']}"
                wait_ready(proc, base)
                urls[name], pids[name] = f"{base}/mcp", proc.pid
            runs = asyncio.run(measure(urls, pids, args, procs))
            time.sleep(6)  # the batching span processor exports every 5 s
            with httpx2.Client(trust_env=False) as http:
                total = http.get(f"{sink}/count").json()["spans"]
            # in process: a receiver of their own (the driver counts what it samples there)
            inner = start_sink(procs, "sink-inprocess")
            plan = Plan(args.rounds, args.requests, args.warmup)
            cpu = cpu_per_call(run_cpu(upstream_url, inner, workdir, plan))
            skipped = "--no-instructions" if args.no_instructions else None
            if skipped is None and shutil.which("valgrind") is None:
                skipped = "valgrind is not installed (apt-get install valgrind)"
            if skipped is None:
                plan = Plan(args.callgrind_rounds, args.callgrind_requests, 300)
                counted = run_callgrind(upstream_url, inner, workdir, plan, args.keep)
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted; stopping servers", file=sys.stderr)
            return 130
        finally:
            procs.stop_all()
    report, _ = table(runs, args.requests, load)
    in_process, cpu_ok = cpu_table(cpu)
    print(report)
    calls = (args.warmup + args.rounds * args.requests) * sum(
        1 for extra in VARIANTS.values() if "telemetry" in extra
    )
    print(
        f"\nThe OTLP receiver decoded {total} spans from the tracing gateways' {calls} calls "
        "(two spans per sampled call: the request's and its upstream call's)."
    )
    print()
    print(in_process)
    ok = cpu_ok
    if counted is None:
        print(f"\nNo instruction table: {skipped}; targets judged by CPU time in process.")
    else:
        instructions, ok = instructions_table(per_call(counted), cpu, counted["seconds"])
        print()
        print(instructions)
    print(
        f"\nRun time {time.monotonic() - started:.0f} s in all; load average "
        f"{os.getloadavg()[0]:.2f} at the end."
    )
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
