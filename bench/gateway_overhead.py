"""What the gateway costs per ``tools/call``: gateway vs. the same upstream called directly.

One run measures, for an HTTP upstream and a stdio upstream, each called directly and through
the gateway (modern era, 2026-07-28: every request is one self-contained POST, no session):

* median and p99 latency with 1 connection (sequential requests, after warm-up);
* requests/s with 32 concurrent connections (32 requests in flight on stdio);
* CPU time per request of the gateway and of the upstream (from /proc, during the 32-way runs);
* resident memory of the gateway and of the upstream at the end of the run.

It does this for two upstreams: the official SDK's ``MCPServer`` (what people run) and a lean
upstream written for the benchmark (a floor that makes the gateway's own cost visible). Load
generation runs in separate processes (``wrk`` for HTTP; a driver process for direct stdio).
Measurements of a direct target and its gateway twin are interleaved and repeated; the table
reports the median of the rounds. See bench/README.md for how to read it.

    .venv/bin/python bench/gateway_overhead.py [--rounds 4] [--duration 4] [--check]

It exits 0 whatever the numbers are (it is a report), unless ``--check`` is given: then it
exits 1 if a target is missed for the SDK upstream.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from mcpwire import call_body, call_headers, is_good_result  # noqa: E402

# Ports other services on this machine use: never bind or pick them.
RESERVED_PORTS = frozenset({5432, 3306, 6379, 5672, 1883, 4222, 8765})
TARGET_ADDED_P50_MS = 0.30
TARGET_THROUGHPUT_RATIO = 0.75
UPSTREAMS = {  # label, script, the serverInfo name it reports
    "sdk": ("SDK MCPServer", BENCH / "upstream_sdk.py", "bench-echo"),
    "lean": ("lean echo", BENCH / "upstream_lean.py", "lean-echo"),
}
GATEWAY_SERVER = "up"  # the upstream's name in the gateway config; tools become up__echo


class BenchError(Exception):
    pass


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# ---- processes --------------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces; everything after its ')' is space-separated
    return raw[raw.rindex(")") + 2 :].split()


def children_of(pid: int) -> list[tuple[int, str]]:
    """Direct children of ``pid`` as (pid, start time) pairs, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and stat[1] == str(pid):
            found.append((int(entry.name), stat[19]))
    return found


def descendants_of(pid: int) -> list[tuple[int, str]]:
    out = []
    for child in children_of(pid):
        out.append(child)
        out.extend(descendants_of(child[0]))
    return out


def cpu_seconds(pid: int) -> float:
    stat = _proc_stat(pid)
    if stat is None:
        return float("nan")
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    values = {"VmRSS": float("nan"), "VmHWM": float("nan")}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


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


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on now, never the same one twice in a run."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in RESERVED_PORTS and port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[Any]
    log: Path
    port: int | None = None
    farewell: str | None = None  # a line to write to its stdin to ask it to exit

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Processes:
    """Every process the benchmark starts, stopped by PID (with their children) in ``stop_all``."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], **kwargs: Any) -> Proc:
        log = self.logdir / f"{name}.log"
        handle = log.open("w")
        kwargs.setdefault("stdout", handle)
        popen = subprocess.Popen(
            argv,
            stderr=handle,
            stdin=kwargs.pop("stdin", subprocess.DEVNULL),
            cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop everything in order
            **kwargs,
        )
        handle.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self._stop(proc)
        self.procs.clear()

    @staticmethod
    def _stop(proc: Proc) -> None:
        popen = proc.popen
        family = descendants_of(popen.pid) if popen.poll() is None else []
        if proc.farewell is not None and popen.stdin is not None and popen.poll() is None:
            with contextlib.suppress(OSError, ValueError, subprocess.TimeoutExpired):
                popen.stdin.write(proc.farewell)
                popen.stdin.close()
                popen.wait(5)
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signal.SIGTERM)
            try:
                popen.wait(8)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(popen.pid, signal.SIGKILL)
                popen.wait()
        for pid, started in family:  # stdio upstreams of gateways and drivers, if left behind
            stat = _proc_stat(pid)
            if stat is not None and stat[19] == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for stream in (popen.stdin, popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def post_call(port: int, tool: str, timeout: float = 5.0) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/mcp", call_body(tool), call_headers(tool))
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200 or not is_good_result(body):
        raise BenchError(f"port {port}: bad answer to {tool}: {response.status} {body!r}")
    return body


def wait_until(check: Any, proc: Proc, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise BenchError(f"{what} exited early (code {proc.popen.returncode}):\n{proc.tail()}")
        try:
            if check():
                return
        except (OSError, BenchError, ValueError) as exc:
            last = exc
        time.sleep(0.1)
    raise BenchError(f"{what} not ready after {timeout:.0f}s ({last}):\n{proc.tail()}")


class StdioDriver:
    """The process that runs a stdio server and drives it (bench/clients.py stdio-driver)."""

    def __init__(self, procs: Processes, name: str, script: Path) -> None:
        argv = [sys.executable, str(BENCH / "clients.py"), "stdio-driver"]
        argv += [sys.executable, str(script), "stdio"]
        self.proc = procs.start(
            name, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.proc.farewell = "quit\n"
        self.server_pid = int(self.command("pid", 60)["pid"])

    def command(self, line: str, timeout: float) -> dict[str, Any]:
        popen = self.proc.popen
        assert popen.stdin is not None and popen.stdout is not None
        popen.stdin.write(line + "\n")
        popen.stdin.flush()
        ready, _, _ = select.select([popen.stdout], [], [], timeout)
        reply = popen.stdout.readline() if ready else ""
        if not reply:
            raise BenchError(
                f"stdio driver {self.proc.name} did not answer {line!r}:\n{self.proc.tail()}"
            )
        result: dict[str, Any] = json.loads(reply)
        if "error" in result:
            raise BenchError(f"stdio driver {self.proc.name}: {result['error']}")
        return result


# ---- targets ----------------------------------------------------------------------------------


@dataclass
class Target:
    upstream: str  # "sdk" | "lean"
    transport: str  # "http" | "stdio"
    via: str  # "direct" | "gateway"
    tool: str
    upstream_pid: int
    port: int | None = None  # the HTTP port the client talks to (upstream or gateway)
    gateway_pid: int | None = None
    driver: StdioDriver | None = None
    latency: list[dict[str, Any]] = field(default_factory=list)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.upstream}-{self.transport}-{self.via}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def gateway_config(path: Path, port: int, server: dict[str, Any]) -> None:
    config = {
        "gateway": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
        "servers": {GATEWAY_SERVER: server},
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML


# The interpreter that runs `catalyst serve`; --gateway-python points it at another build.
GATEWAY_PYTHON = [sys.executable]


def gateway_argv(config: Path) -> list[str]:
    python = GATEWAY_PYTHON[0]
    script = Path(python).parent / "catalyst"
    if script.exists():
        return [str(script), "serve", "--config", str(config)]
    code = "from catalyst_mcp.cli.main import main; main()"
    return [python, "-c", code, "serve", "--config", str(config)]


def start_gateway(procs: Processes, name: str, workdir: Path, server: dict[str, Any]) -> Proc:
    port = free_port()
    config = workdir / f"{name}.yaml"
    gateway_config(config, port, server)
    proc = procs.start(name, gateway_argv(config))
    proc.port = port
    return proc


def gateway_ready(port: int, transport: str, server_name: str) -> bool:
    """The gateway on ``port`` is ready, and is the one relaying to the expected upstream."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/ready?strict")
        report = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    if report.get("status") != "ready":
        return False
    (server,) = report["servers"]
    if server.get("transport") != transport or server["serverInfo"]["name"] != server_name:
        raise BenchError(f"port {port} is some other gateway: {report}")
    return True


def build_targets(procs: Processes, workdir: Path, sets: list[str]) -> list[Target]:
    """Start every upstream, gateway and stdio driver; return the targets in pair order."""
    tool = f"{GATEWAY_SERVER}__echo"
    http_upstreams: dict[str, tuple[Proc, int]] = {}
    for up in sets:
        port = free_port()
        proc = procs.start(
            f"{up}-http-upstream", [sys.executable, str(UPSTREAMS[up][1]), "http", str(port)]
        )
        http_upstreams[up] = (proc, port)
    gateways: dict[tuple[str, str], Proc] = {}
    drivers: dict[str, StdioDriver] = {}
    for up, (proc, port) in http_upstreams.items():
        wait_until(lambda p=port: bool(post_call(p, "echo")), proc, f"{up} HTTP upstream")
        gateways[(up, "http")] = start_gateway(
            procs, f"{up}-http-gateway", workdir, {"url": f"http://127.0.0.1:{port}/mcp"}
        )
        gateways[(up, "stdio")] = start_gateway(
            procs,
            f"{up}-stdio-gateway",
            workdir,
            {"command": sys.executable, "args": [str(UPSTREAMS[up][1]), "stdio"]},
        )
    for up in sets:
        drivers[up] = StdioDriver(procs, f"{up}-stdio-driver", UPSTREAMS[up][1])
    for (up, kind), proc in gateways.items():
        port = proc.port
        assert port is not None
        transport = "stdio" if kind == "stdio" else "streamable-http"
        wait_until(
            lambda p=port, t=transport, n=UPSTREAMS[up][2]: gateway_ready(p, t, n),
            proc,
            f"gateway for {up} {kind}",
        )
        post_call(port, tool)
    for proc in procs.procs:
        if proc.popen.poll() is not None:
            raise BenchError(f"{proc.name} exited (code {proc.popen.returncode}):\n{proc.tail()}")

    targets = []
    for up in sets:
        proc, port = http_upstreams[up]
        gw_http = gateways[(up, "http")]
        gw_stdio = gateways[(up, "stdio")]
        stdio_children = [pid for pid, _ in children_of(gw_stdio.pid)]
        if len(stdio_children) != 1:
            raise BenchError(f"expected one stdio upstream under {gw_stdio.name}: {stdio_children}")
        targets += [
            Target(up, "http", "direct", "echo", proc.pid, port=port),
            Target(
                up, "http", "gateway", tool, proc.pid, port=gw_http.port, gateway_pid=gw_http.pid
            ),
            Target(up, "stdio", "direct", "echo", drivers[up].server_pid, driver=drivers[up]),
            Target(
                up,
                "stdio",
                "gateway",
                tool,
                stdio_children[0],
                port=gw_stdio.port,
                gateway_pid=gw_stdio.pid,
            ),
        ]
    return targets


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


# ---- report -----------------------------------------------------------------------------------


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
    commit = "unknown"
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


# ---- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="repetitions of every measurement")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per throughput run")
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of load per target before the first round",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-requests", type=int, default=1500)
    parser.add_argument("--latency-warmup", type=int, default=200)
    parser.add_argument("--upstreams", default="sdk,lean", help="comma list of: sdk, lean")
    parser.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="HTTP load generator (auto: wrk if installed)",
    )
    parser.add_argument(
        "--max-foreign",
        type=float,
        default=0.15,
        help="repeat a run if other processes used more CPU than this (in cores) meanwhile",
    )
    parser.add_argument("--retries", type=int, default=2, help="repeats allowed per run")
    parser.add_argument(
        "--retry-budget", type=float, default=45.0, help="seconds all repeats may take together"
    )
    parser.add_argument(
        "--gateway-python",
        help="run the gateway with this interpreter (another venv or build, for A/B runs)",
    )
    parser.add_argument("--json", type=Path, help="also write every raw measurement here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the SDK upstream misses a target"
    )
    args = parser.parse_args(argv)
    sets = [s.strip() for s in args.upstreams.split(",") if s.strip()]
    if not sets or any(s not in UPSTREAMS for s in sets):
        parser.error(f"--upstreams takes a comma list of {', '.join(UPSTREAMS)}")
    if "sdk" in sets:
        try:
            metadata.version("mcp")
        except metadata.PackageNotFoundError:
            parser.error(
                "the SDK upstream needs the official SDK: pip install -e '.[dev]' "
                "(or run with --upstreams lean)"
            )
    if args.gateway_python:
        GATEWAY_PYTHON[0] = args.gateway_python
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
        if loadgen == "python":
            print(
                "wrk not found (apt-get install -y wrk); using the Python load generator, "
                "which tops out near 30k req/s on one core",
                file=sys.stderr,
            )
    cfg = Settings(
        args.rounds,
        args.duration,
        args.warmup,
        args.connections,
        args.latency_requests,
        args.latency_warmup,
        loadgen,
        args.max_foreign,
        args.retries,
        args.retry_budget,
    )

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    workdir = Path(tempfile.mkdtemp(prefix="catalyst-bench-"))
    procs = Processes(workdir)
    started = time.monotonic()
    failed = False
    try:
        print(f"starting servers (logs in {workdir}) ...", file=sys.stderr)
        targets = build_targets(procs, workdir, sets)
        cfg.watch.track(procs)
        run_rounds(targets, cfg, sys.stderr)
        table, ok = report(targets, cfg, time.monotonic() - started)
        if args.json:
            raw = {
                t.key: {"latency": t.latency, "throughput": t.throughput, "memory": t.memory}
                for t in targets
            }
            settings = {k: v for k, v in cfg.__dict__.items() if k != "watch"}
            args.json.write_text(json.dumps({"settings": settings, "targets": raw}, indent=1))
    except BenchError as exc:
        failed = True
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        failed = True
        print("interrupted; stopping servers", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if failed or args.keep_logs:
            print(f"server logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table)
    if args.check and not ok:
        print("\n--check: a target was missed for the SDK upstream", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
