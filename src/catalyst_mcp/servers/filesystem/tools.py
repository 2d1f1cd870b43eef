"""The filesystem server's tools as declared: names, descriptions, schemas and annotations.

Descriptions quote the limits in effect (``max_read_bytes``, the search limits, ...), so the tools
are declared per server from its options; the coroutines that serve them come from the server
(:class:`Handlers`). The write tools are declared only when a root is writable, ``delete`` only
with ``allow_delete``.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalyst_mcp.servers.base import Handler, Json, Tool, obj
from catalyst_mcp.servers.config import FilesystemOptions

__all__ = ["Handlers", "tools_of"]

MAX_EDITS = 100
MAX_PATTERN_CHARS = 1000

PATH_HELP = (
    "Absolute path inside a served folder (see list_roots), a file:// URI, or a path "
    "relative to the first served folder."
)
PATH: Json = {"type": "string", "minLength": 1, "maxLength": 4096, "description": PATH_HELP}
FOLDER: Json = {**PATH, "description": PATH_HELP + " Default: the first served folder."}
ENTRY = obj(
    {
        "name": {"type": "string", "description": "Path relative to the listed folder."},
        "type": {"enum": ["file", "folder", "symlink", "device", "fifo", "socket", "other"]},
        "size": {"type": "integer", "description": "Bytes (files only)."},
        "modified": {"type": "string", "format": "date-time"},
    },
    ["name", "type", "modified"],
)
MATCH = obj(
    {
        "path": {"type": "string", "description": "Relative to the searched folder."},
        "line": {"type": "integer", "description": "1-based line number (content search)."},
        "text": {"type": "string", "description": "The matching line (cut at 300 chars)."},
        "size": {"type": "integer", "description": "Bytes (name search)."},
    },
    ["path"],
)


@dataclass(frozen=True, slots=True)
class Handlers:
    """The coroutine serving each tool, named after the tool."""

    list_roots: Handler
    read_file: Handler
    list_directory: Handler
    search_files: Handler
    file_info: Handler
    write_file: Handler
    edit_file: Handler
    move: Handler
    create_directory: Handler
    delete: Handler


def tools_of(opts: FilesystemOptions, handlers: Handlers, *, writable: bool) -> list[Tool]:
    """The tools a server with ``opts`` declares: the write tools only if ``writable``."""
    tools = [
        Tool(
            "list_roots",
            "List served folders",
            "The folders this server serves, and whether each is writable. Every path "
            "given to the other tools must lie inside one of them.",
            obj({}),
            obj(
                {
                    "roots": {
                        "type": "array",
                        "items": obj(
                            {
                                "name": {"type": "string"},
                                "path": {"type": "string"},
                                "uri": {"type": "string"},
                                "writable": {"type": "boolean"},
                            },
                            ["name", "path", "uri", "writable"],
                        ),
                    }
                },
                ["roots"],
            ),
            handlers.list_roots,
        ),
        Tool(
            "read_file",
            "Read a file",
            f"Read a file as UTF-8 text. Files over {opts.max_read_bytes:,} bytes must be "
            "read in parts with offset and length. A binary file "
            + ("comes back as a base64 resource blob." if opts.binary == "blob" else "is refused."),
            obj(
                {
                    "path": PATH,
                    "offset": {
                        "type": "integer",
                        "minimum": 0,
                        "default": 0,
                        "description": "Byte offset to start at.",
                    },
                    "length": {
                        "type": "integer",
                        "minimum": 1,
                        "description": f"Bytes to read (at most {opts.max_read_bytes:,}).",
                    },
                },
                ["path"],
            ),
            obj(
                {
                    "path": {"type": "string"},
                    "size": {"type": "integer", "description": "The file's size in bytes."},
                    "offset": {"type": "integer"},
                    "length": {"type": "integer", "description": "Bytes returned."},
                    "truncated": {
                        "type": "boolean",
                        "description": "More of the file follows what was returned.",
                    },
                    "binary": {"type": "boolean"},
                    "mimeType": {"type": "string"},
                    "text": {"type": "string", "description": "The content (text files)."},
                },
                ["path", "size", "offset", "length", "truncated", "binary", "mimeType"],
            ),
            handlers.read_file,
        ),
        Tool(
            "list_directory",
            "List a folder",
            "Entries of a folder (name, type, size, modification time), to a depth. "
            f"At most {opts.max_list_entries:,} entries; symlinks are listed, not entered.",
            obj(
                {
                    "path": FOLDER,
                    "depth": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 10,
                        "default": 1,
                        "description": "1: the folder's own entries; 2: and their entries; ...",
                    },
                    "pattern": {
                        "type": "string",
                        "maxLength": MAX_PATTERN_CHARS,
                        "description": "Only names matching this glob (e.g. '*.md').",
                    },
                    "include_hidden": {
                        "type": "boolean",
                        "default": True,
                        "description": "List names starting with '.'.",
                    },
                }
            ),
            obj(
                {
                    "path": {"type": "string"},
                    "entries": {"type": "array", "items": ENTRY},
                    "truncated": {"type": "boolean"},
                },
                ["path", "entries", "truncated"],
            ),
            handlers.list_directory,
        ),
        Tool(
            "search_files",
            "Search files",
            "Find files by name (glob) and/or by content (text or regular expression) "
            "beneath a folder. Symlinks are not followed. Stops after "
            f"{opts.search_max_files:,} files, {opts.search_max_matches:,} matches or "
            f"{opts.search_timeout_seconds:g} s, and says which.",
            obj(
                {
                    "path": FOLDER,
                    "glob": {
                        "type": "string",
                        "maxLength": MAX_PATTERN_CHARS,
                        "description": "File name pattern: '*.py' matches names at any "
                        "depth; with '/', the relative path ('src/**/*.py').",
                    },
                    "content": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_PATTERN_CHARS,
                        "description": "Text to find in files (one line at a time).",
                    },
                    "regex": {
                        "type": "boolean",
                        "default": False,
                        "description": "content is a Python regular expression.",
                    },
                    "case_sensitive": {"type": "boolean", "default": False},
                    "exclude": {
                        "type": "array",
                        "items": {"type": "string", "maxLength": MAX_PATTERN_CHARS},
                        "maxItems": 100,
                        "description": "Globs of files and folders to skip "
                        "(e.g. ['.git', 'node_modules']).",
                    },
                    "max_matches": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": opts.search_max_matches,
                    },
                }
            ),
            obj(
                {
                    "path": {"type": "string"},
                    "matches": {"type": "array", "items": MATCH},
                    "files_scanned": {"type": "integer"},
                    "files_skipped": {
                        "type": "integer",
                        "description": "Binary, too large or unreadable files.",
                    },
                    "truncated": {"type": "boolean"},
                    "stopped_by": {
                        "enum": ["max_files", "max_matches", "timeout", None],
                        "description": "The limit that ended the search early, if any.",
                    },
                },
                [
                    "path",
                    "matches",
                    "files_scanned",
                    "files_skipped",
                    "truncated",
                    "stopped_by",
                ],
            ),
            handlers.search_files,
        ),
        Tool(
            "file_info",
            "File information",
            "Type, size, permissions and times of a file or folder (a symlink is "
            "described itself, with its target).",
            obj({"path": PATH}, ["path"]),
            obj(
                {
                    "path": {"type": "string"},
                    "type": {
                        "enum": [
                            "file",
                            "folder",
                            "symlink",
                            "device",
                            "fifo",
                            "socket",
                            "other",
                        ]
                    },
                    "size": {"type": "integer"},
                    "mode": {"type": "string", "description": "Permission bits, octal."},
                    "modified": {"type": "string", "format": "date-time"},
                    "accessed": {"type": "string", "format": "date-time"},
                    "changed": {"type": "string", "format": "date-time"},
                    "writable": {
                        "type": "boolean",
                        "description": "It lies in a writable served folder.",
                    },
                    "target": {"type": "string", "description": "A symlink's target."},
                    "mimeType": {"type": "string"},
                },
                ["path", "type", "size", "mode", "modified", "accessed", "changed", "writable"],
            ),
            handlers.file_info,
        ),
    ]
    if writable:
        tools += _write_tools(opts, handlers)
    return tools


def _write_tools(opts: FilesystemOptions, handlers: Handlers) -> list[Tool]:
    tools = [
        Tool(
            "write_file",
            "Write a file",
            "Create or replace a file with UTF-8 text (atomically: readers see the old or "
            f"the new file). At most {opts.max_write_bytes:,} bytes; writable folders only.",
            obj(
                {
                    "path": PATH,
                    "content": {"type": "string"},
                    "overwrite": {
                        "type": "boolean",
                        "default": True,
                        "description": "Replace an existing file (false: refuse).",
                    },
                    "create_directories": {
                        "type": "boolean",
                        "default": False,
                        "description": "Create missing parent folders.",
                    },
                },
                ["path", "content"],
            ),
            obj(
                {
                    "path": {"type": "string"},
                    "bytes": {"type": "integer"},
                    "created": {"type": "boolean"},
                },
                ["path", "bytes", "created"],
            ),
            handlers.write_file,
            read_only=False,
            destructive=True,
            idempotent=True,
        ),
        Tool(
            "edit_file",
            "Edit a file",
            "Replace exact text in a file: each edit's old_text must occur once (or pass "
            "replace_all). Returns a unified diff; dry_run shows the diff without writing.",
            obj(
                {
                    "path": PATH,
                    "edits": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_EDITS,
                        "items": obj(
                            {
                                "old_text": {"type": "string", "minLength": 1},
                                "new_text": {"type": "string"},
                                "replace_all": {"type": "boolean", "default": False},
                            },
                            ["old_text", "new_text"],
                        ),
                    },
                    "dry_run": {"type": "boolean", "default": False},
                },
                ["path", "edits"],
            ),
            obj(
                {
                    "path": {"type": "string"},
                    "diff": {"type": "string", "description": "Unified diff of the change."},
                    "replacements": {"type": "integer"},
                    "applied": {"type": "boolean", "description": "False for a dry run."},
                },
                ["path", "diff", "replacements", "applied"],
            ),
            handlers.edit_file,
            read_only=False,
            destructive=True,
            idempotent=False,
        ),
        Tool(
            "move",
            "Move or rename",
            "Move or rename a file or folder within the writable folders. An existing "
            "destination file is replaced only with overwrite; a folder never.",
            obj(
                {
                    "source": PATH,
                    "destination": PATH,
                    "overwrite": {"type": "boolean", "default": False},
                },
                ["source", "destination"],
            ),
            obj(
                {"source": {"type": "string"}, "destination": {"type": "string"}},
                ["source", "destination"],
            ),
            handlers.move,
            read_only=False,
            destructive=True,
            idempotent=False,
        ),
        Tool(
            "create_directory",
            "Create a folder",
            "Create a folder (and its missing parents). An existing folder is fine.",
            obj({"path": PATH}, ["path"]),
            obj(
                {"path": {"type": "string"}, "created": {"type": "boolean"}},
                ["path", "created"],
            ),
            handlers.create_directory,
            read_only=False,
            destructive=False,
            idempotent=True,
        ),
    ]
    if opts.allow_delete:
        tools.append(
            Tool(
                "delete",
                "Delete a file or empty folder",
                "Delete a file, a symlink (not its target) or an empty folder in a "
                "writable folder. Never recursive.",
                obj({"path": PATH}, ["path"]),
                obj(
                    {
                        "path": {"type": "string"},
                        "type": {"enum": ["file", "symlink", "folder"]},
                    },
                    ["path", "type"],
                ),
                handlers.delete,
                read_only=False,
                destructive=True,
                idempotent=False,
            )
        )
    return tools
