"""The rules in force: the files of ``rules.path`` and the rules stored through the API,
kept in step with both, compiled into one :class:`RuleEngine`.

* Files: ``*.yaml``/``*.yml`` directly in the folder (hidden files skipped), or one file when
  ``rules.path`` names a file. A changed file is validated whole, off the event loop; when it
  is invalid its last good rules stay in force and its ``file:line:col`` problems are logged
  and reported by ``/ready`` (``rule_problems``) until it is fixed or deleted. The folder is
  watched by the knowledge packs' watcher loop (``packs/watcher.py``): this set is
  :class:`~catalyst_mcp.packs.watcher.Watched`.
* Stored rules: read at start, after every change made through this instance's API, and every
  ``rules.refresh_seconds`` (changes made by another instance).

Order: files by name, each top to bottom, then stored rules by id; ``priority`` reorders
(engine.py). A rule id used twice keeps its first place; the other is a problem. Every change
swaps in a new engine in one step: a call sees the old rules or the new ones, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.orchestration.rules.engine import RuleEngine
from catalyst_mcp.orchestration.rules.loader import LoadedRule, load_rules_file, load_stored

if TYPE_CHECKING:
    from catalyst_mcp.storage.db import Database

__all__ = ["RuleSet", "is_rule_file"]

log = logging.getLogger("catalyst.rules")

SUFFIXES = (".yaml", ".yml")
Stamp = tuple[int, int, int]


def is_rule_file(name: str) -> bool:
    return name.endswith(SUFFIXES) and not name.startswith(".")


class RuleSet:
    """The rules of ``path`` (a folder, a file, or None) and of ``db`` (None: none stored)."""

    def __init__(
        self, path: Path | None, db: Database | None = None, *, refresh_seconds: float = 30.0
    ) -> None:
        self.path = path
        self.db = db
        self.refresh_seconds = refresh_seconds
        self.single_file = path is not None and path.is_file()
        self._root = path.absolute() if path is not None else None
        self._files: dict[Path, list[LoadedRule]] = {}
        self._problems: dict[Path, list[ConfigProblem]] = {}
        self._stamps: dict[Path, Stamp | None] = {}
        self._stored: list[LoadedRule] = []
        self._stored_problems: list[ConfigProblem] = []
        self._clashes: list[ConfigProblem] = []
        self.engine = RuleEngine()
        self._lock = asyncio.Lock()
        self._refresher: asyncio.Task[None] | None = None

    # ---- state -------------------------------------------------------------------------------

    @property
    def problems(self) -> list[ConfigProblem]:
        """Every current problem: of files, of stored rules, of ids used twice."""
        found = [p for file in sorted(self._problems) for p in self._problems[file]]
        return [*found, *self._clashes, *self._stored_problems]

    @property
    def loaded(self) -> list[LoadedRule]:
        """The rules in force, in written order (disabled ones included)."""
        rules: list[LoadedRule] = []
        seen: set[str] = set()
        for file in sorted(self._files):
            for rule in self._files[file]:
                if rule.spec.id not in seen:
                    seen.add(rule.spec.id)
                    rules.append(rule)
        for rule in self._stored:
            if rule.spec.id not in seen:
                seen.add(rule.spec.id)
                rules.append(rule)
        return rules

    @property
    def watch_root(self) -> Path:
        assert self._root is not None
        return self._root.parent if self.single_file else self._root

    def files(self) -> list[Path]:
        if self.path is None:
            return []
        if self.single_file:
            return [self.path] if self.path.is_file() else []
        try:
            return sorted(p for p in self.path.iterdir() if is_rule_file(p.name) and p.is_file())
        except OSError:
            return []

    def concerns(self, path: Path) -> bool:
        return self._key(path) is not None

    def _key(self, path: Path) -> Path | None:
        if self.path is None or self._root is None:
            return None
        if self.single_file:
            return self.path if path.absolute() == self._root else None
        if path.absolute().parent == self._root and is_rule_file(path.name):
            return self.path / path.name
        return None

    # ---- files -------------------------------------------------------------------------------

    def load_all(self) -> None:
        """Load every rule file (at start-up, before anything is served)."""
        files = self.files()
        if not files and self.path is not None and not self.path.exists():
            log.info("no rules folder at %s: no file rules", self.path)
        for file in files:
            self._read(file)
        self._rebuild()

    def _read(self, file: Path) -> None:
        stamp = _stamp(file)
        self._stamps[file] = stamp
        if stamp is None:
            self._files.pop(file, None)
            self._problems.pop(file, None)
            return
        try:
            rules = load_rules_file(file)
        except ConfigError as error:
            self._set_problems(file, error.problems)
            return
        except Exception as exc:  # an unreadable file, say
            self._set_problems(file, [ConfigProblem(str(file), None, f"cannot load: {exc}")])
            return
        self._files[file] = rules
        if self._problems.pop(file, None) is not None:
            log.info("%s: rule problems fixed", file)

    def _set_problems(self, file: Path, problems: list[ConfigProblem]) -> None:
        if self._problems.get(file) == problems:
            return
        self._problems[file] = problems
        for problem in problems:
            log.error("rule problem: %s", problem)
        if file in self._files:
            log.warning("the last good rules of %s stay in force", file)

    async def rescan(self) -> None:
        current = await asyncio.to_thread(lambda: {f: _stamp(f) for f in self.files()})
        changed = [f for f, stamp in current.items() if self._stamps.get(f) != stamp]
        gone = [f for f in (*self._files, *self._problems) if f not in current]
        await self.reload([*changed, *gone])

    async def reload(self, changed: Iterable[Path]) -> None:
        """Apply changed rule files (other paths are ignored), then recompile."""
        async with self._lock:
            files = sorted({key for path in changed if (key := self._key(Path(path))) is not None})
            if not files:
                return
            for file in files:
                await asyncio.to_thread(self._read, file)
            self._rebuild()

    # ---- stored rules ------------------------------------------------------------------------

    async def load_stored(self) -> None:
        """Read the stored rules again (after a change through the API; periodically)."""
        if self.db is None:
            return
        from catalyst_mcp.storage.rules import StoredRuleRepo

        rows = await StoredRuleRepo(self.db).list()
        rules, problems = load_stored((row.id, row.data) for row in rows)
        async with self._lock:
            if [r.spec for r in rules] == [r.spec for r in self._stored] and (
                problems == self._stored_problems
            ):
                return
            self._stored, self._stored_problems = rules, problems
            for problem in problems:
                log.error("rule problem: %s", problem)
            self._rebuild()

    async def start(self) -> None:
        """Read the stored rules, then keep reading them every ``refresh_seconds``."""
        if self.db is None or self._refresher is not None:
            return
        await self.load_stored()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.load_stored()
            except Exception as exc:  # the next round tries again
                log.warning("could not read the stored rules: %s", type(exc).__name__)

    async def stop(self) -> None:
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- compiling ---------------------------------------------------------------------------

    def _rebuild(self) -> None:
        clashes: list[ConfigProblem] = []
        first: dict[str, str] = {}
        for file in sorted(self._files):
            for rule in self._files[file]:
                if rule.spec.id in first:
                    clashes.append(_clash(rule, first[rule.spec.id]))
                else:
                    first[rule.spec.id] = rule.source
        for rule in self._stored:
            if rule.spec.id in first:
                clashes.append(_clash(rule, first[rule.spec.id]))
            else:
                first[rule.spec.id] = rule.source
        for problem in clashes:
            if problem not in self._clashes:
                log.error("rule problem: %s", problem)
        self._clashes = clashes
        self.engine = RuleEngine(self.loaded)
        log.info("%d rules in force", len(self.engine))


def _clash(rule: LoadedRule, first: str) -> ConfigProblem:
    file, _, line = rule.source.rpartition(":")
    where = (file, int(line)) if line.isdigit() else (rule.source, None)
    return ConfigProblem(
        where[0], where[1], f"rule id {rule.spec.id!r} is already used at {first}: ignored"
    )


def _stamp(file: Path) -> Stamp | None:
    try:
        info = os.stat(file)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)
