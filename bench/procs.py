"""The benchmark's processes: ports, servers, stdio drivers and the targets they form.

Every process the benchmark starts goes through ``Processes``, which stops them by PID (with
any stdio children they left behind). ``build_targets`` starts every upstream, gateway and stdio
driver and returns the direct/gateway pairs to measure. The /proc readers here (children,
CPU time, memory) are shared with the measurements in ``measure.py``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcpwire import call_body, call_headers, is_good_result

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

# Ports other services on this machine use: never bind or pick them.
RESERVED_PORTS = frozenset({5432, 3306, 6379, 5672, 1883, 4222, 8765})
UPSTREAMS = {  # label, script, the serverInfo name it reports
    "sdk": ("SDK MCPServer", BENCH / "upstream_sdk.py", "bench-echo"),
    "lean": ("lean echo", BENCH / "upstream_lean.py", "lean-echo"),
}
GATEWAY_SERVER = "up"  # the upstream's name in the gateway config; tools become up__echo


class BenchError(Exception):
    pass


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


def ready(port: int) -> bool:
    """The gateway on 127.0.0.1:``port`` answers ``/ready?strict`` with 200 (False while it
    does not listen yet)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return False
    try:
        sock.sendall(b"GET /ready?strict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return sock.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()


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
        "packs": {"path": None},
        # the proxy path alone: what auth, RBAC, rate limits and audit add is bench/access.py's
        "audit": {"enabled": False},
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
