"""``catalyst serve`` with more than one worker: check, warn, then become the supervisor.

The ``catalyst`` command has loaded the whole CLI (about 115 MB resident); the supervisor needs a
fraction of it. So, once the settings are checked, this process replaces itself
(``os.execv``, the same pid) with :mod:`catalyst_mcp.workers.main`, which imports only the
standard library, the supervisor and the log setup (about 30 MB).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from catalyst_mcp.settings import Settings

__all__ = ["legacy_sessions_warning", "serve_workers", "shared_sessions", "supervisor_spec"]

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


def supervisor_spec(
    settings: Settings, config_file: Path | None, overrides: dict[str, Any], count: int
) -> dict[str, Any]:
    """What :mod:`catalyst_mcp.workers.main` is told (JSON)."""
    gateway = settings.gateway
    return {
        "count": count,
        "listen": {
            "host": gateway.host,
            "port": gateway.port,
            "uds": str(gateway.uds) if gateway.uds is not None else None,
            "uds_mode": gateway.uds_mode,
        },
        "mcp_path": gateway.mcp_path,
        "servers": len(settings.servers),
        "log_level": gateway.log_level,
        "log_format": settings.log.format,
        "worker": {
            "config": str(config_file) if config_file else None,
            "gateway": {k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items()},
        },
    }


def serve_workers(
    settings: Settings, config_file: Path | None, overrides: dict[str, Any], count: int
) -> None:
    """Become the supervisor of ``count`` workers (never returns)."""
    warning = legacy_sessions_warning(settings, count)
    if warning is not None:
        log.warning("%s", warning)
    spec = json.dumps(supervisor_spec(settings, config_file, overrides, count))
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    sys.stdout.flush()
    argv = [sys.executable, "-m", "catalyst_mcp.workers.main", spec]
    os.execv(sys.executable, argv)  # noqa: S606 - this process becomes the supervisor
