"""Knowledge packs: load time, hot-reload latency and REST tool overhead, in one run.

Three measurements, each against its target (bench/README.md explains how to read them):

1. **load**: 100 generated pack files (1,000 tools: SQL over SQLite, REST over a local URL,
   with resources, prompts, limits and tests) loaded, validated and registered by
   ``Gateway(Settings)``, in a fresh interpreter every round. Target: median < 1 s.
2. **reload**: ``catalyst serve`` watching that folder; one pack file rewritten with a new tool,
   timed from the write to ``notifications/tools/list_changed`` on a connected client's stream.
   Target: median < 300 ms.
3. **rest**: ``tools/call`` of a REST pack tool through the gateway vs. the same ``GET`` sent
   straight to the local endpoint, interleaved rounds of sequential requests on keep-alive
   connections. Target: added median latency <= 0.5 ms.

    .venv/bin/python bench/packs.py [--rounds 5] [--reloads 15] [--requests 1000] [--check]

Progress goes to stderr, the Markdown report to stdout. It exits 0 whatever the numbers are,
1 with ``--check`` when a target is missed, 2 when a measurement could not be made (the error
says why; the servers' logs are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from packs_gen import write_folder
from packs_load import measure_load
from packs_reload import run_reload
from packs_report import report
from packs_rest import measure_rest
from procs import BenchError, Processes, free_port

PARTS = ("load", "reload", "rest")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the load and REST runs")
    parser.add_argument("--packs", type=int, default=100, help="pack files to generate")
    parser.add_argument("--tools", type=int, default=1000, help="tools in all, over the packs")
    parser.add_argument("--reloads", type=int, default=15, help="hot-reload edits to time")
    parser.add_argument("--requests", type=int, default=1000, help="requests per REST batch")
    parser.add_argument("--warmup", type=int, default=300, help="REST warm-up requests per path")
    parser.add_argument("--only", default=",".join(PARTS), help="comma list of: load,reload,rest")
    parser.add_argument("--json", type=Path, help="also write every raw measurement here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    asked = [p.strip() for p in args.only.split(",") if p.strip()]
    if not asked or any(p not in PARTS for p in asked):
        parser.error(f"--only takes a comma list of {', '.join(PARTS)}")
    args.parts = [p for p in PARTS if p in asked]  # load before reload: reload edits the packs
    if args.rounds < 1 or args.reloads < 1 or args.requests < 1 or args.packs < 1:
        parser.error("--rounds, --reloads, --requests and --packs must be at least 1")
    if args.tools < args.packs:
        parser.error("--tools must be at least --packs (every pack has a tool)")
    return args


def run_part(
    part: str, args: argparse.Namespace, procs: Processes, workdir: Path, meta: dict[str, Any]
) -> Any:
    folder = workdir / "packs"
    if part == "load":
        return measure_load(procs, folder, meta["counts"]["tools"], args.rounds, sys.stderr)
    if part == "reload":
        limit = 120 + args.reloads * 15

        async def bounded() -> dict[str, Any]:
            async with asyncio.timeout(limit):
                return await run_reload(
                    procs,
                    workdir,
                    folder,
                    args.packs,
                    meta["counts"]["tools"],
                    meta["base_url"],
                    args.reloads,
                    sys.stderr,
                )

        try:
            return asyncio.run(bounded())
        except TimeoutError as exc:
            raise BenchError(f"the hot-reload measurement took over {limit}s") from exc
    return measure_rest(procs, workdir, args.rounds, args.requests, args.warmup, sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="catalyst-bench-packs-"))
    procs = Processes(workdir)
    started = time.monotonic()
    meta: dict[str, Any] = {
        "parts": args.parts,
        "packs": args.packs,
        "tools": args.tools,
        "rounds": args.rounds,
        "reloads": args.reloads,
        "requests": args.requests,
        "warmup": args.warmup,
        "load_start": os.getloadavg()[0],
        # the generated REST packs' API: loading never contacts it, so nothing listens there
        "base_url": f"http://127.0.0.1:{free_port()}/api",
    }
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    try:
        if {"load", "reload"} & set(args.parts):
            meta["counts"] = write_folder(
                workdir / "packs", args.packs, args.tools, meta["base_url"]
            )
            print(f"generated {meta['counts']} in {workdir / 'packs'}", file=sys.stderr)
        for part in args.parts:
            print(f"== {part}", file=sys.stderr)
            try:
                results[part] = run_part(part, args, procs, workdir, meta)
            except BenchError as exc:
                errors[part] = str(exc)
                print(f"benchmark part {part!r} failed: {exc}", file=sys.stderr)
            finally:
                procs.stop_all()
    except KeyboardInterrupt:
        print("interrupted; stopping servers", file=sys.stderr)
        procs.stop_all()
        print(f"logs kept in {workdir}", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
    elapsed = time.monotonic() - started
    table, ok = report(results, errors, meta, elapsed)
    if args.json:
        raw = {"settings": meta, "results": results, "errors": errors, "elapsed_s": elapsed}
        args.json.write_text(json.dumps(raw, indent=1))
    if errors or args.keep_logs:
        print(f"logs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table)
    if errors:
        return 2
    if args.check and not ok:
        print("\n--check: a target was missed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
