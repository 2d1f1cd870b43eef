"""The knowledge packs of one folder, kept in step with its files (hot reload).

A :class:`PackSet` serves one provider per valid pack file of ``packs.path`` and remembers the
problems of the others. :meth:`PackSet.load_all` loads the folder at start-up;
:meth:`PackSet.reload` applies changed files while the gateway runs:

* a changed file is validated completely first (:func:`~catalyst_mcp.packs.loader.load_pack`);
  when valid, its new provider replaces the old one in the registry in one step
  (:meth:`Registry.replace`), and clients hear ``list_changed`` for the lists that differ;
* an invalid edit keeps the last good version serving; its ``file:line:col`` problems are
  logged and listed by ``/ready`` until the file is fixed (or deleted);
* a deleted file, or one renamed to ``*.example``, removes its pack; a new file adds one;
* two files naming the same pack: the one loaded first keeps the name, the other is a problem
  (retried after every reload, so it is served once the name is free).

A replaced or removed provider is retired gracefully: it stops serving at once, then is stopped
(its database engines and HTTP pools closed) once its calls in flight are done.

Pack files are ``*.yaml`` and ``*.yml`` files directly in the folder, hidden files excepted
(editors keep lock files such as ``.#crm.yaml`` there). ``packs.path`` may also name a single
pack file. A missing folder means no packs. The SQL stack is imported only once there is a
pack file to load, so a gateway without packs never pays for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.registry import Registry

if TYPE_CHECKING:
    from catalyst_mcp.packs.connectors.restauth import SecretLookup
    from catalyst_mcp.packs.loader import LoadedPack

__all__ = ["PackSet", "is_pack_name"]

log = logging.getLogger("catalyst.packs")

# The loader's PACK_SUFFIXES (a test keeps them equal): importing the loader pulls in SQLAlchemy.
SUFFIXES = (".yaml", ".yml")
Stamp = tuple[int, int, int]  # a file's mtime (ns), size and inode: changed means re-read
COUNTED: tuple[tuple[str, tuple[ListKind, ...]], ...] = (
    ("tool", ("tools",)),
    ("resource", ("resources", "resourceTemplates")),
    ("prompt", ("prompts",)),
)


def is_pack_name(name: str) -> bool:
    """Whether a file of this name in the packs folder is a pack file."""
    return name.endswith(SUFFIXES) and not name.startswith(".")


@dataclass(frozen=True, slots=True)
class _Served:
    loaded: LoadedPack
    provider: Provider


class PackSet:
    """The packs of ``path`` (a folder, or one pack file) served through ``registry``.

    ``retire_after`` bounds how long a replaced provider may finish its calls in flight before
    it is stopped anyway.
    """

    def __init__(
        self,
        path: Path,
        registry: Registry,
        *,
        retire_after: float = 60.0,
        secrets: Callable[[str], SecretLookup] | None = None,
    ) -> None:
        self.path = path
        # the ${secret:NAME} lookup of a pack, by pack name (None: no secrets store)
        self.secrets = secrets
        self.registry = registry
        self.retire_after = retire_after
        self.single_file = path.is_file()
        self._root = path.absolute()
        self._served: dict[Path, _Served] = {}
        self._problems: dict[Path, list[ConfigProblem]] = {}
        self._stamps: dict[Path, Stamp | None] = {}  # of each file when last read
        # Valid files refused only because their pack name or namespace is taken: retried.
        self._blocked: set[Path] = set()
        # Replaced or removed providers waiting for their calls to end, and the tasks waiting.
        self._retiring: dict[Provider, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.reloads: Counter[str] = Counter()  # files reloaded, by outcome (ok, failed)
        # told of each reload that changed something: (file, pack, outcome, problems, tools),
        # outcome added, reloaded, removed or failed (the event bus: pack.reloaded)
        self.on_reload: Callable[[Path, str | None, str, int, int], None] | None = None

    # ---- state -------------------------------------------------------------------------------

    @property
    def problems(self) -> list[ConfigProblem]:
        """Every current problem, by file."""
        return [p for file in sorted(self._problems) for p in self._problems[file]]

    @property
    def providers(self) -> dict[Path, Provider]:
        """The provider serving each valid pack file."""
        return {file: served.provider for file, served in sorted(self._served.items())}

    @property
    def watch_root(self) -> Path:
        """The folder to watch (absolute): the packs folder, or a single pack file's folder."""
        return self._root.parent if self.single_file else self._root

    def files(self) -> list[Path]:
        """The pack files there are now, in load order."""
        if self.single_file:
            return [self.path] if self.path.is_file() else []
        try:
            return sorted(p for p in self.path.iterdir() if is_pack_name(p.name) and p.is_file())
        except OSError:  # missing (or not a folder): no packs
            return []

    def concerns(self, path: Path) -> bool:
        """Whether a change of ``path`` (absolute, as a watcher reports it) may change a pack."""
        return self._key(path) is not None

    def _key(self, path: Path) -> Path | None:
        """The name this set knows a reported file by (as :meth:`files` gives it), if any."""
        if self.single_file:
            return self.path if path.absolute() == self._root else None
        if path.absolute().parent == self._root and is_pack_name(path.name):
            return self.path / path.name
        return None

    # ---- loading -----------------------------------------------------------------------------

    def load_all(self) -> None:
        """Serve every valid pack of the folder (at start-up, before anything is served)."""
        files = self.files()
        if not files and not self.path.exists():
            log.info("no knowledge packs folder at %s: no packs to serve", self.path)
        if not files:
            return
        with self.registry.batch():  # one rebuild of the lists for all of them
            for file in files:
                self._load_one(file)

    def _load_one(self, file: Path) -> None:
        from catalyst_mcp.packs.loader import load_pack  # the SQL stack, now that it is needed

        self._stamps[file] = _stamp(file)
        try:
            loaded = load_pack(file)
        except ConfigError as error:
            self._set_problems(file, error.problems)
            return
        except Exception as exc:
            self._set_problems(file, [_unexpected(file, exc)])
            return
        provider = self._admit(file, loaded)
        if provider is None:
            return
        try:
            self.registry.add(provider)
        except ValueError as exc:  # its namespace is a server's already
            self._refuse(file, f"not served: {exc}")
            return
        self._served[file] = _Served(loaded, provider)
        log.info("pack %r loaded from %s: %s", loaded.pack.pack, file, _counts(provider))

    async def rescan(self) -> None:
        """Reload the files that are new, changed or gone since last read (after a time
        nobody watched: before watching starts, or when the folder comes back)."""
        current = await asyncio.to_thread(self._scan)
        changed = [f for f, stamp in current.items() if self._stamps.get(f) != stamp]
        gone = [f for f in (*self._served, *self._problems) if f not in current]
        await self.reload([*changed, *gone])

    def _scan(self) -> dict[Path, Stamp | None]:
        return {file: _stamp(file) for file in self.files()}

    async def reload(self, changed: Iterable[Path]) -> None:
        """Apply changed pack files: validate each, then swap, add or remove its pack.

        ``changed`` may hold any paths: those that are no pack file of this set are ignored.
        Files refused because their pack's name was taken are retried after the others.
        """
        async with self._lock:
            files = {key for path in changed if (key := self._key(Path(path))) is not None}
            retry = self._blocked - files
            for file in [*sorted(files), *sorted(retry)]:
                before, had = self._served.get(file), self._problems.get(file)
                await self._reload_one(file)
                self.reloads["failed" if file in self._problems else "ok"] += 1
                if self.on_reload is not None:
                    self._tell(file, before, had)

    def _tell(self, file: Path, before: _Served | None, had: list[ConfigProblem] | None) -> None:
        """Tell ``on_reload`` what a reload of ``file`` changed (nothing: nothing is told)."""
        assert self.on_reload is not None
        after, problems = self._served.get(file), self._problems.get(file)
        if problems and problems != had:
            pack = before.loaded.pack.pack if before is not None else None
            self.on_reload(file, pack, "failed", len(problems), 0)
        elif after is not None and after is not before:
            tools = len(after.provider.items("tools"))
            outcome = "added" if before is None else "reloaded"
            self.on_reload(file, after.loaded.pack.pack, outcome, 0, tools)
        elif after is None and before is not None:
            self.on_reload(file, before.loaded.pack.pack, "removed", 0, 0)

    async def _reload_one(self, file: Path) -> None:
        served = self._served.get(file)
        try:
            loaded = await asyncio.to_thread(self._load_if_there, file)
        except ConfigError as error:
            self._set_problems(file, error.problems, kept=served)
            return
        except Exception as exc:
            self._set_problems(file, [_unexpected(file, exc)], kept=served)
            return
        if loaded is None:  # deleted, or renamed (to *.example, say)
            self._stamps.pop(file, None)
            self._clear(file)
            if served is not None:
                del self._served[file]
                self.registry.remove(served.provider)
                self._retire(served.provider)
                log.info("pack %r removed: %s is gone", served.loaded.pack.pack, file)
            return
        if served is not None and served.loaded.pack == loaded.pack:
            self._clear(file)  # saved unchanged, or changed back to what is served
            return
        new = self._admit(file, loaded, kept=served)
        if new is None:
            return
        try:
            await new.start()
            if served is None:
                self.registry.add(new)
            else:
                self.registry.replace(served.provider, new)
        except Exception as exc:
            await _stop(new)
            if isinstance(exc, ValueError):
                self._refuse(file, f"not served: {exc}", kept=served)
            else:
                self._set_problems(file, [_unexpected(file, exc)], kept=served)
            return
        self._served[file] = _Served(loaded, new)
        self._clear(file)
        if served is None:
            log.info("pack %r added from %s: %s", loaded.pack.pack, file, _counts(new))
        else:
            self._retire(served.provider)
            was = served.loaded.pack.pack
            renamed = f" (was {was!r})" if was != loaded.pack.pack else ""
            log.info(
                "pack %r%s reloaded from %s: %s",
                loaded.pack.pack,
                renamed,
                file,
                _counts(new, served.provider),
            )

    def _load_if_there(self, file: Path) -> LoadedPack | None:
        """The pack of ``file``, or None if there is no such file (any more). In a thread."""
        stamp = _stamp(file)
        if stamp is None:
            return None
        self._stamps[file] = stamp  # taken before reading: a later write changes it
        # The SQL stack, now that it is needed: imported here, off the event loop.
        import catalyst_mcp.packs.provider  # noqa: F401  (for _admit, next)
        from catalyst_mcp.packs.loader import load_pack

        return load_pack(file)

    def _admit(
        self, file: Path, loaded: LoadedPack, kept: _Served | None = None
    ) -> Provider | None:
        """A provider for a valid pack, unless another file serves a pack of that name."""
        name = loaded.pack.pack
        for other, served in self._served.items():
            if other != file and served.loaded.pack.pack == name:
                self._refuse(file, f"pack {name!r} is already in {other}", kept=kept)
                return None
        from catalyst_mcp.packs.provider import PackProvider

        try:
            lookup = self.secrets(name) if self.secrets is not None else None
            return PackProvider(loaded, secrets=lookup)
        except Exception as exc:
            self._set_problems(file, [_unexpected(file, exc)], kept=kept)
            return None

    # ---- problems ----------------------------------------------------------------------------

    def _refuse(self, file: Path, message: str, kept: _Served | None = None) -> None:
        self._set_problems(file, [ConfigProblem(str(file), None, message)], kept=kept)
        self._blocked.add(file)

    def _set_problems(
        self, file: Path, problems: list[ConfigProblem], kept: _Served | None = None
    ) -> None:
        self._blocked.discard(file)
        if self._problems.get(file) == problems:
            return  # said already (a refused file is retried after every reload)
        self._problems[file] = problems
        for problem in problems:
            log.error("knowledge pack problem: %s", problem)
        if kept is not None:
            log.warning(
                "pack %r keeps serving the last good version of %s", kept.loaded.pack.pack, file
            )

    def _clear(self, file: Path) -> None:
        self._blocked.discard(file)
        if self._problems.pop(file, None) is not None:
            log.info("%s: problems fixed", file)

    # ---- retiring ----------------------------------------------------------------------------

    def _retire(self, provider: Provider) -> None:
        task = asyncio.get_running_loop().create_task(
            self._stop_when_idle(provider), name=f"retire {provider.name}"
        )
        self._retiring[provider] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop_when_idle(self, provider: Provider) -> None:
        try:
            await provider.drain(self.retire_after)
        except Exception:
            log.exception("waiting for the calls of %s failed", provider.name)
        if self._retiring.pop(provider, None) is not None:
            await _stop(provider)

    async def close(self) -> None:
        """Stop the retiring providers now (the served ones are the registry's to stop)."""
        waiting, self._retiring = self._retiring, {}
        for task in waiting.values():
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for provider in waiting:
            await _stop(provider)


def _stamp(file: Path) -> Stamp | None:
    """What tells whether a file changed since it was read; None if it is no file."""
    try:
        info = os.stat(file)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


async def _stop(provider: Provider) -> None:
    try:
        await provider.stop()
    except Exception:
        log.exception("stopping %s failed", provider.name)


def _unexpected(file: Path, exc: Exception) -> ConfigProblem:
    log.debug("loading %s failed", file, exc_info=exc)
    return ConfigProblem(str(file), None, f"cannot load: {exc}")


def _counts(provider: Provider, old: Provider | None = None) -> str:
    """``5 tools (+1), 2 resources, 1 prompt``: what a provider lists, with changes."""
    parts = []
    for label, kinds in COUNTED:
        count = sum(len(provider.items(k)) for k in kinds)
        before = count if old is None else sum(len(old.items(k)) for k in kinds)
        if not count and not before:
            continue
        part = f"{count} {label}{'s' if count != 1 else ''}"
        if count != before:
            part += f" ({count - before:+d})"
        parts.append(part)
    return ", ".join(parts) or "nothing to serve"
