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
import json
import shutil
import signal
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Settings, run_rounds
from procs import GATEWAY_PYTHON, UPSTREAMS, BenchError, Processes, build_targets
from report import report


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


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
