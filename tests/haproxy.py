"""A real round-robin load balancer in front of gateway instances: HAProxy (Debian's
``haproxy`` package), started on an ephemeral loopback port with a generated config and stopped
by its PID.

Every request may reach another instance: ``balance roundrobin``, no stickiness, the connection
to an instance closed after each response (``option http-server-close``, ``http-reuse never``),
so the next request of a kept-alive client connection is balanced again. Each response names the
instance that served it in ``X-Served-By``. An instance that stops answering is taken out by the
health checks (every 200 ms), and a request whose connection it refuses goes to another
(``retries`` with ``option redispatch``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import Process, free_port, require_or_skip, wait_for_port

__all__ = ["SERVED_BY", "Haproxy", "haproxy_or_skip"]

SERVED_BY = "x-served-by"

CONFIG = """\
global
    maxconn 512

defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-request 10s
    retries 3
    option redispatch 1
    option http-server-close
    http-reuse never

frontend mcp
    bind 127.0.0.1:{port}
    default_backend gateways

backend gateways
    balance roundrobin
    http-response set-header X-Served-By %s
{servers}
"""


def haproxy_or_skip() -> str:
    """The haproxy program (skipped without it, a failure under CI=true: .ci/run installs
    it)."""
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    require_or_skip(
        found is not None, "haproxy is not installed (Debian: apt-get install -y haproxy)"
    )
    assert found is not None
    return found


class Haproxy:
    """HAProxy balancing over the gateways on ``ports`` (named g0, g1, ... in that order)."""

    def __init__(self, program: str, ports: list[int], folder: Path) -> None:
        self.port = free_port()
        servers = "\n".join(
            f"    server g{i} 127.0.0.1:{port} check inter 200ms fall 2 rise 1"
            for i, port in enumerate(ports)
        )
        self.config = folder / "haproxy.cfg"
        self.config.write_text(CONFIG.format(port=self.port, servers=servers), encoding="utf-8")
        # -db: stay in the foreground (its PID is the one to stop)
        self.process = Process([program, "-db", "-f", str(self.config)])
        wait_for_port(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        self.process.stop()
