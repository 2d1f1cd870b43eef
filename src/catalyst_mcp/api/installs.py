"""Package installs started over the API: each runs in the background as a job whose progress
lines a client follows with long polling (as it follows a server's logs).

A job runs :meth:`PackageManager.install` (check, build aside, swap, then lock and config file)
with a :class:`JobProgress` that keeps every step and installer line, numbered. One install
runs at a time on a gateway (they share the lock file and the config file); the last
``KEEP_JOBS`` jobs are kept for reading back. When it ends, the job is recorded in the audit
trail as ``admin.packages.installed`` (``ok`` or ``error`` with the reason); the config file's
new server entry is then started by the config watcher, like any edit of the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from catalyst_mcp.errors import CatalystError
from catalyst_mcp.packages.manager import InstallOptions, InstallReport, PackageManager
from catalyst_mcp.packages.progress import Progress

__all__ = ["InstallJob", "InstallJobs", "JobLine", "JobProgress"]

log = logging.getLogger("catalyst.api")

KEEP_JOBS = 20
MAX_LINES = 2000  # a chatty installer's output beyond this is dropped (counted in ``missed``)
State = Literal["running", "ok", "failed"]


@dataclass(frozen=True, slots=True)
class JobLine:
    seq: int
    at: str
    kind: Literal["step", "output", "note"]
    text: str


@dataclass(slots=True)
class InstallJob:
    """One install: what was asked, its lines so far, and how it ended."""

    id: str
    package: str
    actor: str
    started_at: str
    state: State = "running"
    lines: deque[JobLine] = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    next_seq: int = 1
    finished_at: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, kind: Literal["step", "output", "note"], text: str) -> None:
        self.lines.append(JobLine(self.next_seq, _now(), kind, text[:2000]))
        self.next_seq += 1
        self._wake()

    def finish(self, state: State, *, error: str | None = None, result: Any = None) -> None:
        self.state = state
        self.error = error
        self.result = result
        self.finished_at = _now()
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def wait_after(self, after: int, seconds: float) -> None:
        """Return once there is a line after ``after`` or the job has ended (at most
        ``seconds``)."""
        deadline = time.monotonic() + seconds
        while self.state == "running" and self.next_seq - 1 <= after:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    def view(self, after: int = 0) -> dict[str, Any]:
        """The job as the API answers it, with the lines after ``after``."""
        first = self.lines[0].seq if self.lines else self.next_seq
        lines = [line for line in self.lines if line.seq > after]
        return {
            "id": self.id,
            "package": self.package,
            "actor": self.actor,
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "result": self.result,
            "lines": [
                {"seq": line.seq, "at": line.at, "kind": line.kind, "text": line.text}
                for line in lines
            ],
            "last_seq": self.next_seq - 1,
            "missed": max(0, first - after - 1),
        }


class JobProgress(Progress):
    """The installer's progress, kept as the job's lines instead of drawn on a terminal."""

    def __init__(self, job: InstallJob) -> None:
        super().__init__(quiet=True)
        self.job = job

    def step(self, text: str) -> None:
        self.step_text = text
        self.started = time.monotonic()
        self.job.add("step", f"{text} ...")

    def output(self, line: str) -> None:
        if line.strip():
            self.job.add("output", line.rstrip())

    def note(self, text: str) -> None:
        self.job.add("note", text)

    def done(self, text: str | None = None) -> None:
        if self.step_text is None:
            return
        seconds = time.monotonic() - self.started
        self.job.add("step", f"{text or self.step_text} ({seconds:.1f}s)")
        self.step_text = None


# the manager for a job's progress (the gateway's packages settings and config file)
ManagerFactory = Callable[[Progress], PackageManager]
# called when a job ends: (job) -> audit it
Finished = Callable[[InstallJob], Awaitable[None]]


class InstallJobs:
    """The install jobs of one gateway."""

    def __init__(self, managers: ManagerFactory, finished: Finished | None = None) -> None:
        self.managers = managers
        self.finished = finished
        self.jobs: dict[str, InstallJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    @property
    def running(self) -> InstallJob | None:
        return next((job for job in self.jobs.values() if job.state == "running"), None)

    def get(self, job_id: str) -> InstallJob | None:
        return self.jobs.get(job_id)

    def start(self, package: str, options: InstallOptions, actor: str) -> InstallJob:
        """Begin installing ``package`` (the caller checked that none is running)."""
        job = InstallJob(f"{next(self._ids)}-{secrets.token_hex(4)}", package, actor, _now())
        self.jobs[job.id] = job
        while len(self.jobs) > KEEP_JOBS:
            oldest = next(iter(self.jobs))
            if self.jobs[oldest].state == "running":
                break
            del self.jobs[oldest]
        task = asyncio.get_running_loop().create_task(self._run(job, options))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: InstallJob, options: InstallOptions) -> None:
        manager = self.managers(JobProgress(job))
        try:
            report = await manager.install(job.package, options)
        except asyncio.CancelledError:
            job.finish("failed", error="stopped: the gateway is shutting down")
            raise
        except CatalystError as exc:
            job.finish("failed", error=exc.message)
        except Exception as exc:  # a bug: logged here, the client sees its kind only
            log.exception("install of %r failed", job.package)
            job.finish("failed", error=f"the install failed unexpectedly ({type(exc).__name__})")
        else:
            job.add("note", f"server {report.server!r} added to {report.config_path.name}")
            job.finish("ok", result=_report(report))
        if self.finished is not None:
            try:
                await self.finished(job)
            except Exception as exc:  # the job's record must not hide its result
                log.warning("could not audit install %s: %s", job.id, type(exc).__name__)

    async def close(self) -> None:
        """Stop every install in progress (each removes what it built)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _report(report: InstallReport) -> dict[str, Any]:
    record = report.record
    return {
        "server": report.server,
        "package": record.package,
        "version": record.version,
        "runtime": record.runtime,
        "command": report.command,
        "catalog": report.catalog,
        "reused": report.reused,
        "config": str(report.config_path),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
