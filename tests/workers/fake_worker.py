"""A stand-in worker for the supervisor's tests: speaks the control line as a real worker does,
in milliseconds, and does what its spec's ``fake`` part says.

``fake``: ``record`` (a folder: each relayed message is appended to ``<index>.jsonl``), ``fail``
(say this and exit 3 instead of ready), ``crash_once`` (exit 7 soon after the first ready; the
restarted one serves), ``publish`` (the worker numbers that send a config change once the test
writes ``go`` into the record folder).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from catalyst_mcp.workers.control import ControlLine


async def main(spec: dict[str, Any]) -> int:
    fake = spec["fake"]
    index = spec["index"]
    record = Path(fake["record"])
    control = await ControlLine.open(socket.socket(fileno=spec["control"]))
    if fake.get("fail"):
        control.send({"event": "failed", "message": fake["fail"], "code": 3})
        await control.drain()
        return 3
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    control.send({"event": "ready"})
    marker = record / f"crashed-{index}"
    if fake.get("crash_once") and not marker.exists():
        marker.write_text(str(os.getpid()))
        await asyncio.sleep(0.2)
        return 7
    if index in fake.get("publish", []):  # once the test says go (the others are ready then)
        while not (record / "go").exists():
            await asyncio.sleep(0.02)
        control.send({"event": "config", "a": "admin.roles.put", "p": {"name": "r"}, "by": "ada"})

    async def follow() -> None:
        while (message := await control.receive()) is not None:
            with (record / f"{index}.jsonl").open("a") as out:
                out.write(json.dumps(message) + "\n")
        stop.set()

    task = asyncio.get_running_loop().create_task(follow())
    await stop.wait()
    task.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(json.loads(sys.argv[1]))))
