"""The Markdown report: the per-path table, the gateway-vs-direct targets, and the header."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from measure import Settings
from procs import GATEWAY_PYTHON, ROOT, UPSTREAMS, Target

TARGET_ADDED_P50_MS = 0.30
TARGET_THROUGHPUT_RATIO = 0.75


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> float:
    """(max - min) / median, as a percentage: how much the rounds disagree."""
    if len(values) < 2:
        return 0.0
    return (max(values) - min(values)) / statistics.median(values) * 100


def summary(target: Target) -> dict[str, Any]:
    lat, tput = target.latency, target.throughput
    return {
        "p50_ms": med([r["median_ms"] for r in lat]),
        "p99_ms": med([r["p99_ms"] for r in lat]),
        "rps": med([r["rps"] for r in tput]),
        "p50_spread": spread([r["median_ms"] for r in lat]),
        "rps_spread": spread([r["rps"] for r in tput]),
        "upstream_cpu_us": med([r["upstream_cpu_us"] for r in tput]),
        "gateway_cpu_us": med([r["gateway_cpu_us"] for r in tput if "gateway_cpu_us" in r]),
        "upstream_mem": target.memory.get("upstream"),
        "gateway_mem": target.memory.get("gateway"),
    }


def fmt_mem(mem: tuple[float, float] | None) -> str:
    return "-" if mem is None else f"{mem[0]:.0f} ({mem[1]:.0f})"


def fmt_cpu(value: float) -> str:
    return "-" if value != value else f"{value:.0f}"


def code_version() -> str:
    """The commit measured, marked when src/ has uncommitted changes."""
    commit = "unknown commit"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if head:
            commit = f"commit {head}{' + uncommitted changes in src/' if dirty else ''}"
    return commit


def machine_info(cfg: Settings) -> list[str]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "-"

    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk = "not installed"
    if shutil.which("wrk"):
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        wrk = (done.stdout + done.stderr).split("\n")[0].split(" [")[0].strip()
    commit = code_version()
    if GATEWAY_PYTHON[0] != sys.executable:
        commit = f"the build of {GATEWAY_PYTHON[0]} (not this tree)"
    loadgen = "wrk (1 thread, Lua script)" if cfg.loadgen == "wrk" else "Python asyncio sockets"
    return [
        f"- Machine: {os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"load average at start {os.getloadavg()[0]:.2f}",
        f"- Gateway code: {commit}. Python {platform.python_version()}; "
        f"catalyst-mcp {version('catalyst-mcp')}, "
        f"mcp {version('mcp')}, uvicorn {version('uvicorn')}, httptools {version('httptools')}, "
        f"uvloop {version('uvloop')}; {wrk}",
        f"- {cfg.rounds} rounds, median of rounds reported. Latency: 1 connection, "
        f"{cfg.latency_requests} sequential requests after {cfg.latency_warmup} warm-up. "
        f"Throughput: {cfg.connections} connections (stdio: {cfg.connections} in flight), "
        f"{cfg.duration:g}s per run, load by {loadgen}.",
    ]


def report(targets: list[Target], cfg: Settings, elapsed: float) -> tuple[str, bool]:
    rows = {t.key: summary(t) for t in targets}
    foreign = [r["foreign_cores"] for t in targets for r in (*t.latency, *t.throughput)]
    lines = [
        f"### Catalyst gateway overhead — `tools/call` echo, modern era (2026-07-28), "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "",
        *machine_info(cfg),
        f"- Run time {elapsed:.0f}s, load average at end {os.getloadavg()[0]:.2f}. "
        f"Other processes' CPU during the kept runs: median {med(foreign):.2f}, "
        f"max {max(foreign, default=0):.2f} cores; {cfg.repeated} runs repeated for exceeding "
        f"{cfg.max_foreign:g} cores, {cfg.waited} waited for a quiet machine.",
        "",
        "| Upstream | Path | p50 ms (1 conn) | p99 ms (1 conn) | req/s (32 conns) "
        "| round spread p50 / req/s | gateway CPU µs/req | upstream CPU µs/req "
        "| gateway RSS MB (peak) | upstream RSS MB (peak) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for t in targets:
        s = rows[t.key]
        label = f"{UPSTREAMS[t.upstream][0]}, {t.transport}"
        path = "direct" if t.via == "direct" else "via gateway"
        if t.transport == "stdio" and t.via == "gateway":
            path = "via gateway (HTTP in)"
        lines.append(
            f"| {label} | {path} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {s['rps']:,.0f} "
            f"| {s['p50_spread']:.0f}% / {s['rps_spread']:.0f}% | {fmt_cpu(s['gateway_cpu_us'])} "
            f"| {fmt_cpu(s['upstream_cpu_us'])} | {fmt_mem(s['gateway_mem'])} "
            f"| {fmt_mem(s['upstream_mem'])} |"
        )
    lines += [
        "",
        f"| Upstream | added p50 latency, 1 conn (target ≤ {TARGET_ADDED_P50_MS:.2f} ms) "
        f"| throughput gateway/direct, 32 conns (target ≥ {TARGET_THROUGHPUT_RATIO:.2f}x) "
        "| same ratio if CPU-bound (info) | gated by `--check` |",
        "|---|--:|--:|--:|:-:|",
    ]
    ok = True
    for i in range(0, len(targets), 2):
        direct, gateway = rows[targets[i].key], rows[targets[i + 1].key]
        t = targets[i]
        added = gateway["p50_ms"] - direct["p50_ms"]
        ratio = gateway["rps"] / direct["rps"]
        # CPU per call direct / (gateway + upstream) per call: the throughput ratio once every
        # core is busy, free of how two cores happen to be shared in this run
        cpu_bound = direct["upstream_cpu_us"] / (
            gateway["gateway_cpu_us"] + gateway["upstream_cpu_us"]
        )
        lat_ok = added <= TARGET_ADDED_P50_MS
        tput_ok = ratio >= TARGET_THROUGHPUT_RATIO
        gated = t.upstream == "sdk"
        if gated:
            ok = ok and lat_ok and tput_ok
        lines.append(
            f"| {UPSTREAMS[t.upstream][0]}, {t.transport} "
            f"| {added:+.3f} ms **{'PASS' if lat_ok else 'FAIL'}** "
            f"| {ratio:.2f}x **{'PASS' if tput_ok else 'FAIL'}** "
            f"| {cpu_bound:.2f}x "
            f"| {'yes' if gated else 'no (reference floor)'} |"
        )
    return "\n".join(lines), ok
