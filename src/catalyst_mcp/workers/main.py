"""The supervisor process of ``catalyst serve --workers N`` (what ``catalyst serve`` becomes).

``python -m catalyst_mcp.workers.main SPEC``: ``SPEC`` is the JSON that
:func:`catalyst_mcp.workers.serve.supervisor_spec` writes. It binds the address, supervises the
workers until SIGTERM/SIGINT and exits 0, or prints ``error: ...`` and exits non-zero when the
address is taken or the workers cannot start. It imports no more than it needs: the settings,
the gateway and its libraries are the workers' business.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

from catalyst_mcp.workers.listeners import ListenError, Listeners
from catalyst_mcp.workers.metricsdir import MetricsFolder
from catalyst_mcp.workers.supervisor import Supervisor, WorkersFailed

__all__ = ["run"]


def _announce(spec: dict[str, Any], listeners: Listeners, supervisor: Supervisor) -> None:
    path = spec["mcp_path"]
    if listeners.unix is not None:
        where = f"http://localhost{path} on the Unix socket {listeners.unix.path}"
    else:
        where = ", ".join(f"http://{hostport}{path}" for hostport in listeners.where())
    pids = ", ".join(str(pid) for pid in supervisor.pids)
    print(
        f"catalyst: serving MCP at {where} with {spec['count']} workers (pids {pids}; "
        f"{spec['servers']} servers configured)",
        file=sys.stderr,
        flush=True,
    )


def run(spec: dict[str, Any]) -> int:
    from catalyst_mcp.observability.logs import setup_logging

    setup_logging(spec["log_level"], spec["log_format"])
    try:
        listeners = Listeners(**spec["listen"])
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    worker = dict(spec["worker"])
    if listeners.unix is None:  # port 0: the one chosen, for every worker
        worker["gateway"] = {**worker["gateway"], "port": listeners.port}
    metrics = MetricsFolder(os.environ)
    supervisor = Supervisor(
        spec["count"],
        listeners,
        worker,
        on_started=lambda s: _announce(spec, listeners, s),
        environ=metrics.environ,
        on_exit=metrics.worker_died,
    )
    try:
        _run(supervisor.run())
    except WorkersFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        listeners.close()
        metrics.close()
    return 0


def _run(main: Any) -> None:
    with contextlib.suppress(KeyboardInterrupt):  # signals are handled in the loop
        asyncio.run(main)  # the supervisor's loop is idle: plain asyncio does


if __name__ == "__main__":
    sys.exit(run(json.loads(sys.argv[1])))
