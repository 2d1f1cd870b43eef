"""``catalyst serve --workers N``: N gateway processes on one address, and the process that
keeps them running.

:class:`Supervisor` binds the address once (:class:`~catalyst_mcp.workers.listeners.Listeners`),
then starts the workers (:mod:`catalyst_mcp.workers.child`): the first alone, so that what a
gateway does once at start-up (database migrations, say) is not raced by N processes, then
the others together. Each worker is a full gateway: its own event loop, upstream processes,
caches and legacy sessions, on the shared database (and Redis, when configured).

While they serve, it

* restarts a worker that exits (a crash, ``kill -9``) after a short delay, doubling while it
  keeps failing soon after starting (up to :data:`MAX_DELAY`);
* forwards SIGTERM and SIGINT to every worker, which stop gracefully (a second signal makes
  them cancel what is still running), waits for them, and exits 0;
* exits non-zero, with each failing worker's reason, when the workers cannot start.

Workers run in their own session, so a terminal's ^C reaches them once, forwarded, not twice.
A worker whose supervisor dies (even by ``kill -9``) sees its control line close and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catalyst_mcp.workers.control import ControlLine
from catalyst_mcp.workers.listeners import Listeners

__all__ = ["Supervisor", "WorkersFailed", "cpu_count"]

log = logging.getLogger("catalyst.workers")

FIRST_DELAY = 0.25  # before restarting a worker that died
MAX_DELAY = 30.0
STABLE_SECONDS = 30.0  # a worker up this long has its next restart delay reset
START_SECONDS = 120.0  # a worker not ready by then is stopped and counted as failed
STOP_SECONDS = 15.0  # after SIGTERM, before SIGKILL (the workers' own grace is 5 s)


def cpu_count() -> int:
    """The cores this process may run on (its CPU affinity), for ``workers: auto``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


class WorkersFailed(Exception):
    """The workers could not start; the message says which and why."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    control: ControlLine | None = None
    started_at: float = 0.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    failure: str | None = None
    exit_code: int | None = None
    delay: float = FIRST_DELAY
    restarts: int = 0
    terminated: bool = False  # sent SIGTERM already
    listener: asyncio.Task[None] | None = None  # reads its control line while it serves

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class Supervisor:
    """Runs ``count`` workers on ``listeners`` until a stop signal."""

    def __init__(
        self,
        count: int,
        listeners: Listeners,
        spec: dict[str, Any],
        *,
        on_started: Callable[[Supervisor], None] | None = None,
        python: str = sys.executable,
        environ: dict[str, str] | None = None,
        on_exit: Callable[[int], None] | None = None,
        module: str = "catalyst_mcp.workers.child",
    ) -> None:
        """``spec``: what every worker is told (:mod:`catalyst_mcp.workers.child`), less its
        number and descriptors. ``environ``: added to the workers' environment. ``on_exit``:
        called with the pid of each worker that has exited."""
        self.environ = environ
        self.on_exit = on_exit
        self.module = module
        self.relayed = 0  # configuration changes passed from one worker to the others
        self.count = count
        self.listeners = listeners
        self.spec = spec
        self.on_started = on_started
        self.python = python
        self.workers = [_Worker(i) for i in range(1, count + 1)]
        self.stopping = False
        self._stop = asyncio.Event()
        self._signals = 0
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    # ---- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Start the workers, keep them running until SIGTERM/SIGINT, then stop them.

        Raises :class:`WorkersFailed` when they cannot start."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            await self._start_all()
            if not self.stopping:
                if self.on_started is not None:
                    self.on_started(self)
                self._watchers = [
                    loop.create_task(self._keep(w), name=f"worker-{w.index}") for w in self.workers
                ]
                await self._stop.wait()
        finally:
            self.stopping = True
            for task in self._watchers:
                task.cancel()
            for task in self._watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._stop_all()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def stop(self) -> None:
        self.stopping = True
        self._stop.set()

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("stopping: the workers finish the requests in progress")
            self._terminate_all()  # now: a worker still starting stops once it has started
        else:  # a second signal: the workers cancel what still runs
            log.warning("second stop signal: the workers cancel the requests still running")
            self._terminate_all(again=True)
        self.stop()

    async def _start_all(self) -> None:
        first, *others = self.workers
        await self._start(first)
        if first.failure is None and others and not self.stopping:
            await asyncio.gather(*(self._start(w) for w in others))
        failed = [w for w in self.workers if w.failure is not None]
        if failed and not self.stopping:
            reasons = "\n".join(f"worker {w.index}: {w.failure}" for w in failed)
            code = next((w.exit_code for w in failed if w.exit_code), 1)
            raise WorkersFailed(f"the workers could not start:\n{reasons}", code)

    async def _start(self, worker: _Worker) -> None:
        """Spawn ``worker`` and wait until it listens, or has failed (``worker.failure``)."""
        worker.ready.clear()
        worker.failure = None
        worker.exit_code = None
        worker.terminated = False
        try:
            listening = self.listeners.for_worker()
        except Exception as exc:  # the address was taken meanwhile, say
            worker.failure = str(exc)
            return
        ours, theirs = socket.socketpair()
        try:
            fds = [s.fileno() for s in listening]
            spec = {
                **self.spec,
                "index": worker.index,
                "listening": fds,
                "control": theirs.fileno(),
            }
            worker.process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                self.module,
                json.dumps(spec),
                stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, **self.environ} if self.environ else None,
                pass_fds=[*fds, theirs.fileno()],
                start_new_session=True,  # ^C reaches the supervisor only; it forwards it once
            )
        except OSError as exc:
            ours.close()
            worker.failure = f"cannot start a worker process: {exc.strerror or exc}"
            return
        finally:
            theirs.close()
            if not self.listeners.shared:  # the worker holds them now; it alone listens on them
                for sock in listening:
                    sock.close()
        worker.started_at = time.monotonic()
        worker.control = await ControlLine.open(ours)
        await self._await_ready(worker)

    async def _await_ready(self, worker: _Worker) -> None:
        assert worker.control is not None and worker.process is not None
        try:
            async with asyncio.timeout(START_SECONDS):
                message = await worker.control.receive()
        except TimeoutError:
            message = {"event": "failed", "message": f"not ready after {START_SECONDS:.0f}s"}
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
        if message is not None and message.get("event") == "ready":
            worker.ready.set()
            worker.listener = asyncio.get_running_loop().create_task(self._listen(worker))
            return
        code = await worker.process.wait()
        self._exited(worker.process.pid)
        if message is None:  # it died before it could say why
            message = {"event": "failed", "message": f"it {_exit_text(code)} during start-up"}
        worker.failure = str(message.get("message") or "no reason given")
        worker.exit_code = int(message.get("code") or code or 1)

    async def _listen(self, worker: _Worker) -> None:
        """What a serving worker says: a configuration change made through its API goes to
        every other worker (workers/relay.py), until its line closes."""
        control = worker.control
        assert control is not None
        while (message := await control.receive()) is not None:
            if message.get("event") != "config":
                continue
            for other in self.workers:
                if other is not worker and other.ready.is_set() and other.control is not None:
                    other.control.send(message)
            self.relayed += 1

    async def _keep(self, worker: _Worker) -> None:
        """Restart ``worker`` whenever it exits, until the supervisor stops."""
        while not self.stopping:
            assert worker.process is not None
            code = await worker.process.wait()
            worker.ready.clear()  # nothing is relayed to it until its successor is ready
            self._exited(worker.process.pid)
            if self._stop.is_set():  # stopping meanwhile: not a crash
                return
            if worker.control is not None:
                worker.control.close()
            uptime = time.monotonic() - worker.started_at
            if uptime >= STABLE_SECONDS:
                worker.delay = FIRST_DELAY
            log.warning(
                "worker %d (pid %d) %s after %.1fs; restarting it in %.2gs",
                worker.index,
                worker.process.pid,
                _exit_text(code),
                uptime,
                worker.delay,
            )
            await asyncio.sleep(worker.delay)
            worker.delay = min(worker.delay * 2, MAX_DELAY)
            while not self.stopping:
                await self._start(worker)
                if worker.failure is None:
                    worker.restarts += 1
                    log.info("worker %d restarted (pid %s)", worker.index, worker.pid)
                    break
                log.error(
                    "worker %d could not restart: %s; trying again in %.2gs",
                    worker.index,
                    worker.failure,
                    worker.delay,
                )
                await asyncio.sleep(worker.delay)
                worker.delay = min(worker.delay * 2, MAX_DELAY)

    def _exited(self, pid: int) -> None:
        if self.on_exit is not None:
            self.on_exit(pid)

    # ---- stopping ------------------------------------------------------------------------------

    def _terminate_all(self, *, again: bool = False) -> None:
        """SIGTERM to each running worker (once, unless ``again``: a worker's second signal
        cancels the requests it still runs)."""
        for worker in self.workers:
            process = worker.process
            if process is None or process.returncode is not None:
                continue
            if worker.terminated and not again:
                continue
            worker.terminated = True
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)

    async def _stop_all(self) -> None:
        self._terminate_all()
        running = [
            w.process
            for w in self.workers
            if w.process is not None and w.process.returncode is None
        ]
        if running:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in running], timeout=STOP_SECONDS
            )
            if pending:
                log.warning(
                    "%d worker(s) still running after %.0fs: killing them",
                    len(pending),
                    STOP_SECONDS,
                )
                for process in running:
                    if process.returncode is None:
                        with contextlib.suppress(ProcessLookupError):
                            process.kill()
                await asyncio.wait(pending)
        for process in running:
            self._exited(process.pid)
        listening = [w.listener for w in self.workers if w.listener is not None]
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)
        for worker in self.workers:
            if worker.control is not None:
                worker.control.close()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "stopped"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"
