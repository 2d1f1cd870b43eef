"""What metrics and tracing add to a ``tools/call``, counted in instructions (load-independent).

    .venv/bin/python bench/obs_instructions.py [--rounds 2] [--requests 1000] [--keep DIR]

CPU time per call moves with whatever else runs on the machine (caches, frequency, the other
sessions' test suites); the number of instructions a call executes does not. This runs the
in-process driver (``obs_inprocess.py``: each variant's dispatcher called directly, the lean HTTP
upstream and the OTLP receiver in processes of their own) twice:

1. natively, for CPU time per call (user and user + system, every thread);
2. under ``valgrind --tool=callgrind``, for instructions per call: valgrind's instrumentation
   is switched on after start-up and warm-up (``--instr-atstart=no``, then ``callgrind_control
   -i on``), and a dump is written at every marker of the driver (``--dump-before=getppid``), so
   each batch's instructions (all threads: the span exporter's too, its flush included) are
   read from its own dump. The same calls are sampled in every round and run (seeded ``random``).

Instructions are converted to microseconds with the rate of the **off** variant in the same run:
its instructions per call divided by its native CPU time (user + system) per call. Valgrind
counts user-space instructions only, and the system time of an off call (its socket I/O) has
none, so this rate is lower than that of the interpreter work the hooks add, and the µs figures
err on the high side; by user time alone (printed too, but the kernel's split between user and
system time is sampled, hence noisier) they would be smaller. Either way it assumes the added
code runs at the instructions per microsecond of the call it is added to: an approximation.

``--keep DIR`` keeps the callgrind dumps (one per stretch between markers, ``part`` numbers in
the order of the driver's markers) for ``callgrind_annotate``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from obs_inprocess import TARGETS_US
from procs import BENCH, ROOT, BenchError, Processes, free_port

DRIVER = BENCH / "obs_inprocess.py"
TOTALS = re.compile(rb"^totals: (\d+)$", re.MULTILINE)
CALLGRIND_TIMEOUT = 3600.0


def start_sink(procs: Processes, name: str) -> str:
    """An OTLP receiver of its own (its span counts tell the driver what was sampled)."""
    port = free_port()
    procs.start(name, [sys.executable, str(BENCH / "otlp_sink.py"), str(port)])
    return f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Plan:
    """How many calls the in-process driver makes."""

    rounds: int
    requests: int
    warmup: int


def driver_argv(upstream: str, sink: str, out: Path, plan: Plan) -> list[str]:
    return [
        sys.executable,
        str(DRIVER),
        "--upstream",
        upstream,
        "--sink",
        sink,
        "--out",
        str(out),
        "--rounds",
        str(plan.rounds),
        "--requests",
        str(plan.requests),
        "--warmup",
        str(plan.warmup),
    ]


def driver_env(workdir: Path) -> dict[str, str]:
    """The driver's environment: its own state folder (each gateway's SQLite file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CATALYST_", "PROMETHEUS_"))}
    env["XDG_STATE_HOME"] = str(workdir / "state")
    # spans are exported when a batch ends (the driver flushes) or 512 are waiting, never on
    # the 5-s timer: under valgrind that timer would fire within batches, at random points
    env["OTEL_BSP_SCHEDULE_DELAY"] = str(24 * 3600 * 1000)
    return env


def run_cpu(upstream: str, sink: str, workdir: Path, plan: Plan) -> dict[str, Any]:
    """The driver run natively: CPU time per batch."""
    out = workdir / "inprocess-cpu.json"
    argv = driver_argv(upstream, sink, out, plan)
    done = subprocess.run(
        argv, cwd=ROOT, env=driver_env(workdir), stderr=subprocess.PIPE, text=True, timeout=1800
    )
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise BenchError(f"in-process driver failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_callgrind(
    upstream: str, sink: str, workdir: Path, plan: Plan, keep: Path | None = None
) -> dict[str, Any]:
    """The driver run under callgrind; adds ``instructions`` (per marker) to its result, and
    copies the dumps to ``keep`` if given."""
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise BenchError("valgrind (with callgrind_control) is needed: apt-get install valgrind")
    dumps = workdir / "callgrind"
    dumps.mkdir()
    out, go = workdir / "inprocess-callgrind.json", workdir / "go"
    argv = [
        valgrind,
        "--tool=callgrind",
        "--instr-atstart=no",
        "--dump-before=getppid",
        "--dump-instr=no",
        "--dump-line=no",
        f"--callgrind-out-file={dumps}/cg.%p",
        *driver_argv(upstream, sink, out, plan),
        "--marker",
        "callgrind",
        "--requests-100",  # tracing 100% costs 5 times as much per call: fewer calls suffice
        str(max(1, plan.requests // 4)),
        "--go",
        str(go),
    ]
    log = workdir / "callgrind.log"
    started = time.monotonic()
    with log.open("w") as errors:
        child = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=driver_env(workdir),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            if line.strip() != "ready":
                raise BenchError(f"driver under valgrind did not start: {_tail(log)}")
            subprocess.run([control, "--instr=on", str(child.pid)], check=True, capture_output=True)
            go.touch()
            child.wait(CALLGRIND_TIMEOUT)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    if child.returncode != 0:
        raise BenchError(f"driver under valgrind failed (exit {child.returncode}): {_tail(log)}")
    result: dict[str, Any] = json.loads(out.read_text())
    parts = sorted(
        (p for p in dumps.glob(f"cg.{child.pid}.*")), key=lambda p: int(p.name.rsplit(".", 1)[1])
    )
    totals = []
    for part in parts:
        found = TOTALS.search(part.read_bytes())
        totals.append(int(found.group(1)) if found else 0)
    if len(totals) != len(result["markers"]):
        raise BenchError(
            f"{len(totals)} callgrind dumps for {len(result['markers'])} markers: something else "
            "called getppid()"
        )
    result["instructions"] = totals
    result["seconds"] = time.monotonic() - started
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        for part in parts:
            shutil.copy2(part, keep / part.name)
        (keep / "markers.json").write_text(json.dumps(result["markers"]))
    return result


def _tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def per_call(result: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    """Instructions per call of each batch (its flush included, and apart), by variant."""
    by_label = dict(zip(result["markers"], result["instructions"], strict=True))
    runs: dict[str, list[dict[str, float]]] = {}
    for batch in result["batches"]:
        label = f"{batch['variant']}#{batch['round']}"
        calls = batch["calls"]
        export = by_label[f"{label}/export"] / calls
        runs.setdefault(batch["variant"], []).append(
            {
                "instr": by_label[label] / calls + export,
                "export": export,
                "sampled": batch["sampled"],
                "calls": calls,
            }
        )
    return runs


def cpu_per_call(result: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {}
    for batch in sorted(result["batches"], key=lambda b: b["round"]):
        calls = batch["calls"]
        runs.setdefault(batch["variant"], []).append(
            {"cpu_us": batch["cpu_s"] / calls * 1e6, "user_us": batch["user_s"] / calls * 1e6}
        )
    return runs


def _added(runs: dict[str, list[dict[str, float]]], name: str, key: str) -> float:
    """Median over rounds of (variant - off) in the same round."""
    pairs = zip(runs[name], runs["off"], strict=True)
    return statistics.median(on[key] - off[key] for on, off in pairs)


def cpu_table(runs: dict[str, list[dict[str, float]]]) -> tuple[str, bool]:
    ok = True
    lines = [
        "#### In process, CPU time: the dispatcher called directly (no HTTP in front)",
        "",
        "| Gateway | CPU / call | added CPU / call (vs off) | target |",
        "|---|--:|--:|---|",
    ]
    for name, values in runs.items():
        extra = _added(runs, name, "cpu_us")
        target = TARGETS_US.get(name)
        verdict = "reported" if name == "tracing 100%" else "-"
        if target is not None:
            ok = ok and extra <= target
            verdict = f"≤ {target:.0f} µs: **{'PASS' if extra <= target else 'MISSED'}**"
        shown = "-" if name == "off" else f"{extra:+.1f} µs"
        median = statistics.median(v["cpu_us"] for v in values)
        lines.append(f"| {name} | {median:.1f} µs | {shown} | {verdict} |")
    return "\n".join(lines), ok


def rate_of(
    instr: dict[str, list[dict[str, float]]], cpu: dict[str, list[dict[str, float]]]
) -> tuple[float, float]:
    """Instructions per µs of the off variant: by its user + system CPU time, and by user."""
    off = statistics.median(v["instr"] for v in instr["off"])
    return (
        off / statistics.median(v["cpu_us"] for v in cpu["off"]),
        off / statistics.median(v["user_us"] for v in cpu["off"]),
    )


def instructions_table(
    instr: dict[str, list[dict[str, float]]],
    cpu: dict[str, list[dict[str, float]]],
    seconds: float,
) -> tuple[str, bool]:
    rate, rate_user = rate_of(instr, cpu)
    rounds = len(instr["off"])
    calls = int(instr["off"][0]["calls"])
    fewer = int(instr.get("tracing 100%", instr["off"])[0]["calls"])
    ok = True
    lines = [
        "#### In process, instructions (valgrind callgrind): load-independent",
        "",
        f"{rounds} round{'s' if rounds != 1 else ''} of {calls} calls per variant ({fewer} for "
        f"tracing 100%) under callgrind ({seconds:.0f} s). "
        f"µs = instructions ÷ {rate:,.0f} instructions/µs: the off variant's instructions per "
        f"call over its native CPU time (user + system) per call in this run; by user time "
        f"alone {rate_user:,.0f}/µs, which would make each µs figure "
        f"{rate / rate_user:.2f} times as large.",
        "",
        "| Gateway | instructions / call | added (vs off) | added ≈ µs | of which export | "
        "round spread | sampled calls | target |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for name, values in instr.items():
        counts = [v["instr"] for v in values]
        median = statistics.median(counts)
        spread = (max(counts) - min(counts)) / median
        extra = _added(instr, name, "instr")
        micros = extra / rate
        target = TARGETS_US.get(name)
        verdict = "reported" if name == "tracing 100%" else "-"
        if target is not None:
            ok = ok and micros <= target
            verdict = f"≤ {target:.0f} µs: **{'PASS' if micros <= target else 'MISSED'}**"
        export = statistics.median(v["export"] for v in values)
        sampled = statistics.median(v["sampled"] for v in values)
        calls = int(values[0]["calls"])
        is_off = name == "off"
        lines.append(
            f"| {name} | {median:,.0f} | {'-' if is_off else f'{extra:+,.0f}'} | "
            f"{'-' if is_off else f'{micros:+.1f} µs'} | {export:,.0f} | {spread:.2%} | "
            f"{sampled:.0f} of {calls} | {verdict} |"
        )
    lines += [
        "",
        "Added instructions: the median over rounds of (variant - off) in the same round; the "
        "flush of a tracing batch's spans (encoding and the OTLP/HTTP export) is part of it. "
        "Round spread: (max - min) / median of a variant's rounds.",
    ]
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds under callgrind")
    parser.add_argument("--cpu-rounds", type=int, default=5, help="rounds of the native run")
    parser.add_argument("--requests", type=int, default=1000, help="calls per batch")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up calls per variant")
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps in this folder")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="catalyst-bench-obsi-") as tmp:
        workdir = Path(tmp)
        procs = Processes(workdir)
        try:
            port = free_port()
            procs.start(
                "upstream", [sys.executable, str(BENCH / "upstream_lean.py"), "http", str(port)]
            )
            upstream = f"http://127.0.0.1:{port}/mcp"
            sink = start_sink(procs, "sink")
            time.sleep(1.0)
            native = Plan(args.cpu_rounds, args.requests, args.warmup)
            cpu = cpu_per_call(run_cpu(upstream, sink, workdir, native))
            plan = Plan(args.rounds, args.requests, args.warmup)
            counted = run_callgrind(upstream, sink, workdir, plan, args.keep)
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 2
        finally:
            procs.stop_all()
    report, ok = instructions_table(per_call(counted), cpu, counted["seconds"])
    cpu_report, _ = cpu_table(cpu)
    print(cpu_report)
    print()
    print(report)
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
