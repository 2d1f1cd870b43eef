"""Time to the first successful ``tools/call`` of an MCP server package: Catalyst's install
(``catalyst packages install`` into an isolated prefix, then the gateway starting the installed
entry point) against ``npx -y PKG`` and ``uvx PKG`` resolving the package at start, with empty
caches (cold) and warm ones.

    make bench-packages                       # = .venv/bin/python bench/packages.py
    .venv/bin/python bench/packages.py --rounds 5 --json /tmp/packages.json

Every row ends with the same client: ``catalyst tools call`` (a gateway in process, which
starts the server over stdio, handshakes and calls one tool), so the rows differ only in how
the server gets onto the machine. Needs the npm registry and PyPI; ``uvx`` rows need uv (a dev
dependency). Prints a Markdown table of medians on stdout, progress on stderr; exit code 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
CATALYST = str(BIN / "catalyst")


@dataclass(frozen=True)
class Target:
    label: str
    catalog: str  # name in the catalog
    runtime: str  # npm or pypi
    package: str
    tool: str
    arguments: dict[str, str]


TARGETS = [
    Target(
        "memory (npm)",
        "io.github.modelcontextprotocol/server-memory",
        "npm",
        "@modelcontextprotocol/server-memory@2026.8.31",
        "read_graph",
        {},
    ),
    Target(
        "time (PyPI)",
        "io.github.modelcontextprotocol/server-time",
        "pypi",
        "mcp-server-time==2026.10.19",
        "get_current_time",
        {"timezone": "UTC"},
    ),
]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def call(target: Target, env: dict[str, str], cwd: Path, server: list[str] | None) -> float:
    """``catalyst tools call``: the configured server (namespaced), or an ad-hoc command."""
    args = ["--args", json.dumps(target.arguments)]
    if server is None:
        name = "memory" if target.runtime == "npm" else "time"
        return timed([CATALYST, "tools", "call", f"{name}__{target.tool}", *args], env, cwd)
    return timed([CATALYST, "tools", "call", target.tool, *args, "--", *server], env, cwd)


def uvx() -> list[str] | None:
    for name in ("uvx",):
        found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
        if found:
            return [found]
    uv = shutil.which("uv") or (str(BIN / "uv") if (BIN / "uv").exists() else None)
    return [uv, "tool", "run"] if uv else None


def one_round(target: Target, work: Path, results: dict[str, list[float]]) -> None:
    caches = work / "caches"
    shutil.rmtree(caches, ignore_errors=True)
    env = {
        **os.environ,
        "npm_config_cache": str(caches / "npm"),
        "UV_CACHE_DIR": str(caches / "uv"),
        "PIP_CACHE_DIR": str(caches / "pip"),
        "npm_config_update_notifier": "false",
    }

    def record(row: str, seconds: float) -> None:
        results.setdefault(f"{target.label}|{row}", []).append(seconds)
        log(f"  {target.label:14} {row:40} {seconds:6.2f} s")

    # Catalyst: install (cold caches, empty state folder), then the first call
    for temperature in ("cold", "warm"):
        home = work / f"catalyst-{temperature}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir()
        run_env = {**env, "CATALYST_PACKAGES__DIR": str(home / "packages")}
        install = timed(
            [CATALYST, "packages", "install", target.catalog, "--offline", "--config", "c.yaml"],
            run_env,
            home,
        )
        run_env["CATALYST_CONFIG"] = str(home / "c.yaml")
        first = call(target, run_env, home, None)
        record(f"catalyst install + first call, {temperature}", install + first)
        if temperature == "warm":
            record("catalyst, installed: first call", call(target, run_env, home, None))
    # npx / uvx resolving the package at start
    shutil.rmtree(caches, ignore_errors=True)
    runner = ["npx", "-y", target.package] if target.runtime == "npm" else None
    if target.runtime == "pypi":
        found = uvx()
        runner = [*found, target.package.replace("==", "@")] if found else None
    if runner is None:
        return
    tool = "npx -y" if target.runtime == "npm" else "uvx"
    record(f"{tool} PKG, cold", call(target, env, work, runner))
    record(f"{tool} PKG, warm", call(target, env, work, runner))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Also write the raw timings here.")
    options = parser.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="catalyst-bench-packages-") as folder:
        work = Path(folder)
        for number in range(options.rounds):
            log(f"round {number + 1}/{options.rounds}")
            for target in TARGETS:
                one_round(target, work, results)
    print("| package | how | median s | min s | max s | runs |")
    print("|---|---|---:|---:|---:|---:|")
    for key, values in results.items():
        label, row = key.split("|")
        print(
            f"| {label} | {row} | {statistics.median(values):.2f} | {min(values):.2f} "
            f"| {max(values):.2f} | {len(values)} |"
        )
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
