"""Measurement runs: latency and throughput of one target, CPU per request, and other load.

``run_rounds`` warms every target up, then runs the latency and throughput measurements of each
direct/gateway pair in interleaved rounds. ``guarded`` runs every measurement on a quiet machine
and repeats it when other processes (``CpuWatch``: CPU the benchmark did not use) disturbed it.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from mcpwire import call_body
from procs import BENCH, ROOT, BenchError, Processes, Target, cpu_seconds, descendants_of, memory_mb

# ---- other work on the machine ----------------------------------------------------------------


class CpuWatch:
    """How much CPU the rest of the machine used while we measured (other people's work).

    Machine busy time (user, nice, system and steal from /proc/stat) minus the CPU of every
    process this benchmark runs: the servers and their stdio children (from /proc/PID/stat),
    plus this process and the load generators it has reaped (getrusage). Loopback softirq time
    is left out on both sides, so the figure is interference, in cores.
    """

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.tick = os.sysconf("SC_CLK_TCK")

    def track(self, procs: Processes) -> None:
        pids = set()
        for proc in procs.procs:
            pids.add(proc.pid)
            pids.update(pid for pid, _ in descendants_of(proc.pid))
        self.pids = sorted(pids)

    def snapshot(self) -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        busy = (fields[0] + fields[1] + fields[2] + fields[7]) / self.tick
        ours = sum(v for pid in self.pids if (v := cpu_seconds(pid)) == v)  # skip NaN: gone
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            ours += usage.ru_utime + usage.ru_stime
        return time.monotonic(), busy, ours

    @staticmethod
    def foreign(start: tuple[float, float, float], end: tuple[float, float, float]) -> float:
        elapsed = max(end[0] - start[0], 1e-9)
        return max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / elapsed


# ---- measurements -----------------------------------------------------------------------------


@dataclass
class Settings:
    rounds: int
    duration: float
    warmup_seconds: float
    connections: int
    latency_requests: int
    latency_warmup: int
    loadgen: str  # "wrk" | "python"
    max_foreign: float  # cores of other work tolerated during a run before it is repeated
    retries: int
    retry_budget: float  # seconds the repeats (and waits before them) may take in total
    watch: CpuWatch = field(default_factory=CpuWatch)
    repeated: int = 0
    waited: int = 0


def measure_latency(target: Target, cfg: Settings) -> dict[str, Any]:
    n, warm = cfg.latency_requests, cfg.latency_warmup
    if target.driver is not None:
        result = target.driver.command(f"lat {n} {warm} {target.tool}", 120)
    else:
        argv = [
            sys.executable,
            str(BENCH / "clients.py"),
            "http-lat",
            target.url,
            target.tool,
            str(n),
            str(warm),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=ROOT)
        if done.returncode != 0:
            raise BenchError(f"latency client failed on {target.key}: {done.stderr[-2000:]}")
        result = json.loads(done.stdout)
    if result.get("bad"):
        raise BenchError(f"{target.key}: {result['bad']} bad responses in the latency run")
    return result


WRK_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(m?s)")


def run_wrk(target: Target, cfg: Settings, seconds: float) -> dict[str, Any]:
    env = {**os.environ, "BENCH_BODY": call_body(target.tool).decode(), "BENCH_TOOL": target.tool}
    argv = [
        "wrk",
        "-t1",
        f"-c{cfg.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "post.lua"),
        target.url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60)
    out = done.stdout
    summary = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    match = WRK_REQUESTS.search(out)
    if done.returncode != 0 or summary is None or match is None:
        raise BenchError(f"wrk failed on {target.key}:\n{out}\n{done.stderr}")
    counts = json.loads(summary.split(" ", 1)[1])
    elapsed = float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    requests = int(match.group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": requests / elapsed,
        "requests": requests,
        "bad": counts["bad"] + (requests - counts["good"] - counts["bad"]),
        "socket_errors": errors.group(1) if errors else None,
        "wrk_p50_ms": counts["p50_us"] / 1000,
        "wrk_p99_ms": counts["p99_us"] / 1000,
    }


def run_python_loadgen(target: Target, cfg: Settings, seconds: float) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(BENCH / "clients.py"),
        "http-tput",
        target.url,
        target.tool,
        str(cfg.connections),
        str(seconds),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, cwd=ROOT)
    if done.returncode != 0:
        raise BenchError(f"load generator failed on {target.key}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure_throughput(target: Target, cfg: Settings, seconds: float) -> dict[str, Any]:
    pids = {"upstream": target.upstream_pid}
    if target.gateway_pid is not None:
        pids["gateway"] = target.gateway_pid
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    if target.driver is not None:
        result = target.driver.command(
            f"tput {cfg.connections} {seconds} {target.tool}", seconds + 120
        )
    elif cfg.loadgen == "wrk":
        result = run_wrk(target, cfg, seconds)
    else:
        result = run_python_loadgen(target, cfg, seconds)
    for k, p in pids.items():
        used = cpu_seconds(p) - before[k]
        result[f"{k}_cpu_us"] = used / max(result["requests"], 1) * 1e6
        result[f"{k}_cpu_share"] = used / seconds
    if result.get("bad"):
        raise BenchError(f"{target.key}: {result['bad']} bad responses under load")
    return result


def wait_quiet(cfg: Settings, log: TextIO, patience: float) -> None:
    """Wait (at most ``patience`` seconds) until other processes use little CPU."""
    deadline = time.monotonic() + patience
    waited = False
    while True:
        start = cfg.watch.snapshot()
        time.sleep(0.2)
        if CpuWatch.foreign(start, cfg.watch.snapshot()) <= cfg.max_foreign:
            break
        if time.monotonic() >= deadline:
            log.write(" [machine still busy; measuring anyway]")
            break
        waited = True
    if waited:
        cfg.waited += 1


def guarded(cfg: Settings, what: str, log: TextIO, measure: Any) -> dict[str, Any]:
    """Run ``measure()`` when the machine is quiet; repeat it (up to ``cfg.retries`` times, within
    the retry time budget) while other work took more than ``cfg.max_foreign`` cores during it.
    The least disturbed attempt is kept."""
    best: dict[str, Any] | None = None
    for attempt in range(cfg.retries + 1):
        began = time.monotonic()
        wait_quiet(cfg, log, patience=min(10.0, max(0.0, cfg.retry_budget)))
        cfg.retry_budget -= max(0.0, time.monotonic() - began - 0.2)
        began = time.monotonic()
        start = cfg.watch.snapshot()
        result = measure()
        result["foreign_cores"] = CpuWatch.foreign(start, cfg.watch.snapshot())
        result["attempts"] = attempt + 1
        if attempt:
            cfg.retry_budget -= time.monotonic() - began
        if best is None or result["foreign_cores"] < best["foreign_cores"]:
            best = result
        if result["foreign_cores"] <= cfg.max_foreign:
            break
        if attempt < cfg.retries and cfg.retry_budget > 0:
            cfg.repeated += 1
            log.write(f" [{what}: other work used {result['foreign_cores']:.2f} cores; again]")
        else:
            break
    assert best is not None
    return best


def run_rounds(targets: list[Target], cfg: Settings, log: TextIO) -> None:
    pairs = [targets[i : i + 2] for i in range(0, len(targets), 2)]
    log.write(f"warm-up: {cfg.warmup_seconds:g}s at {cfg.connections} connections per target\n")
    for target in targets:
        measure_throughput(target, cfg, cfg.warmup_seconds)
    for rnd in range(cfg.rounds):
        log.write(f"round {rnd + 1}/{cfg.rounds}:")
        for pair in pairs:
            order = pair if rnd % 2 == 0 else pair[::-1]
            for target in order:
                result = guarded(
                    cfg, f"{target.key} latency", log, lambda t=target: measure_latency(t, cfg)
                )
                target.latency.append(result)
            for target in order:
                result = guarded(
                    cfg,
                    f"{target.key} throughput",
                    log,
                    lambda t=target: measure_throughput(t, cfg, cfg.duration),
                )
                target.throughput.append(result)
            log.write(f" {pair[0].upstream}-{pair[0].transport}")
            log.flush()
        log.write("\n")
    for target in targets:
        target.memory["upstream"] = memory_mb(target.upstream_pid)
        if target.gateway_pid is not None:
            target.memory["gateway"] = memory_mb(target.gateway_pid)
