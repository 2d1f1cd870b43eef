"""Run the official MCP conformance suite against the gateway serving the conformance fixture.

    .venv/bin/python conformance/run.py            # both requirement sets (make conformance)
    .venv/bin/python conformance/run.py --requirements 2025-11-25

What it does, on a fresh machine too:

1-2. finds Node >= 22 and installs the pinned ``@modelcontextprotocol/conformance`` into
   ``.node/`` (gitignored) unless it is there, with ``scripts/node_deps.py``;
3. starts ``catalyst serve --config conformance/catalyst.yaml`` on a free loopback port, with the
   venv's bin directory first on PATH (the config starts the fixture as ``python``), and waits
   for ``/ready``;
4. runs the suite with ``--requirements 2026-07-28`` and then ``2025-11-25``, each writing its
   per-scenario ``checks.json`` files to ``.conformance-results/<requirements>/``, and prints each
   summary (plus every failed check of a failed scored scenario);
5. stops the gateway by its PID.

The exit code is 0 when both runs pass every scored scenario, 1 when one does not, and 2 when
Node or the suite cannot be installed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import node_deps  # noqa: E402  (scripts/ is not a package)
from node_deps import Node, SetupError  # noqa: E402

CONFIG = ROOT / "conformance" / "catalyst.yaml"
NODE_PREFIX = ROOT / ".node"
RESULTS = ROOT / ".conformance-results"
SUITE_PACKAGE = "@modelcontextprotocol/conformance"
REQUIREMENTS = ("2026-07-28", "2025-11-25")
# Ports other services on a developer machine or CI runner may own; never use them.
RESERVED_PORTS = frozenset({1883, 3306, 4222, 5432, 5672, 6379, 8765})
READY_SECONDS = 60.0
SUITE_SECONDS = 300.0


@dataclass(frozen=True)
class RunResult:
    requirements: str
    exit_code: int
    summary: str
    failures: list[str]
    output: str

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def report(self) -> str:
        lines = [f"--- conformance {self.requirements}: exit {self.exit_code}", self.summary]
        if self.failures:
            lines += ["Failed checks:", *(f"  {f}" for f in self.failures)]
        return "\n".join(lines)


# ---- Node and the suite ---------------------------------------------------------------------


def suite_entry(prefix: Path = NODE_PREFIX) -> Path:
    return prefix / "node_modules" / SUITE_PACKAGE / "dist" / "index.js"


def install_suite(prefix: Path = NODE_PREFIX) -> tuple[Node, Path]:
    """Node and the pinned suite (installed with the other Node peers when missing)."""
    node = node_deps.install(prefix)
    return node, suite_entry(prefix)


def node_env(node: Node) -> dict[str, str]:
    return node.env()


# ---- the gateway ----------------------------------------------------------------------------


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def catalyst_command() -> list[str]:
    script = Path(sys.executable).parent / "catalyst"
    if script.exists():
        return [str(script)]
    found = shutil.which("catalyst")
    if found is None:
        raise SetupError("the catalyst command is not installed (pip install -e .)")
    return [found]


def gateway_env(state: Path) -> dict[str, str]:
    """The config starts the fixture as ``python``: make that this interpreter's venv. The
    gateway's database (its audit trail) goes to ``state``, never the user's own state folder."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "XDG_STATE_HOME": str(state)}


@contextlib.contextmanager
def running_gateway(port: int, log_path: Path) -> Iterator[str]:
    """``catalyst serve`` on ``port`` in its own process group; yields its MCP URL."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [*catalyst_command(), "serve", "--config", str(CONFIG), "--port", str(port)]
    with log_path.open("wb") as log, tempfile.TemporaryDirectory(prefix="catalyst-state-") as state:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=gateway_env(Path(state)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ready(process, port, log_path)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            stop(process)


def wait_ready(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    url = f"http://127.0.0.1:{port}/ready?strict"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SetupError(f"the gateway exited with {process.returncode}; see {log_path}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise SetupError(f"the gateway was not ready within {READY_SECONDS:.0f}s; see {log_path}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the gateway (and the fixture it started) by its PID's process group."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


# ---- the suite ------------------------------------------------------------------------------


def run_suite(node: Node, entry: Path, url: str, requirements: str) -> RunResult:
    out = RESULTS / requirements
    shutil.rmtree(out, ignore_errors=True)
    command = [str(node.node), str(entry), "server", "--url", url]
    command += ["--requirements", requirements, "-o", str(out)]
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=node_env(node),
            capture_output=True,
            text=True,
            timeout=SUITE_SECONDS,
        )
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code, output = 1, f"the suite did not finish within {SUITE_SECONDS:.0f}s: {exc}"
    summary = summary_of(output)
    return RunResult(requirements, code, summary, failed_checks(summary, out), output)


def summary_of(output: str) -> str:
    start = output.find("=== SUMMARY ===")
    return output[start:].strip() if start != -1 else output.strip()[-4000:]


def failed_scored(summary: str) -> list[str]:
    """Scored scenarios the summary marks failed.

    The summary lists every scenario that ran; the unscored ones are repeated after a
    "Not scored for ..." line, indented, as ``✗ name (reason)``.
    """
    listing, _, unscored = summary.partition("Not scored for")
    failed = re.findall(r"^✗ ([\w.-]+):", listing, flags=re.MULTILINE)
    not_scored = set(re.findall(r"^\s+[✓✗] ([\w.-]+) \(", unscored, flags=re.MULTILINE))
    return [name for name in failed if name not in not_scored]


def failed_checks(summary: str, out: Path) -> list[str]:
    failures = []
    for scenario in failed_scored(summary):
        for checks in sorted(out.glob(f"server-{scenario}-*/checks.json")):
            with contextlib.suppress(OSError, ValueError):
                for check in json.loads(checks.read_text()):
                    if check.get("status") == "FAILURE":
                        why = check.get("errorMessage") or check.get("description") or ""
                        failures.append(f"{scenario}: [{check.get('id')}] {why}")
    return failures


def run_all(requirements: Sequence[str] = REQUIREMENTS) -> list[RunResult]:
    """Install what is missing, start the gateway, run each requirement set, stop it."""
    node, entry = install_suite()
    results = []
    with running_gateway(free_port(), RESULTS / "gateway.log") as url:
        for revision in requirements:
            print(f"running the conformance suite ({revision}) against {url} ...", flush=True)
            result = run_suite(node, entry, url, revision)
            print(result.report(), flush=True)
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requirements",
        action="append",
        choices=REQUIREMENTS,
        help="requirement set to run (repeatable; default: both)",
    )
    options = parser.parse_args(argv)
    try:
        results = run_all(options.requirements or REQUIREMENTS)
    except SetupError as exc:
        print(f"conformance: cannot run the suite: {exc}", file=sys.stderr)
        return 2
    failed = [r.requirements for r in results if not r.passed]
    if failed:
        print(f"conformance: FAILED for {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"conformance: passed ({', '.join(r.requirements for r in results)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
