"""The built-in filesystem server: folders of this machine as tools and ``file://`` resources.

Read tools (``list_roots``, ``read_file``, ``list_directory``, ``search_files``, ``file_info``)
serve every root; write tools (``write_file``, ``edit_file``, ``move``, ``create_directory``,
and ``delete`` when ``allow_delete`` is on) are offered only when a root is writable and refuse
paths in read-only roots; they are declared in :mod:`.tools` and served here. Paths are
resolved beneath their root one component at a time (:mod:`.paths`); the blocking work runs in a
worker thread. Client roots (``client_roots``) are asked for with ``roots/list`` on each call.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import Callable
from typing import TypeVar

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError, CatalystError, ResourceNotFound
from catalyst_mcp.servers.base import BuiltinServer, Json, Result
from catalyst_mcp.servers.config import FilesystemOptions
from catalyst_mcp.servers.filesystem import reading, search, writing
from catalyst_mcp.servers.filesystem.paths import (
    Resolved,
    Root,
    locate,
    path_from_uri,
    resolve,
)
from catalyst_mcp.servers.filesystem.tools import Handlers, tools_of

__all__ = ["FilesystemServer"]

T = TypeVar("T")


class FilesystemServer(BuiltinServer):
    kind = "filesystem"

    def __init__(
        self, name: str, namespace: str, options: FilesystemOptions, *, timeout: float
    ) -> None:
        super().__init__(name, namespace, timeout=timeout)
        self.options = options
        self.roots = [Root.of(r.path, writable=r.writable, name=r.name) for r in options.roots]
        self.writable = any(root.writable for root in self.roots)
        handlers = Handlers(
            list_roots=self._list_roots,
            read_file=self._read_file,
            list_directory=self._list_directory,
            search_files=self._search_files,
            file_info=self._file_info,
            write_file=self._write_file,
            edit_file=self._edit_file,
            move=self._move,
            create_directory=self._create_directory,
            delete=self._delete,
        )
        self.declare(tools_of(options, handlers, writable=self.writable))
        self.set_resources(
            [
                {
                    "uri": root.uri,
                    "name": root.name,
                    "description": f"Served folder {root.display}"
                    + (" (writable)" if root.writable else " (read-only)"),
                    "mimeType": "text/plain",
                }
                for root in self.roots
            ],
            [
                {
                    "uriTemplate": "file:///{+path}",
                    "name": "file",
                    "description": "A file or folder inside a served folder (a folder reads "
                    "as its listing).",
                }
            ],
        )

    @property
    def may_ask(self) -> bool:
        return self.options.client_roots != "off"

    @property
    def instructions(self) -> str:
        return "Files of the folders listed by list_roots; paths outside them are refused."

    def health(self) -> Json:
        report = super().health()
        report["roots"] = [r.display for r in self.roots]
        missing = [r.display for r in self.roots if not os.path.isdir(r.anchor)]
        if missing:
            report["status"] = "failed"
            report["error"] = f"served folder(s) missing: {', '.join(missing)}"
        return report

    # ---- resolution --------------------------------------------------------------------------

    async def roots_for(self, ctx: CallContext) -> list[Root]:
        """The roots of this call: the configured ones, or the client's (``client_roots``)."""
        mode = self.options.client_roots
        if mode == "off" or ctx.ask is None or not ctx.can("roots"):
            return self.roots
        try:
            answer = await ctx.ask("roots/list", {})
        except CatalystError as exc:
            raise BuiltinError(f"the client's roots could not be read: {exc.message}") from None
        paths: list[tuple[str, str | None]] = []
        for item in answer.get("roots") or []:
            if isinstance(item, dict) and isinstance(item.get("uri"), str):
                try:
                    path = path_from_uri(item["uri"])
                except BuiltinError:
                    continue
                name = item.get("name")
                paths.append((path, name if isinstance(name, str) else None))
        if mode == "use":
            return [Root.of(path, name=name) for path, name in paths]
        narrowed = []
        for path, name in paths:
            parts = [p for p in path.split("/") if p not in ("", ".")]
            if ".." in parts or "\x00" in path:
                continue
            try:
                root, rest = locate(self.roots, "/" + "/".join(parts))
            except BuiltinError:
                continue  # outside every configured root: not served
            narrowed.append(
                Root(
                    anchor=root.anchor,
                    display="/".join([root.display.rstrip("/"), *[p for p in rest if p]]),
                    name=name or (parts[-1] if parts else root.name),
                    writable=root.writable,
                    base=tuple(p for p in rest if p),
                )
            )
        return narrowed

    def _resolve(self, roots: list[Root], path: str, *, follow_final: bool = True) -> Resolved:
        root, parts = locate(roots, path)
        return resolve(
            root,
            parts,
            follow_symlinks=self.options.follow_symlinks,
            follow_final=follow_final,
        )

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work)

    # ---- handlers ----------------------------------------------------------------------------

    async def _list_roots(self, args: Json, ctx: CallContext) -> Result:
        roots = await self.roots_for(ctx)
        listed = [
            {"name": r.name, "path": r.display, "uri": r.uri, "writable": r.writable} for r in roots
        ]
        text = "\n".join(
            f"{r['path']} ({'writable' if r['writable'] else 'read-only'})" for r in listed
        )
        return Result({"roots": listed}, text or "No folder is served to this client.")

    async def _read_file(self, args: Json, ctx: CallContext) -> Result:
        roots = await self.roots_for(ctx)
        offset = args.get("offset", 0)
        length = args.get("length")

        def work() -> reading.FileContent:
            with self._resolve(roots, args["path"]) as resolved:
                return reading.read_file(
                    resolved, offset=offset, length=length, max_bytes=self.options.max_read_bytes
                )

        found = await self._run(work)
        structured: Json = {
            "path": found.path,
            "size": found.size,
            "offset": found.offset,
            "length": len(found.data),
            "truncated": found.truncated,
            "binary": found.text is None,
            "mimeType": found.mime,
        }
        if found.text is not None:
            structured["text"] = found.text
            return Result(structured, found.text)
        if self.options.binary == "refuse":
            raise BuiltinError(
                f"{found.path} is a binary file ({found.mime}, {found.size:,} bytes); this "
                "server does not return binary content"
            )
        note = (
            f"{found.path} is a binary file ({found.mime}, {found.size:,} bytes): its bytes "
            f"{found.offset:,}-{found.offset + len(found.data):,} follow as a base64 resource blob."
        )
        return Result(structured, note, [found.blob()])

    async def _list_directory(self, args: Json, ctx: CallContext) -> Result:
        roots = await self.roots_for(ctx)
        pattern = args.get("pattern")
        matches = search.glob_matcher(pattern) if pattern else None

        def work() -> tuple[str, list[Json], bool]:
            with self._resolve(roots, args.get("path", "")) as resolved:
                entries, truncated = reading.list_folder(
                    resolved,
                    depth=args.get("depth", 1),
                    max_entries=self.options.max_list_entries,
                    hidden=args.get("include_hidden", True),
                    matches=matches,
                )
                return resolved.display, entries, truncated

        path, entries, truncated = await self._run(work)
        lines = [
            f"{e['name']}/"
            if e["type"] == "folder"
            else f"{e['name']}  ({e['type']}" + (f", {e['size']:,} bytes)" if "size" in e else ")")
            for e in entries
        ]
        if truncated:
            lines.append(f"... more entries (the first {len(entries):,} are shown)")
        text = "\n".join(lines) if lines else f"{path} is empty."
        return Result({"path": path, "entries": entries, "truncated": truncated}, text)

    async def _search_files(self, args: Json, ctx: CallContext) -> Result:
        roots = await self.roots_for(ctx)
        opts = self.options
        glob = args.get("glob")
        content = args.get("content")
        if glob is None and content is None:
            raise BuiltinError("give glob (file names), content (text in files), or both")
        pattern = None
        if content is not None:
            flags = 0 if args.get("case_sensitive", False) else re.IGNORECASE
            try:
                pattern = re.compile(content if args.get("regex") else re.escape(content), flags)
            except re.error as exc:
                raise BuiltinError(f"content is not a valid regular expression: {exc}") from None
        limits = search.SearchLimits(
            max_files=opts.search_max_files,
            max_matches=args.get("max_matches", opts.search_max_matches),
            max_file_bytes=opts.search_max_file_bytes,
            timeout=opts.search_timeout_seconds,
        )
        exclude = [search.glob_matcher(g) for g in args.get("exclude", [])]
        names = search.glob_matcher(glob) if glob else None

        def work() -> Json:
            with self._resolve(roots, args.get("path", "")) as resolved:
                found = search.search(
                    resolved, names=names, content=pattern, exclude=exclude, limits=limits
                )
                found["path"] = resolved.display
                return found

        found = await self._run(work)
        lines = [
            f"{m['path']}:{m['line']}: {m['text']}" if "line" in m else m["path"]
            for m in found["matches"]
        ]
        summary = f"{len(found['matches'])} match(es) in {found['files_scanned']} file(s) scanned"
        if found["stopped_by"]:
            summary += f"; stopped early by {found['stopped_by']} (narrow the search)"
        return Result(found, "\n".join([*lines, summary]))

    async def _file_info(self, args: Json, ctx: CallContext) -> Result:
        roots = await self.roots_for(ctx)

        def work() -> Json:
            with self._resolve(roots, args["path"], follow_final=False) as resolved:
                return reading.stat_entry(resolved)

        entry = await self._run(work)
        text = "\n".join(f"{k}: {v}" for k, v in entry.items())
        return Result(entry, text)

    async def _write_file(self, args: Json, ctx: CallContext) -> Result:
        roots = await self.roots_for(ctx)
        data = args["content"].encode("utf-8")
        if len(data) > self.options.max_write_bytes:
            raise BuiltinError(
                f"content is {len(data):,} bytes, over the {self.options.max_write_bytes:,}-byte "
                "write limit (max_write_bytes)"
            )

        def work() -> tuple[str, bool]:
            if args.get("create_directories"):
                self._make_parents(roots, args["path"])
            with self._resolve(roots, args["path"]) as resolved:
                created = writing.write_file(resolved, data, overwrite=args.get("overwrite", True))
                return resolved.display, created

        path, created = await self._run(work)
        verb = "Created" if created else "Replaced"
        return Result(
            {"path": path, "bytes": len(data), "created": created},
            f"{verb} {path} ({len(data):,} bytes).",
        )

    def _make_parents(self, roots: list[Root], path: str) -> None:
        root, parts = locate(roots, path)
        parts = [p for p in parts if p not in ("", ".")]
        for end in range(1, len(parts)):
            with resolve(
                root, parts[:end], follow_symlinks=self.options.follow_symlinks
            ) as resolved:
                writing.make_folder(resolved)

    async def _edit_file(self, args: Json, ctx: CallContext) -> Result:
        roots = await self.roots_for(ctx)
        dry_run = args.get("dry_run", False)
        limit = self.options.max_write_bytes

        def work() -> tuple[str, writing.EditOutcome]:
            with self._resolve(roots, args["path"]) as resolved:
                if not dry_run:
                    writing.check_writable(resolved)
                found = reading.read_file(resolved, offset=0, length=None, max_bytes=limit)
                if found.text is None:
                    raise BuiltinError(f"{resolved.display} is a binary file: it cannot be edited")
                outcome = writing.apply_edits(resolved.display, found.text, args["edits"])
                new = outcome.new_text.encode("utf-8")
                if len(new) > limit:
                    raise BuiltinError(
                        f"the edited file would be {len(new):,} bytes, over the {limit:,}-byte "
                        "write limit (max_write_bytes)"
                    )
                if not dry_run:
                    writing.write_file(resolved, new, overwrite=True)
                return resolved.display, outcome

        path, outcome = await self._run(work)
        structured = {
            "path": path,
            "diff": outcome.diff,
            "replacements": outcome.replacements,
            "applied": not dry_run,
        }
        head = f"{'Would change' if dry_run else 'Changed'} {path} ({outcome.replacements} "
        head += "replacement(s))" + (" - dry run, nothing written" if dry_run else "") + ":\n"
        return Result(structured, head + (outcome.diff or "(no change)"))

    async def _move(self, args: Json, ctx: CallContext) -> Result:
        roots = await self.roots_for(ctx)

        def work() -> tuple[str, str]:
            with (
                self._resolve(roots, args["source"], follow_final=False) as source,
                self._resolve(roots, args["destination"], follow_final=False) as destination,
            ):
                writing.move(source, destination, overwrite=args.get("overwrite", False))
                return source.display, destination.display

        source, destination = await self._run(work)
        return Result(
            {"source": source, "destination": destination}, f"Moved {source} to {destination}."
        )

    async def _create_directory(self, args: Json, ctx: CallContext) -> Result:
        roots = await self.roots_for(ctx)

        def work() -> tuple[str, bool]:
            self._make_parents(roots, args["path"])
            with self._resolve(roots, args["path"]) as resolved:
                return resolved.display, writing.make_folder(resolved)

        path, created = await self._run(work)
        text = f"Created {path}." if created else f"{path} exists already."
        return Result({"path": path, "created": created}, text)

    async def _delete(self, args: Json, ctx: CallContext) -> Result:
        roots = await self.roots_for(ctx)

        def work() -> tuple[str, str]:
            with self._resolve(roots, args["path"], follow_final=False) as resolved:
                return resolved.display, writing.delete(resolved)

        path, kind = await self._run(work)
        return Result({"path": path, "type": kind}, f"Deleted the {kind} {path}.")

    # ---- resources ---------------------------------------------------------------------------

    async def read_resource(self, uri: str, ctx: CallContext) -> Json:
        if not uri.startswith("file:"):
            raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
        roots = await self.roots_for(ctx)

        def work() -> Json:
            with self._resolve(roots, uri) as resolved:
                if resolved.info is None:
                    raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
                if resolved.name == "" or _is_dir(resolved):
                    entries, truncated = reading.list_folder(
                        resolved,
                        depth=1,
                        max_entries=self.options.max_list_entries,
                        hidden=True,
                    )
                    lines = [e["name"] + ("/" if e["type"] == "folder" else "") for e in entries]
                    if truncated:
                        lines.append("...")
                    return {"uri": uri, "mimeType": "text/plain", "text": "\n".join(lines)}
                found = reading.read_file(
                    resolved, offset=0, length=None, max_bytes=self.options.max_read_bytes
                )
                if found.text is not None:
                    return {"uri": uri, "mimeType": found.mime, "text": found.text}
                if self.options.binary == "refuse":
                    raise BuiltinError(f"{found.path} is a binary file ({found.mime})")
                blob: Json = found.blob()["resource"]
                return {**blob, "uri": uri}

        return {"contents": [await self._run(work)]}


def _is_dir(resolved: Resolved) -> bool:
    return resolved.info is not None and stat.S_ISDIR(resolved.info.st_mode)
