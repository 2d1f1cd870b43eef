"""Measurement 1: loading a folder of packs as the gateway does at start, in a fresh process.

Every round runs two fresh interpreters (``python -c PROBE``), in alternating order:

* ``cold``: imports ``Gateway`` and ``Settings`` (timed: "import"), then times
  ``Gateway(Settings.model_validate({"packs": {"path": folder, "watch": False}}))``. That is
  exactly what ``catalyst serve`` does at start, lazy import of the pack stack (SQLAlchemy,
  jsonschema, jmespath, the REST connector) included. The target applies to this figure.
* ``phases``: imports the pack stack first (timed on its own), then builds the same gateway with
  the loader's steps timed: YAML parsing, validation (model + whole-pack checks), provider
  construction, registry insertion. It tells where the time goes.

Each probe also reports how many tools the gateway lists and any pack problems: a load that
refuses a pack is an error, not a fast result.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

from measure import CpuWatch
from packs_gateway import child_env
from procs import BenchError, Processes

PROBE_TIMEOUT = 180.0
# the pack stack the gateway imports lazily, and the loader's steps timed in "phases" mode
STACK = (
    "catalyst_mcp.packs.loader",
    "catalyst_mcp.packs.provider",
    "catalyst_mcp.packs.packset",
    "catalyst_mcp.packs.connectors.sql",
    "catalyst_mcp.packs.connectors.rest",
)
STEPS = (
    ("yaml", "catalyst_mcp.packs.loader", None, "read_yaml"),
    ("load_pack", "catalyst_mcp.packs.loader", None, "load_pack"),
    ("providers", "catalyst_mcp.packs.provider", "PackProvider", "__init__"),
    ("registry", "catalyst_mcp.registry", "Registry", "add"),
)

PROBE = r"""
import importlib, json, sys, time
started = time.perf_counter()
from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import Settings
imported = time.perf_counter()
folder, mode = sys.argv[1], sys.argv[2]
out = {"mode": mode, "import_s": imported - started}
phases = {}
if mode == "phases":
    t = time.perf_counter()
    for name in STACK:
        try:
            importlib.import_module(name)
        except ImportError:
            out.setdefault("not_imported", []).append(name)
    out["stack_import_s"] = time.perf_counter() - t

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            begun = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[key] = phases.get(key, 0.0) + time.perf_counter() - begun
        return wrapper

    # (phase, module, class or None, function): wrapped where they exist (the code moves on)
    for key, module, owner, attr in STEPS:
        target = sys.modules.get(module)
        if owner is not None:
            target = getattr(target, owner, None)
        if target is not None and hasattr(target, attr):
            setattr(target, attr, timed(key, getattr(target, attr)))
begun = time.perf_counter()
gateway = Gateway(Settings.model_validate({"packs": {"path": folder, "watch": False}}))
out["construct_s"] = time.perf_counter() - begun
if mode == "phases":
    if "load_pack" in phases:
        phases["validation"] = phases.pop("load_pack") - phases.get("yaml", 0.0)
    phases["other"] = out["construct_s"] - sum(phases.values())
    out["phases_s"] = phases
out["tools"] = len(gateway.registry.items("tools"))
out["providers"] = len(gateway.registry.providers)
out["problems"] = [str(p) for p in gateway.pack_problems]
print(json.dumps(out))
"""


def probe(procs: Processes, folder: Path, mode: str, name: str) -> dict[str, Any]:
    proc = procs.start(
        name,
        [sys.executable, "-c", f"STACK = {STACK!r}\nSTEPS = {STEPS!r}\n{PROBE}", str(folder), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        out, _ = proc.popen.communicate(timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"load probe ({mode}) took over {PROBE_TIMEOUT:.0f}s") from exc
    if proc.popen.returncode != 0 or not out.strip():
        raise BenchError(
            f"load probe ({mode}) failed (code {proc.popen.returncode}):\n{proc.tail(25)}"
        )
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def measure_load(
    procs: Processes, folder: Path, expected_tools: int, rounds: int, log: TextIO
) -> dict[str, list[dict[str, Any]]]:
    """``rounds`` cold and phased loads of ``folder``, each in a fresh interpreter."""
    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "phases": []}
    for r in range(rounds):
        order = ("cold", "phases") if r % 2 == 0 else ("phases", "cold")
        for mode in order:
            watch = CpuWatch()
            before = watch.snapshot()
            result = probe(procs, folder, mode, f"load-{mode}-{r}")
            result["foreign_cores"] = watch.foreign(before, watch.snapshot())
            if result["problems"]:
                shown = "\n  ".join(result["problems"][:8])
                raise BenchError(f"the gateway refused packs while loading:\n  {shown}")
            if result["tools"] != expected_tools:
                raise BenchError(
                    f"the gateway lists {result['tools']} tools after loading, "
                    f"expected {expected_tools}"
                )
            runs[mode].append(result)
            print(
                f"  load round {r + 1}/{rounds} {mode:6}: construct "
                f"{result['construct_s'] * 1000:7.1f} ms (imports {result['import_s'] * 1000:.0f}"
                f" ms)",
                file=log,
            )
    return runs
