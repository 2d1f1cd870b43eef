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

One ``httpx2.AsyncClient`` (keep-alive, one request at a time) sends batches of modern-era
``tools/call`` to each in turn, the order rotated every round, after a warm-up of each. The
gateway's CPU time during a batch is read from ``/proc/PID/task/*/schedstat`` (nanoseconds, all
its threads: the span exporter's too), divided by the requests. The table gives the median over
rounds; targets: metrics add <= 10 µs CPU per call, tracing at 1% <= 15 µs; 100% is reported.

    .venv/bin/python bench/observability.py [--rounds 7] [--requests 3000] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
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
from packs_gateway import child_env, wait_ready
from procs import BENCH, BenchError, Processes, free_port, gateway_argv
from report import code_version

TOOL = "up__echo"
TARGETS_US = {"metrics": 10.0, "tracing 1%": 15.0}
VARIANTS: dict[str, dict[str, Any]] = {
    "off": {"metrics": {"enabled": False}},
    "metrics": {},
    "tracing 100%": {"metrics": {"enabled": False}, "telemetry": {"sample_ratio": 1.0}},
    "tracing 1%": {"metrics": {"enabled": False}, "telemetry": {"sample_ratio": 0.01}},
    "metrics + tracing 1%": {"telemetry": {"sample_ratio": 0.01}},
}


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


async def measure_hooks(
    upstream: str, sink: str, args: argparse.Namespace
) -> dict[str, list[float]]:
    """The same variants in this process, without HTTP in front: each gateway's dispatcher is
    called directly (its upstream is still the lean HTTP server), and the process's CPU time
    (every thread: the span exporter's too) per call is taken. Far less noise than the
    out-of-process figure: only the gateway's own code runs here."""
    from mcpwire import META

    from catalyst_mcp.app import Gateway
    from catalyst_mcp.observability import tracing
    from catalyst_mcp.settings import Settings

    gateways: dict[str, Gateway] = {}
    providers: dict[str, Any] = {}
    for name, extra in VARIANTS.items():
        data: dict[str, Any] = {
            "servers": {"up": {"url": upstream}},
            "packs": {"path": None},
            "audit": {"enabled": False},
            **extra,
        }
        if "telemetry" in extra:
            data["telemetry"] = {**extra["telemetry"], "otlp_endpoint": sink}
        gateway = Gateway(Settings.model_validate(data))
        await gateway.start()
        gateways[name] = gateway
        providers[name] = gateway.telemetry.tracer_provider
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": TOOL, "arguments": {"text": ECHO_TEXT}, "_meta": META},
    }

    async def drop(_: Any) -> None:
        return None

    async def batch(name: str, n: int) -> float:
        provider = providers[name]
        if provider is None:
            tracing.deactivate()
        else:
            tracing.activate(provider)
        dispatcher = gateways[name].dispatcher
        meta = message["params"]["_meta"]  # type: ignore[index]
        started = time.process_time()
        for _ in range(n):
            answer = await dispatcher.modern(message, meta, drop)
            if answer is None or "result" not in answer or answer["result"].get("isError"):
                raise BenchError(f"{name} (in process): bad answer {answer}")
        if provider is not None:  # its exports are this batch's cost, not the next one's
            await asyncio.to_thread(provider.force_flush)
        return (time.process_time() - started) / n * 1e6

    runs: dict[str, list[float]] = {name: [] for name in gateways}
    try:
        names = list(gateways)
        for name in names:
            await batch(name, args.warmup)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                runs[name].append(await batch(name, args.requests))
            line = ", ".join(f"{n} {runs[n][-1]:.1f}" for n in names)
            print(f"  in process, round {r + 1}/{args.rounds}: CPU µs/call {line}", file=sys.stderr)
    finally:
        for gateway in gateways.values():
            await gateway.stop()
    return runs


def hooks_table(runs: dict[str, list[float]]) -> tuple[str, bool]:
    ok = True
    lines = [
        "#### In process: the gateway's dispatcher called directly (no HTTP in front)",
        "",
        "| Gateway | CPU / call | added CPU / call (vs off) | target |",
        "|---|--:|--:|---|",
    ]
    for name, values in runs.items():
        extra = statistics.median(a - b for a, b in zip(values, runs["off"], strict=True))
        target = TARGETS_US.get(name)
        verdict = "reported" if name == "tracing 100%" else "-"
        if target is not None:
            ok = ok and extra <= target
            verdict = f"≤ {target:.0f} µs: **{'PASS' if extra <= target else 'MISSED'}**"
        shown = "-" if name == "off" else f"{extra:+.1f} µs"
        lines.append(f"| {name} | {statistics.median(values):.1f} µs | {shown} | {verdict} |")
    return "\n".join(lines), ok


def table(
    runs: dict[str, list[dict[str, float]]],
    requests: int,
    started: float,
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
        f"- Machine: {platform.machine()}, Python {platform.python_version()}, load average "
        f"{load[0]:.2f} at start; other processes used at most {foreign:.2f} cores during a "
        f"batch. Gateway code: {code_version()}.",
        f"- {rounds} rounds of {requests} sequential calls per gateway (lean HTTP upstream), "
        f"order rotated every round. Run time {time.monotonic() - started:.0f}s.",
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
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000, help="calls per batch")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # every process started is stopped on the way out
    load = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="catalyst-bench-obs-") as tmp:
        workdir = Path(tmp)
        procs = Processes(workdir)
        try:
            port = free_port()
            python = sys.executable
            procs.start("upstream", [python, str(BENCH / "upstream_lean.py"), "http", str(port)])
            upstream_url = f"http://127.0.0.1:{port}/mcp"
            sink_port = free_port()
            procs.start("sink", [python, str(BENCH / "otlp_sink.py"), str(sink_port)])
            urls, pids = {}, {}
            for name, extra in VARIANTS.items():
                path = config(workdir, name, upstream_url, f"http://127.0.0.1:{sink_port}", extra)
                proc = procs.start(name, gateway_argv(path), env=child_env())
                settings = json.loads(path.read_text())
                base = f"http://127.0.0.1:{settings['gateway']['port']}"
                wait_ready(proc, base)
                urls[name], pids[name] = f"{base}/mcp", proc.pid
            runs = asyncio.run(measure(urls, pids, args, procs))
            hooks = asyncio.run(measure_hooks(upstream_url, f"http://127.0.0.1:{sink_port}", args))
            time.sleep(6)  # the batching span processor exports every 5 s
            with httpx2.Client(trust_env=False) as http:
                total = http.get(f"http://127.0.0.1:{sink_port}/count").json()["spans"]
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted; stopping servers", file=sys.stderr)
            return 130
        finally:
            procs.stop_all()
    report, ok = table(runs, args.requests, started, load)
    in_process, hooks_ok = hooks_table(hooks)
    print(report)
    print()
    print(in_process)
    calls = (args.warmup + args.rounds * args.requests) * sum(
        1 for extra in VARIANTS.values() if "telemetry" in extra
    )
    print(
        f"\nThe OTLP receiver decoded {total} spans from the tracing gateways' {calls} calls "
        "(two spans per sampled call: the request's and its upstream call's)."
    )
    return 1 if args.check and not (ok and hooks_ok) else 0


if __name__ == "__main__":
    sys.exit(main())
