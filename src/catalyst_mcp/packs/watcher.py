"""Hot reload: watch the packs folder and hand changed pack files to the :class:`PackSet`.

The loop is not pack-specific: it keeps anything :class:`Watched` in step with one folder
(the config file's folder uses it too: ``configwatch.py``).

Changes come from the operating system's file notifications (``watchfiles``: inotify, FSEvents,
...), grouped while they keep coming (``step_ms`` of quiet ends a group, ``debounce_ms`` caps
it), so a saved file reaches clients as ``list_changed`` within tens of milliseconds. Only
``*.yaml``/``*.yml`` files directly in the folder count; ``*.example``, hidden files and
editors' temporary files (``crm.yaml~``, ``.crm.yaml.swp``, ``4913``) are ignored.

The folder may come and go: while it is missing the watcher checks every ``poll_seconds``
whether it exists again; when it disappears (or is replaced by another folder of the same
name) its packs are removed and watching starts over, with a rescan of what is there.

Nothing stops the watcher but :meth:`PackWatcher.stop`: a failed reload is logged (and its
problems kept by the pack set) and watching goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from watchfiles import Change, awatch

from catalyst_mcp.aio import cancel_and_wait

__all__ = ["PackWatcher", "Watched"]

log = logging.getLogger("catalyst.packs")

STOP_TIMEOUT_SECONDS = 5.0


class Watched(Protocol):
    """What a watcher keeps in step with the files of one folder (a :class:`PackSet`)."""

    @property
    def watch_root(self) -> Path:
        """The folder to watch (absolute)."""

    def concerns(self, path: Path) -> bool:
        """Whether a change of ``path`` (absolute) matters."""

    async def rescan(self) -> None:
        """Catch up with changes made while nobody watched (or the folder went away)."""

    async def reload(self, changed: Iterable[Path]) -> None:
        """Apply the changed files."""


class PackWatcher:
    """Runs as one asyncio task between :meth:`start` and :meth:`stop`; ``what`` names the
    watched files in the messages it logs to ``logger``."""

    def __init__(
        self,
        packs: Watched,
        *,
        step_ms: int = 20,
        debounce_ms: int = 200,
        poll_seconds: float = 1.0,
        what: str = "knowledge packs",
        logger: logging.Logger = log,
    ) -> None:
        self.packs = packs
        self.what = what
        self.log = logger
        self.root = packs.watch_root
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self.poll_seconds = poll_seconds
        # True once file notifications are known to be on (tests wait for it before writing).
        self.watching = False
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"catalyst-watcher {self.what}"
            )

    async def stop(self) -> None:
        """Stop watching; a reload under way is finished first (within a few seconds)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()  # ends the notification wait within step_ms
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            await cancel_and_wait(task)

    # ---- the task ----------------------------------------------------------------------------

    async def _run(self) -> None:
        missing = False
        while not self._stopping.is_set():
            try:
                if not self.root.is_dir():
                    if not missing:
                        self.log.info("waiting for %s folder %s to appear", self.what, self.root)
                        missing = True
                        await self.packs.rescan()  # a folder that went away takes its files
                    await self._pause()
                    continue
                missing = False
                await self.packs.rescan()  # catch up with changes nobody watched
                await self._watch()
            except FileNotFoundError:  # the folder went away just as watching began
                await self._pause()
            except Exception:
                self.log.exception("%s watcher failed; watching again shortly", self.what)
                await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)

    async def _watch(self) -> None:
        """Apply changes until the folder goes away (or stop): then return."""
        root = self.root
        identity = _identity(root)
        self.log.debug("watching %s for %s changes", root, self.what)
        changes_of = awatch(
            root,
            watch_filter=self._wanted,
            debounce=self.debounce_ms,
            step=self.step_ms,
            stop_event=self._stopping,
            rust_timeout=max(1, int(self.poll_seconds * 1000)),
            yield_on_timeout=True,  # wake up now and then to check the folder is still there
            recursive=False,
        )
        try:
            async for changes in changes_of:
                if not self.watching:
                    self.watching = True  # something came back: notifications are on
                    # what changed after the last rescan but before they were on
                    await self.packs.rescan()
                paths = {Path(path) for _, path in changes}
                files = paths - {root}
                if files:
                    try:
                        await self.packs.reload(files)
                    except Exception:
                        self.log.exception("reloading %s failed", self.what)
                if root in paths or _identity(root) != identity:
                    self.log.info("%s folder %s went away", self.what, root)
                    return
        finally:
            self.watching = False
            await changes_of.aclose()

    def _wanted(self, change: Change, path: str) -> bool:
        where = Path(path)
        return where == self.root or self.packs.concerns(where)


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)
