"""One worker of ``catalyst serve --workers N``: a full gateway on the sockets its supervisor bound.

Started by :class:`~catalyst_mcp.workers.supervisor.Supervisor` as
``python -m catalyst_mcp.workers.child SPEC`` with the listening sockets and its end of the
control line passed as open descriptors. ``SPEC`` is JSON: ``index`` (its number, from 1),
``listening`` and ``control`` (descriptor numbers), ``config`` (the file the supervisor loaded,
or null), ``gateway`` (the command line's overrides of ``gateway:``), ``log_format``.

It loads its settings as the supervisor did (the same file, the same environment, the same
overrides), so a worker restarted after a config edit serves what the other workers serve
after hot-reloading it. It says ``ready`` once it listens, stops gracefully on SIGTERM (which the
supervisor forwards), and also stops when the supervisor's end of the control line closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_FAILED, CliError, setup_logging
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.settings import Settings, load_settings
from catalyst_mcp.workers.control import ControlLine
from catalyst_mcp.workers.relay import Relay

__all__ = ["main", "settings_for"]


def settings_for(spec: dict[str, Any]) -> tuple[Settings, Path | None]:
    """The worker's settings: the supervisor's file and environment, with its overrides."""
    config = Path(spec["config"]) if spec.get("config") else None
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise CliError(f"invalid configuration:\n{exc}", EXIT_CONFIG) from exc
    overrides = dict(spec.get("gateway") or {})
    if overrides.get("uds") is not None:
        overrides["uds"] = Path(overrides["uds"])
    if overrides:
        gateway = settings.gateway.model_copy(update=overrides)
        settings = settings.model_copy(update={"gateway": gateway})
    return settings, config


async def _serve(spec: dict[str, Any], control: ControlLine) -> None:
    from catalyst_mcp.cli.serve import _serve_http
    from catalyst_mcp.transports.serving import HttpServer

    settings, config = settings_for(spec)
    setup_logging(settings.gateway.log_level, settings.log.format)
    listening = [socket.socket(fileno=fd) for fd in spec["listening"]]
    relay = Relay(control)
    stopper: asyncio.Task[None] | None = None

    def started(server: HttpServer) -> None:
        nonlocal stopper
        control.send({"event": "ready"})
        follow = _follow_supervisor(control, server, relay)
        stopper = asyncio.get_running_loop().create_task(follow)

    try:
        await _serve_http(
            settings,
            config,
            listening=listening,
            worker=spec["index"],
            on_started=started,
            on_gateway=relay.attach,
        )
    finally:
        if stopper is not None:
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper


async def _follow_supervisor(control: ControlLine, server: Any, relay: Relay) -> None:
    """Apply the other workers' changes the supervisor passes on; stop gracefully once the
    supervisor is gone (its end of the line closed)."""
    while (message := await control.receive()) is not None:
        if message.get("event") == "config":
            relay.received(message)
    server.stop()


async def _main(spec: dict[str, Any]) -> int:
    control = await ControlLine.open(socket.socket(fileno=spec["control"]))
    try:
        await _serve(spec, control)
    except CliError as exc:
        control.send({"event": "failed", "message": exc.format_message(), "code": exc.exit_code})
        await control.drain()
        return exc.exit_code
    except Exception as exc:  # logged with its trace by the gateway; the supervisor says it
        control.send({"event": "failed", "message": f"{type(exc).__name__}: {exc}"})
        await control.drain()
        return EXIT_FAILED
    finally:
        control.close()
    return 0


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    for fd in (*spec["listening"], spec["control"]):
        # passed in inheritable: no process this worker starts (its stdio servers) may hold
        # them, or a dead worker's socket would stay open, queueing connections nobody takes
        os.set_inheritable(fd, False)
    try:
        import uvloop

        return uvloop.run(_main(spec))
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(_main(spec))
    except KeyboardInterrupt:  # pragma: no cover - the supervisor forwards signals, not ^C
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
