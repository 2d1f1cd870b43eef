"""The workflows of one folder, kept in step with its files (hot reload, like packs).

Each ``*.yaml``/``*.yml`` file directly in ``workflows.path`` holds one workflow (hidden files
and ``*.example`` skipped). A changed file is validated completely off the event loop; a valid
one is served at once (the provider's tool list changes, clients hear ``list_changed``), an
invalid one keeps its last good version and its ``file:line:col`` problems go to ``/ready``
(``workflow_problems``) until fixed. Two files naming one workflow: the first keeps it. A set
of workflows that call each other in a circle is refused (the files of the circle are
problems) — the run-time guard catches what names cannot show (a workflow called through a
tool that is not a workflow).

It implements :class:`~catalyst_mcp.packs.watcher.Watched`, so the packs' watcher loop keeps it
current.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.orchestration.workflows.loader import is_workflow_name, load_workflow
from catalyst_mcp.orchestration.workflows.plan import WorkflowPlan
from catalyst_mcp.orchestration.workflows.provider import WorkflowProvider

__all__ = ["WorkflowSet"]

log = logging.getLogger("catalyst.workflows")

Stamp = tuple[int, int, int]


class WorkflowSet:
    """The workflow files of ``path``, served by ``provider``."""

    def __init__(self, path: Path, provider: WorkflowProvider) -> None:
        self.path = path
        self.provider = provider
        self._root = path.absolute()
        self._loaded: dict[Path, WorkflowPlan] = {}
        self._problems: dict[Path, list[ConfigProblem]] = {}  # files that do not load
        self._refused: dict[Path, list[ConfigProblem]] = {}  # valid files not served
        self._stamps: dict[Path, Stamp | None] = {}
        self._lock = asyncio.Lock()

    @property
    def problems(self) -> list[ConfigProblem]:
        merged = {**self._refused, **self._problems}
        return [p for file in sorted(merged) for p in merged[file]]

    @property
    def watch_root(self) -> Path:
        return self._root

    def files(self) -> list[Path]:
        try:
            return sorted(
                p for p in self.path.iterdir() if is_workflow_name(p.name) and p.is_file()
            )
        except OSError:
            return []

    def concerns(self, path: Path) -> bool:
        return path.absolute().parent == self._root and is_workflow_name(path.name)

    # ---- loading -----------------------------------------------------------------------------

    def load_all(self) -> None:
        for file in self.files():
            self._read(file)
        self._publish()

    async def rescan(self) -> None:
        current = await asyncio.to_thread(lambda: {f: _stamp(f) for f in self.files()})
        changed = [f for f, s in current.items() if self._stamps.get(f) != s]
        gone = [f for f in (*self._loaded, *self._problems) if f not in current]
        await self.reload([*changed, *gone])

    async def reload(self, changed: Iterable[Path]) -> None:
        async with self._lock:
            files = {self.path / Path(p).name for p in changed if self.concerns(Path(p))}
            for file in sorted(files):
                await asyncio.to_thread(self._read, file)
            self._publish()

    def _read(self, file: Path) -> None:
        stamp = _stamp(file)
        self._stamps[file] = stamp
        if stamp is None:
            self._stamps.pop(file, None)
            self._problems.pop(file, None)
            if self._loaded.pop(file, None) is not None:
                log.info("workflow file %s removed", file)
            return
        try:
            plan = load_workflow(file)
        except ConfigError as error:
            self._set_problems(file, error.problems)
            return
        except Exception as exc:  # reported, never fatal
            self._set_problems(file, [ConfigProblem(str(file), None, f"cannot load: {exc}")])
            return
        self._loaded[file] = plan
        if self._problems.pop(file, None) is not None:
            log.info("%s: problems fixed", file)

    def _set_problems(self, file: Path, problems: list[ConfigProblem]) -> None:
        if self._problems.get(file) != problems:
            for problem in problems:
                log.error("workflow problem: %s", problem)
        self._problems[file] = problems

    def _publish(self) -> None:
        """Serve the valid workflows: names used once, no circles of calls."""
        plans: dict[str, WorkflowPlan] = {}
        refused: dict[Path, list[ConfigProblem]] = {}
        for file, plan in sorted(self._loaded.items()):
            first = plans.get(plan.name)
            if first is not None:
                message = f"workflow {plan.name!r} is already in {first.file}"
                refused[file] = [ConfigProblem(str(file), None, message)]
                continue
            plans[plan.name] = plan
        prefix = f"{self.provider.namespace}__"
        for name, cycle in _cycles(plans, prefix).items():
            plan = plans.pop(name)
            chain = " -> ".join(cycle)
            message = f"workflow {name!r} would call itself: {chain}"
            refused[plan.file] = [ConfigProblem(str(plan.file), None, message)]
        for file, problems in refused.items():
            if self._refused.get(file) != problems:
                for problem in problems:
                    log.error("workflow problem: %s", problem)
        self._refused = refused
        self.provider.set_plans(plans)


def _cycles(plans: dict[str, WorkflowPlan], prefix: str) -> dict[str, list[str]]:
    """Workflows on a circle of calls, each with the circle it is on."""
    calls = {
        name: [t[len(prefix) :] for t in plan.tools if t.startswith(prefix)]
        for name, plan in plans.items()
    }
    found: dict[str, list[str]] = {}
    for start in calls:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            here, path = stack.pop()
            for callee in calls.get(here, []):
                if callee == start:
                    found[start] = [*path, start]
                    stack.clear()
                    break
                if callee not in seen and callee in calls:
                    seen.add(callee)
                    stack.append((callee, [*path, callee]))
    return found


def _stamp(file: Path) -> Stamp | None:
    try:
        info = os.stat(file)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)
