"""Where the gateway's time goes per ``tools/call``: py-spy under a steady 32-connection load.

    .venv/bin/python bench/profile_gateway.py [--upstream lean|sdk] [--transport http|stdio]
        [--seconds 20] [--py-spy PATH] [--svg FILE] [--granian PYTHON]

Starts one upstream and one gateway in front of it, drives the gateway with wrk, samples the
gateway with ``py-spy record`` (non-blocking, by function) and prints: self time by component
(file), the top functions by self time and by inclusive time, and the gateway's CPU per call.
The lean upstream is the default so that the gateway, not the upstream, is the busy process.

``--granian PYTHON`` serves the same gateway ASGI app with granian (run by that interpreter,
which must have granian installed) instead of uvicorn, for comparison; nothing in the project
depends on granian.

py-spy is not a project dependency: ``python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install
py-spy``. This is a diagnostic, not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from measure import Settings, measure_latency, run_wrk  # noqa: E402
from procs import (  # noqa: E402
    GATEWAY_SERVER,
    UPSTREAMS,
    BenchError,
    Processes,
    Target,
    children_of,
    cpu_seconds,
    free_port,
    gateway_argv,
    gateway_config,
    gateway_ready,
    post_call,
    wait_until,
)

GRANIAN_APP = BENCH / "granian_app.py"


def component(frame: str) -> str:
    """A readable bucket for a py-spy frame ``function (path:line)``."""
    path = frame.rsplit("(", 1)[-1].rstrip(")").rsplit(":", 1)[0]
    if "catalyst_mcp/" in path:
        return "catalyst_mcp/" + path.split("catalyst_mcp/", 1)[1]
    for marker, name in (
        ("uvicorn/", "uvicorn"),
        ("granian/", "granian"),
        ("uvloop/", "uvloop"),
        ("asyncio/", "asyncio"),
        ("httptools/", "httptools"),
        ("logging/", "logging"),
    ):
        if marker in path:
            return name + " (" + path.split(marker, 1)[1] + ")"
    return path.rsplit("/", 1)[-1]


def analyse(raw: Path, top: int) -> str:
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    total = sum(c for _, c in stacks) or 1
    self_fn: collections.Counter[str] = collections.Counter()
    self_comp: collections.Counter[str] = collections.Counter()
    incl_fn: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        # drop the process/thread header frames py-spy adds
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        self_fn[frames[-1]] += count
        self_comp[component(frames[-1])] += count
        for frame in set(frames):
            incl_fn[frame] += count

    def table(counter: collections.Counter[str], title: str, n: int) -> list[str]:
        out = [f"\n{title}", "| % of busy samples | where |", "|--:|---|"]
        out += [f"| {c / total * 100:5.1f} | `{name}` |" for name, c in counter.most_common(n)]
        return out

    lines = [f"{total} busy samples"]
    lines += table(self_comp, "Self time by file", top)
    lines += table(self_fn, "Top functions by self time", top)
    lines += table(incl_fn, "Top functions by inclusive time", top + 10)
    return "\n".join(lines)


def record(args: argparse.Namespace, pid: int, fmt: str, output: Path, load: Any) -> None:
    """Sample ``pid`` with py-spy while ``load()`` runs."""
    argv = [args.py_spy, "record", "--pid", str(pid), "--rate", str(args.rate), "--nonblocking"]
    if not args.lines:
        argv.append("--function")
    argv += ["--format", fmt, "--output", str(output)]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # let py-spy attach
        load()
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        _, err = spy.communicate(timeout=60)
    if not output.exists():
        raise BenchError(f"py-spy failed: {err.decode(errors='replace')}")


def perf_report(data: Path, top: int) -> str:
    """Kernel vs. interpreter vs. extension modules, from ``perf record`` samples."""
    out = []
    for sort, title in (("dso", "CPU by binary (kernel, libpython, C extensions)"),
                        ("dso,sym", "Top symbols")):  # fmt: skip
        done = subprocess.run(
            ["perf", "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio",
             "--percent-limit", "0.7", "-g", "none"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        rows = [ln for ln in done.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
        out += [f"\n{title}", *rows[: top if sort != "dso" else 15]]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", choices=list(UPSTREAMS), default="lean")
    parser.add_argument("--transport", choices=["http", "stdio"], default="http")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy")
    parser.add_argument("--svg", type=Path, help="also write a flame graph here")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="only measure (no py-spy)")
    parser.add_argument("--perf", action="store_true", help="sample with perf, not py-spy")
    parser.add_argument("--lines", action="store_true", help="py-spy: by line, not function")
    parser.add_argument("--granian", help="serve the gateway with granian run by this python")
    args = parser.parse_args()
    if not (args.no_profile or args.perf) and not Path(args.py_spy).exists():
        parser.error(f"py-spy not found at {args.py_spy}; see --help")

    workdir = Path(tempfile.mkdtemp(prefix="catalyst-profile-"))
    procs = Processes(workdir)
    label, script, server_name = UPSTREAMS[args.upstream]
    try:
        if args.transport == "http":
            port = free_port()
            upstream = procs.start("upstream", [sys.executable, str(script), "http", str(port)])
            wait_until(lambda: bool(post_call(port, "echo")), upstream, "upstream")
            server = {"url": f"http://127.0.0.1:{port}/mcp"}
        else:
            server = {"command": sys.executable, "args": [str(script), "stdio"]}
        gw_port = free_port()
        config = workdir / "gateway.yaml"
        gateway_config(config, gw_port, server)
        if args.granian:
            env = {**os.environ, "CATALYST_BENCH_CONFIG": str(config)}
            src = BENCH.parent / "src"
            env["PYTHONPATH"] = os.pathsep.join([str(src), str(BENCH)])
            argv = [args.granian, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
            argv += ["--port", str(gw_port), "--workers", "1", "--loop", "uvloop"]
            argv += ["--log-level", "warning", "--no-ws", "granian_app:app"]
            gateway = procs.start("gateway", argv, env=env)
        else:
            gateway = procs.start("gateway", gateway_argv(config))
        transport = "stdio" if args.transport == "stdio" else "streamable-http"
        wait_until(lambda: gateway_ready(gw_port, transport, server_name), gateway, "gateway")
        tool = f"{GATEWAY_SERVER}__echo"
        post_call(gw_port, tool)
        gw_pid = gateway.pid
        if args.granian:  # granian serves from a worker process
            workers = [pid for pid, _ in children_of(gateway.pid)]
            gw_pid = workers[0] if workers else gateway.pid
        cfg = Settings(1, args.seconds, 0, args.connections, 0, 0, "wrk", 1.0, 0, 0.0)
        target = Target(args.upstream, args.transport, "gateway", tool, 0, port=gw_port)
        run_wrk(target, cfg, 2)  # warm-up
        if args.svg:
            record(args, gw_pid, "flamegraph", args.svg, lambda: run_wrk(target, cfg, 5))
        raw = workdir / "profile.txt"
        measured: dict[str, float] = {}

        def load() -> None:
            before = cpu_seconds(gw_pid)
            result = run_wrk(target, cfg, args.seconds)
            measured["cpu"] = cpu_seconds(gw_pid) - before
            measured.update(result)

        if args.perf:
            perf_data = workdir / "perf.data"
            argv = ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-p", str(gw_pid)]
            perf = subprocess.Popen(
                [*argv, "-o", str(perf_data)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            time.sleep(1.0)
            try:
                load()
            finally:
                perf.send_signal(signal.SIGINT)
                perf.communicate(timeout=60)
        elif args.no_profile:
            load()
        else:
            record(args, gw_pid, "raw", raw, load)
        used = measured["cpu"]
        print(
            f"gateway ({'granian' if args.granian else 'uvicorn'}) -> {label} over "
            f"{args.transport}: {measured['rps']:,.0f} req/s at {args.connections} connections, "
            f"gateway CPU {used / measured['requests'] * 1e6:.0f} us/call "
            f"({used / args.seconds:.2f} cores), wrk p50 {measured['wrk_p50_ms']:.2f} ms"
            + ("" if args.no_profile else " (while sampled)")
        )
        if args.no_profile:
            cfg.latency_requests, cfg.latency_warmup = 3000, 300
            before = cpu_seconds(gw_pid)
            lat = measure_latency(target, cfg)
            per_call = (cpu_seconds(gw_pid) - before) / 3300 * 1e6
            print(
                f"  1 connection: p50 {lat['median_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms, "
                f"gateway CPU {per_call:.0f} us/call"
            )
        if args.perf:
            print(perf_report(perf_data, args.top))
        elif not args.no_profile:
            print(analyse(raw, args.top))
    except BenchError as exc:
        print(f"profile failed: {exc}", file=sys.stderr)
        return 2
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
