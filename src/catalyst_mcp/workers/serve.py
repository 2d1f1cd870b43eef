"""``catalyst serve`` with more than one worker: bind, warn, supervise, report."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from catalyst_mcp.cli.common import CliError
from catalyst_mcp.settings import Settings
from catalyst_mcp.transports.serving import ServerError
from catalyst_mcp.workers.listeners import Listeners
from catalyst_mcp.workers.metricsdir import MetricsFolder
from catalyst_mcp.workers.supervisor import Supervisor, WorkersFailed

__all__ = ["legacy_sessions_warning", "serve_workers", "shared_sessions"]

log = logging.getLogger("catalyst.workers")


def shared_sessions(settings: Settings) -> bool:
    """Whether legacy sessions are kept where every worker finds them: in Redis, when
    ``redis.url`` is set (docs/decisions/024). Read by name, so that this holds whether or not
    that section exists in this build."""
    redis = getattr(settings, "redis", None)
    return bool(getattr(redis, "url", None))


def legacy_sessions_warning(settings: Settings, count: int) -> str | None:
    """What ``count`` workers mean for legacy-era clients, when their sessions are not shared."""
    if count <= 1 or shared_sessions(settings):
        return None
    return (
        f"{count} workers without shared session state: a legacy-era client (protocol "
        "2025-11-25 and older, and /sse) has its session in the worker that created it, and a "
        "request that another worker receives gets HTTP 404 (the session is unknown there) "
        "and must initialize again. Modern-era (2026-07-28) clients are not affected. For "
        "legacy clients set redis.url, or serve them with 1 worker (docs/deploy.md)."
    )


def serve_workers(
    settings: Settings, config_file: Path | None, overrides: dict[str, Any], count: int
) -> None:
    """Serve on ``count`` worker processes until SIGTERM/SIGINT (raises :class:`CliError`
    when they cannot start)."""
    from catalyst_mcp.cli.serve import _run

    warning = legacy_sessions_warning(settings, count)
    if warning is not None:
        log.warning("%s", warning)
    try:
        listeners = Listeners(settings.gateway)
    except ServerError as exc:
        raise CliError(str(exc)) from exc
    gateway = {k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items()}
    if listeners.unix is None:
        gateway["port"] = listeners.port  # port 0: the one chosen, for every worker
    spec = {"config": str(config_file) if config_file else None, "gateway": gateway}

    def announce(supervisor: Supervisor) -> None:
        path = settings.gateway.mcp_path
        if listeners.unix is not None:
            where = f"http://localhost{path} on the Unix socket {listeners.unix.path}"
        else:
            where = ", ".join(f"http://{hostport}{path}" for hostport in listeners.where())
        pids = ", ".join(str(pid) for pid in supervisor.pids)
        click.echo(
            f"catalyst: serving MCP at {where} with {count} workers (pids {pids}; "
            f"{len(settings.servers)} servers configured)",
            err=True,
        )

    metrics = MetricsFolder(os.environ)
    supervisor = Supervisor(
        count,
        listeners,
        spec,
        on_started=announce,
        environ=metrics.environ,
        on_exit=metrics.worker_died,
    )
    try:
        _run(supervisor.run())
    except WorkersFailed as exc:
        raise CliError(str(exc), exc.exit_code) from exc
    finally:
        listeners.close()
        metrics.close()
