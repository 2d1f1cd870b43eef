"""Hot reload of ``catalyst.yaml``: an edited ``servers:`` section applied while the gateway runs.

:class:`ConfigFile` is the file ``catalyst serve`` loaded. The knowledge packs' watcher loop
(``packs/watcher.py``) keeps it in step: it watches the file's *folder*, so an editor that
writes a temporary file and renames it over the config is seen like an in-place write.

* Every change is read and validated whole, off the event loop, by
  :func:`~catalyst_mcp.settings.load_settings`: the same rules and ``CATALYST_*`` overrides as at
  start-up. ``${NAME}`` references in server entries are read again from the gateway's
  environment as it is now (the process's own: a shell's later ``export`` does not reach it).
* A valid file: its ``servers:`` section is applied by the
  :class:`~catalyst_mcp.upstreams.serverset.ServerSet` (added, removed and changed servers
  started, stopped and restarted; unchanged entries left alone).
* An invalid file: the last good configuration keeps serving; every problem is logged as
  ``file:line: what is wrong`` and reported by ``/ready`` as ``config_problems`` until fixed. A
  server whose name or namespace a knowledge pack already uses is such a problem too.
* Other sections are not applied live, except ``gateway.log_level`` (the level of the gateway's
  log): each other changed setting is named once in a warning that says a restart is needed,
  and listed by ``/ready`` as ``config_restart_needed`` until the file matches what runs again.
* A deleted file: a warning, and the last good configuration keeps serving; it is read again
  when it comes back. An empty file is a problem, not "no servers": an editor that truncates
  the file before writing it would otherwise stop every server for a moment.

What "changed" means for those other sections is judged against the file as it was when the
gateway was built (not against command-line overrides such as ``--port``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.packs.watcher import PackWatcher
from catalyst_mcp.settings import Settings, load_settings
from catalyst_mcp.upstreams.serverset import ServerSet
from catalyst_mcp.yamlsource import read_yaml

__all__ = ["LIVE_SETTINGS", "ConfigFile"]

log = logging.getLogger("catalyst.config")

LIVE_SETTINGS = ("gateway.log_level",)
"""Settings outside ``servers:`` that a reload applies (every other one needs a restart)."""

Stamp = tuple[int, int, int]  # mtime (ns), size, inode: changed means read again
_MISSING = object()


class ConfigFile:
    """The config file at ``path``, whose ``servers:`` the ``servers`` set serves.

    ``settings`` are what the gateway was built from, used only if the file cannot be read now
    (else the file as it is now is the base later edits are compared with). ``after_apply``
    runs after an edit changed the served servers (the gateway retries knowledge packs refused
    for a namespace a removed server held).
    """

    def __init__(
        self,
        path: Path,
        servers: ServerSet,
        settings: Settings,
        *,
        after_apply: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.path = path
        self.servers = servers
        self.after_apply = after_apply
        self._root = path.absolute()
        # a link (a Kubernetes ConfigMap: catalyst.yaml -> ..data/catalyst.yaml) changes when a
        # link next to it is swapped, with no event for the file itself
        self._linked = path.is_symlink()
        self.problems: list[ConfigProblem] = []
        # setting (dotted name) -> the file's value, for changed settings a restart would apply
        self.restart_needed: dict[str, Any] = {}
        self.reloads = 0  # valid edits read since start (tests and logs)
        self._gone = False
        self._lock = asyncio.Lock()
        self._stamp: Stamp | None = _stamp(path)
        try:
            self.base = load_settings(path)  # the file as it is: what later edits change
        except Exception:  # invalid since `catalyst serve` read it: read again at first rescan
            self.base = settings
            self._stamp = None
        if ServerSet.wanted(self.base) != ServerSet.wanted(settings):
            self._stamp = None  # edited since `catalyst serve` read it: applied at first rescan

    # ---- what the watcher needs (packs/watcher.py: Watched) ---------------------------------

    @property
    def watch_root(self) -> Path:
        return self._root.parent

    def concerns(self, path: Path) -> bool:
        where = path.absolute()
        return where == self._root or (self._linked and where.parent == self._root.parent)

    async def rescan(self) -> None:
        """Read the file again if it changed (or went away) since it was last read."""
        if await asyncio.to_thread(_stamp, self.path) != self._stamp:
            await self.reload()

    def watcher(self, **options: Any) -> PackWatcher:
        """A watcher of this file (not started); ``options`` as for :class:`PackWatcher`."""
        return PackWatcher(self, what="config", logger=log, **options)

    # ---- reloading ---------------------------------------------------------------------------

    async def reload(self, changed: Iterable[Path] = ()) -> None:
        """Read the file and apply it. ``changed`` are the paths a watcher saw change: if they
        do not include the file (a link next to a linked file) and the file is as it was when
        last read, there is nothing to do."""
        paths = set(map(Path, changed))  # absolute, as the watcher reports them
        async with self._lock:
            unchanged = paths and self._root not in paths
            if unchanged and await asyncio.to_thread(_stamp, self.path) == self._stamp:
                return
            stamp, outcome = await asyncio.to_thread(self._read)
            self._stamp = stamp
            if stamp is None:
                self._went_away()
                return
            if self._gone:
                self._gone = False
                log.info("config file %s is back", self.path)
            if isinstance(outcome, list):
                self._refuse(outcome)
                return
            assert isinstance(outcome, Settings)
            await self._apply(outcome)

    def _read(self) -> tuple[Stamp | None, Settings | list[ConfigProblem] | None]:
        """The file's stamp and settings (or problems); (None, None) if it is gone. In a
        thread: reading the file and the environment, validating."""
        stamp = _stamp(self.path)  # taken before reading: a later write changes it
        if stamp is None:
            return None, None
        if stamp[1] == 0:  # most likely caught between an editor's truncate and its write
            message = "the file is empty (write `servers: {}` to remove every server)"
            return stamp, [ConfigProblem(str(self.path), None, message)]
        try:
            return stamp, load_settings(self.path)
        except ConfigError as error:
            return stamp, error.problems
        except Exception as exc:
            log.debug("reading %s failed", self.path, exc_info=exc)
            return stamp, [ConfigProblem(str(self.path), None, f"cannot load: {exc}")]

    async def _apply(self, settings: Settings) -> None:
        self.reloads += 1
        conflicts = self.servers.conflicts(settings)
        if conflicts:
            self._refuse(await asyncio.to_thread(self._locate, conflicts))
            return
        try:
            changed = await self.servers.apply(settings)
        except ValueError as exc:  # a conflict that arose while the new servers started
            self._refuse([ConfigProblem(str(self.path), None, f"servers: not served: {exc}")])
            return
        except Exception as exc:
            log.exception("applying %s failed", self.path)
            self._refuse([ConfigProblem(str(self.path), None, f"servers: cannot apply: {exc}")])
            return
        if self.problems:
            self.problems = []
            log.info("%s: problems fixed", self.path)
        self._note_other_sections(settings)
        if changed and self.after_apply is not None:
            await self.after_apply()

    def _locate(self, conflicts: Mapping[str, str]) -> list[ConfigProblem]:
        """Conflicts as ``file:line`` problems (the file is read again for its lines)."""
        try:
            source = read_yaml(self.path)
        except ConfigError:
            source = None
        problems = []
        for name, why in sorted(conflicts.items()):
            message = f"servers.{name}: not served: {why}"
            if source is None:
                problems.append(ConfigProblem(str(self.path), None, message))
                continue
            key = "mcpServers" if "mcpServers" in (source.data or {}) else "servers"
            problems.append(source.problem((key, name), message))
        return problems

    def _refuse(self, problems: list[ConfigProblem]) -> None:
        if problems == self.problems:
            return  # said already (saved again unchanged)
        self.problems = problems
        for problem in problems:
            log.error("config problem: %s", problem)
        log.warning(
            "%s is invalid: the gateway keeps serving its last good configuration until it is "
            "fixed",
            self.path,
        )

    def _went_away(self) -> None:
        self.problems = []  # what was wrong went with the file
        if not self._gone:
            self._gone = True
            log.warning(
                "config file %s is gone: the gateway keeps serving its last good configuration "
                "(restore the file to apply changes again)",
                self.path,
            )

    # ---- the other sections ------------------------------------------------------------------

    def _note_other_sections(self, settings: Settings) -> None:
        """Apply what can be applied live; warn once about each other changed setting."""
        before = self.base.model_dump(exclude={"servers"})
        after = settings.model_dump(exclude={"servers"})
        pending: dict[str, Any] = {}
        for name, value in _differences(before, after):
            if name == "gateway.log_level":
                logging.getLogger().setLevel(value.upper())
                log.info("gateway.log_level is now %s", value)
                gateway = self.base.gateway.model_copy(update={"log_level": value})
                self.base = self.base.model_copy(update={"gateway": gateway})
            else:
                pending[name] = value
        for name, value in pending.items():
            if self.restart_needed.get(name, _MISSING) != value:
                log.warning(
                    "%s changed in %s: it is not applied while the gateway runs; restart the "
                    "gateway to apply it",
                    name,
                    self.path,
                )
        for name in self.restart_needed.keys() - pending.keys():
            log.info("%s in %s matches the running gateway again", name, self.path)
        self.restart_needed = pending


def _differences(before: Any, after: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, new value) of every setting that differs between two dumps."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys(), key=str):
            old, new = before.get(key, _MISSING), after.get(key, _MISSING)
            if old != new:
                yield from _differences(old, new, f"{prefix}{key}.")
    elif before != after:
        yield prefix.rstrip("."), None if after is _MISSING else after


def _stamp(file: Path) -> Stamp | None:
    """What tells whether a file changed since it was read; None if it is no file."""
    try:
        info = os.stat(file)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)
