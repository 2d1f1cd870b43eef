"""The pack benchmark's Markdown report: a header and one table, targets with PASS/FAIL."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from packs_rest import quantile
from report import code_version

TARGET_LOAD_S = 1.0
TARGET_RELOAD_S = 0.300
TARGET_REST_OVERHEAD_MS = 0.5
PHASES = ("yaml", "validation", "providers", "registry", "other")


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> float:
    """(max - min) / median, as a percentage: how much the rounds disagree."""
    if len(values) < 2:
        return 0.0
    return (max(values) - min(values)) / statistics.median(values) * 100


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def other_load(results: dict[str, Any]) -> str:
    """Median and maximum of the other processes' CPU per measurement, in cores."""
    parts = []
    if "load" in results:
        runs = [r["foreign_cores"] for rs in results["load"].values() for r in rs]
        parts.append(f"load median {med(runs):.2f}, max {max(runs):.2f}")
    if "reload" in results:
        parts.append(f"reload {results['reload']['foreign_cores']:.2f}")
    if "rest" in results:
        runs = [r["foreign_cores"] for rs in results["rest"]["runs"].values() for r in rs]
        parts.append(f"REST median {med(runs):.2f}, max {max(runs):.2f}")
    return "; ".join(parts) or "-"


def header(meta: dict[str, Any], foreign: str, elapsed: float) -> list[str]:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    counts = meta.get("counts")
    packs = (
        f"{counts['packs']} pack files, {counts['tools']:,} tools ({counts['sql_tools']} SQL over "
        f"SQLite, {counts['rest_tools']} REST), {counts['resources']} resources, "
        f"{counts['prompts']} prompts"
        if counts
        else "no generated packs (load and reload not run)"
    )
    return [
        f"### Catalyst knowledge packs — load, hot reload, REST tool overhead, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"- Machine: {os.cpu_count()} CPUs ({model}), Linux {platform.release()}, load average "
        f"{meta['load_start']:.2f} at start, {os.getloadavg()[0]:.2f} at end.",
        f"- Gateway code: {code_version()}. Python {platform.python_version()}; catalyst-mcp "
        f"{_version('catalyst-mcp')}, PyYAML {_version('PyYAML')}, pydantic "
        f"{_version('pydantic')}, SQLAlchemy {_version('SQLAlchemy')}, uvicorn "
        f"{_version('uvicorn')}, client httpx2 {_version('httpx2')}.",
        f"- {packs}. {meta['rounds']} rounds for load and REST (median of rounds), "
        f"{meta['reloads']} reload edits, {meta['requests']} requests per REST batch after "
        f"{meta['warmup']} warm-up. Run time {elapsed:.0f}s.",
        f"- CPU used by other processes while measuring (cores; this machine has "
        f"{os.cpu_count()}): {foreign}. When it is high, trust the CPU µs columns more than "
        "the latencies.",
        "",
    ]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def load_rows(load: dict[str, Any], packs: int, tools: int) -> tuple[list[str], bool]:
    cold = load["cold"]
    construct = [r["construct_s"] for r in cold]
    imports = [r["import_s"] for r in cold]
    median = med(construct)
    ok = median < TARGET_LOAD_S
    phased = load["phases"]
    warm = ""
    if phased:
        per_pack = med([r["construct_s"] for r in phased]) / packs * 1000
        warm = f" ({per_pack:.1f} ms once the pack stack is imported)"
    rows = [
        f"| Load {packs} packs, {tools:,} tools: `Gateway(Settings)` in a fresh process, as "
        f"`catalyst serve` starts | {ms(median)} | max {ms(max(construct))}, spread "
        f"{spread(construct):.0f}% | {median / packs * 1000:.1f} ms per pack{warm}; importing "
        f"`Gateway` and `Settings` before it: {ms(med(imports))} | < {ms(TARGET_LOAD_S)} "
        f"| {verdict(ok)} |"
    ]
    if phased:
        construct = [r["construct_s"] for r in phased]
        stack = med([r["stack_import_s"] for r in phased])
        timed = [n for n in PHASES if all(n in r["phases_s"] for r in phased)]
        parts = ", ".join(f"{n} {ms(med([r['phases_s'][n] for r in phased]))}" for n in timed)
        rows.append(
            f"| … the same with the pack stack imported beforehand (where the time goes) "
            f"| {ms(med(construct))} | spread {spread(construct):.0f}% | pack stack import "
            f"{ms(stack)}; {parts} | info | |"
        )
    return rows, ok


def reload_rows(reload: dict[str, Any]) -> tuple[list[str], bool]:
    lat = reload["latencies_s"]
    median = med(lat)
    n = len(lat)
    ok = median < TARGET_RELOAD_S and reload["listed"] == n
    return [
        f"| Hot reload: pack file written → `notifications/tools/list_changed` received "
        f"| {ms(median)} | p90 {ms(quantile(lat, 0.9))}, max {ms(max(lat))} | {n} edits of "
        f"different packs (a tool added or renamed); the new tool in `tools/list` after "
        f"{reload['listed']}/{n} | < {ms(TARGET_RELOAD_S)} | {verdict(ok)} |"
    ], ok


def rest_rows(rest: dict[str, Any]) -> tuple[list[str], bool]:
    direct, gateway = rest["runs"]["direct"], rest["runs"]["gateway"]
    a = [r["median_ms"] for r in direct]
    b = [r["median_ms"] for r in gateway]
    per_round = [y - x for x, y in zip(a, b, strict=True)]
    overhead = med(per_round)
    ratio = med(b) / med(a)
    ok = overhead <= TARGET_REST_OVERHEAD_MS
    gw_cpu = med([r["cpu_us"]["gateway"] for r in gateway])
    ep_direct = med([r["cpu_us"]["endpoint"] for r in direct])
    ep_gateway = med([r["cpu_us"]["endpoint"] for r in gateway])
    rounds = ", ".join(f"{x:+.3f}" for x in per_round)
    return [
        f"| REST (a): `GET /items/7` straight to the endpoint | {med(a):.3f} ms | p99 "
        f"{med([r['p99_ms'] for r in direct]):.3f} ms, spread {spread(a):.0f}% | endpoint CPU "
        f"{ep_direct:.0f} µs/request | | |",
        f"| REST (b): `tools/call pack__get_item` through the gateway | {med(b):.3f} ms | p99 "
        f"{med([r['p99_ms'] for r in gateway]):.3f} ms, spread {spread(b):.0f}% | gateway CPU "
        f"**{gw_cpu:.0f} µs/call**; endpoint CPU {ep_gateway:.0f} µs/request | | |",
        f"| REST overhead (b - a) at the median, median of rounds | {overhead:+.3f} ms "
        f"| rounds: {rounds} ms | ratio b/a {ratio:.2f}x | ≤ {TARGET_REST_OVERHEAD_MS:.2f} ms "
        f"| {verdict(ok)} |",
    ], ok


LABELS = {
    "load": ("Load of the generated packs", f"< {ms(TARGET_LOAD_S)}"),
    "reload": ("Hot reload: file written → `tools/list_changed`", f"< {ms(TARGET_RELOAD_S)}"),
    "rest": ("REST tool call overhead", f"≤ {TARGET_REST_OVERHEAD_MS:.2f} ms"),
}


def report(
    results: dict[str, Any], errors: dict[str, str], meta: dict[str, Any], elapsed: float
) -> tuple[str, bool]:
    """The Markdown report and whether every target that was measured is met."""
    lines = [
        *header(meta, other_load(results), elapsed),
        "| Measurement | median | spread / tail | detail | target | result |",
        "|---|--:|---|---|---|:-:|",
    ]
    ok = True
    for part in meta["parts"]:
        if part in errors:
            lines_of = [x.strip() for x in errors[part].splitlines() if x.strip()] or ["failed"]
            first = " ".join(lines_of[:2] if lines_of[0].endswith(":") else lines_of[:1])
            first = first if len(first) <= 300 else first[:299] + "…"
            label, target = LABELS[part]
            lines.append(
                f"| {label} | - | - | failed: {first.replace('|', '/')} | {target} | **ERROR** |"
            )
            ok = False
            continue
        if part == "load":
            rows, good = load_rows(results["load"], meta["packs"], meta["tools"])
        elif part == "reload":
            rows, good = reload_rows(results["reload"])
        else:
            rows, good = rest_rows(results["rest"])
        lines += rows
        ok = ok and good
    return "\n".join(lines), ok
