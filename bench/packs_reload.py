"""Measurement 2: hot reload, from a pack file written to ``notifications/tools/list_changed``.

One gateway serves the generated folder with ``packs.watch: true``; one legacy session keeps
its GET stream open. Each edit rewrites one pack file in place with a newly named extra tool
(so the pack's tool list really changes). The clock starts just before the file is opened for
writing and stops when the notification's data line is read from the stream; afterwards
``tools/list`` must show the new tool. Edits go to different packs (SQL, REST and mixed ones)
and wait for the gateway to be idle again before the next.

Before measuring, the gateway must be idle (start-up done, the watcher's first rescan done) and
two warm-up edits must be notified: this proves the watcher is on, and keeps its start-up out of
the numbers. A missing notification is an error with the gateway's log, never a hang.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, TextIO

from measure import CpuWatch
from packs_gateway import McpHttp, start_gateway
from packs_gen import dump, make_pack, pack_file, pack_name, tool_counts
from procs import BenchError, Proc, Processes, cpu_seconds

CHANGED = "notifications/tools/list_changed"
WARMUP_TIMEOUT = 60.0  # the first edit may wait for the watcher's start-up rescan
EDIT_TIMEOUT = 10.0
MIN_GAP = 0.3  # seconds between an edit's notification and the next edit, at least
IDLE_CPU = 0.05  # the gateway counts as idle when it used < 5% of a core ...
IDLE_WINDOW = 0.25  # ... over this many seconds
IDLE_TIMEOUT = 60.0


async def wait_idle(proc: Proc, timeout: float = IDLE_TIMEOUT) -> None:
    """Until the gateway uses (almost) no CPU: start-up, rescans and retirements are done."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(proc.pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(IDLE_WINDOW)
        if proc.popen.poll() is not None:
            raise BenchError(f"{proc.name} exited (code {proc.popen.returncode}):\n{proc.tail()}")
        now = cpu_seconds(proc.pid)
        if now - before < IDLE_CPU * IDLE_WINDOW:
            return
        before = now
    raise BenchError(f"{proc.name} never went idle within {timeout:.0f}s:\n{proc.tail()}")


class Editor:
    """Rewrites pack files of the folder, each time with a new extra tool."""

    def __init__(self, folder: Path, packs: int, tools: int, base_url: str) -> None:
        self.folder = folder
        self.counts = tool_counts(packs, tools)
        self.base_url = base_url
        self.edits = 0

    def prepare(self, index: int) -> tuple[Path, str, str]:
        """(file, its new text, the new tool's public name) of the next edit of pack ``index``."""
        self.edits += 1
        tool = f"added_{self.edits}"
        pack = make_pack(index, self.counts[index], self.base_url, extra_tool=tool)
        return pack_file(self.folder, index), dump(pack), f"{pack_name(index)}__{tool}"


async def edit_and_wait(
    client: McpHttp, editor: Editor, index: int, timeout: float
) -> tuple[float, str] | None:
    """Write one edit; the seconds until its notification (None if none came in time)."""
    file, text, tool = editor.prepare(index)
    client.drain()
    started = time.perf_counter()
    with file.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
    event = await client.wait_for(CHANGED, timeout)
    if event is None:
        return None
    return event.arrived - started, tool


async def run_reload(
    procs: Processes,
    workdir: Path,
    folder: Path,
    packs: int,
    tools: int,
    base_url: str,
    reloads: int,
    log: TextIO,
) -> dict[str, Any]:
    print("  starting a gateway on the pack folder (watch: true) ...", file=log)
    proc, url = start_gateway(procs, "reload-gateway", workdir, folder, watch=True)
    editor = Editor(folder, packs, tools, base_url)
    async with McpHttp(url) as client:
        listed = await client.tool_names()
        if len(listed) != tools:
            raise BenchError(f"the gateway lists {len(listed)} tools, expected {tools}")
        await client.open_session()
        await wait_idle(proc)
        for warm in range(2):
            got = await edit_and_wait(client, editor, packs - 1 - warm, WARMUP_TIMEOUT)
            if got is None:
                raise BenchError(
                    f"hot reload: no {CHANGED} within {WARMUP_TIMEOUT:.0f}s of editing "
                    f"{pack_file(folder, packs - 1 - warm).name} (is hot reload, packs.watch, in "
                    f"place?). Gateway log:\n{proc.tail()}"
                )
            print(f"  warm-up edit {warm + 1}: notified after {got[0] * 1000:.0f} ms", file=log)
            await wait_idle(proc)
        watch = CpuWatch()
        watch.track(procs)
        before = watch.snapshot()
        latencies: list[float] = []
        listed_ok = 0
        edits: list[dict[str, Any]] = []
        for k in range(reloads):
            index = (k * 37) % packs
            await asyncio.sleep(MIN_GAP)
            await wait_idle(proc)
            got = await edit_and_wait(client, editor, index, EDIT_TIMEOUT)
            if got is None:
                raise BenchError(
                    f"hot reload: edit {k + 1} ({pack_file(folder, index).name}) was not "
                    f"notified within {EDIT_TIMEOUT:.0f}s. Gateway log:\n{proc.tail()}"
                )
            seconds, tool = got
            present = tool in await client.tool_names()
            listed_ok += present
            latencies.append(seconds)
            edits.append({"pack": pack_name(index), "tool": tool, "ms": seconds * 1000})
            print(
                f"  reload {k + 1}/{reloads} {pack_name(index)}: {seconds * 1000:6.1f} ms"
                f"{'' if present else '  (new tool NOT listed)'}",
                file=log,
            )
        foreign = watch.foreign(before, watch.snapshot())
    return {"latencies_s": latencies, "listed": listed_ok, "edits": edits, "foreign_cores": foreign}
