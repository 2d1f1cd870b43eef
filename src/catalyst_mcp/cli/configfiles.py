"""Adding one server entry to a client's config file without losing anything of the user's.

The file is read whole (JSON with comments, or YAML); the entry is added to its section and
everything else is kept. Before the file is replaced, a copy is kept next to it
(``<file>.bak-YYYYmmdd-HHMMSS``); the new text is written to a temporary file in the same folder
and renamed over the old one, so a crash leaves the old file or the new one, never half of one.
An entry of the same name is replaced only when asked (``force``).

JSON files are written back as indented JSON: comments a JSONC file had are not kept (they stay
in the backup, and the caller is told). YAML files (librechat.yaml) are edited as text: the
entry's lines are inserted under the section (or the section is appended), every other line is
left exactly as it was, and the result must load as the old data plus the entry, or nothing is
written.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from catalyst_mcp.cli.importer import strip_jsonc

__all__ = ["EntryExists", "MergeError", "Merged", "merge_entry", "read_config"]


class MergeError(Exception):
    """The file cannot be read or changed safely; the message says why (one line)."""


class EntryExists(MergeError):
    """The file already has a different entry of that name (and no ``force``)."""


@dataclass(slots=True)
class Merged:
    """What :func:`merge_entry` did."""

    path: Path
    changed: bool
    replaced: bool = False
    created: bool = False
    backup: Path | None = None
    notes: list[str] = field(default_factory=list)


def read_config(path: Path, is_yaml: bool) -> tuple[str, dict[str, Any]]:
    """The text and data of a client config file (``{}`` for an empty one)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MergeError(f"cannot read {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text) if is_yaml else json.loads(strip_jsonc(text) or "{}")
    except json.JSONDecodeError as exc:
        raise MergeError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise MergeError(f"{path}{where}: not valid YAML") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MergeError(f"{path}: the top level is not an object")
    return text, data


def merge_entry(
    path: Path,
    section: str,
    name: str,
    entry: dict[str, Any],
    *,
    is_yaml: bool = False,
    inputs: list[dict[str, Any]] | None = None,
    force: bool = False,
    private: bool = False,
) -> Merged:
    """Add (or with ``force`` replace) entry ``name`` in ``section`` of ``path``.

    ``inputs`` (VS Code) are added to the top-level ``inputs`` list unless one with the same id
    is there. ``private``: the file holds a secret in clear, so a new file gets mode 0600.
    """
    created = not path.exists()
    text, data = ("", {}) if created else read_config(path, is_yaml)
    servers = data.get(section)
    if servers is not None and not isinstance(servers, dict):
        raise MergeError(f"{path}: {section!r} is not an object")
    servers = dict(servers or {})
    replaced = name in servers
    if replaced and servers[name] == entry and _has_inputs(data, inputs):
        return Merged(path, changed=False)
    if replaced and not force:
        raise EntryExists(
            f"{path} already has a server {name!r}; --force replaces it (a backup is kept), "
            "--name adds one under another name"
        )
    wanted = dict(data)
    wanted[section] = {**servers, name: entry}
    for item in inputs or []:
        current = [i for i in wanted.get("inputs") or [] if isinstance(i, dict)]
        if not any(i.get("id") == item["id"] for i in current):
            wanted["inputs"] = [*(wanted.get("inputs") or []), item]
    notes: list[str] = []
    if is_yaml:
        new_text = _yaml_text(path, text, data, wanted, section, name, entry)
    else:
        new_text = json.dumps(wanted, indent=2, ensure_ascii=False) + "\n"
        if not created and strip_jsonc(text) != text:
            notes.append(f"{path} had comments or trailing commas, which are not kept")
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None if created else _backup(path)
    if backup is not None and notes:
        notes[-1] += f" (they are in {backup})"
    _write_atomically(path, new_text, private=private)
    return Merged(path, True, replaced=replaced, created=created, backup=backup, notes=notes)


def _has_inputs(data: dict[str, Any], inputs: list[dict[str, Any]] | None) -> bool:
    present = {i.get("id") for i in data.get("inputs") or [] if isinstance(i, dict)}
    return all(item["id"] in present for item in inputs or [])


def _backup(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{path.name}.bak-{stamp}-{n}")
    shutil.copy2(path, backup)
    return backup


def _write_atomically(path: Path, text: str, *, private: bool) -> None:
    mode = path.stat().st_mode & 0o7777 if path.exists() else (0o600 if private else 0o644)
    if private:
        mode &= 0o700  # a key in clear: nobody else reads it
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# ---- YAML as text ----------------------------------------------------------------------------


def _yaml_text(
    path: Path,
    text: str,
    data: dict[str, Any],
    wanted: dict[str, Any],
    section: str,
    name: str,
    entry: dict[str, Any],
) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    header = re.compile(rf"^{re.escape(section)}:\s*(#.*)?$")
    at = next((i for i, line in enumerate(lines) if header.match(line.rstrip("\n"))), None)
    if at is None:
        if section in data:
            raise MergeError(
                f"{path}: {section!r} is not written as a block (`{section}:` on a line of its "
                "own); add the entry by hand"
            )
        block = _block(name, entry, 2)
        separator = "\n" if lines and lines[-1].strip() else ""
        new_text = "".join(lines) + separator + f"{section}:\n" + block
    else:
        indent = _child_indent(lines, at)
        start, end = _entry_span(lines, at, indent, name)
        block = _block(name, entry, indent)
        if start is None:
            new_lines = [*lines[: at + 1], block, *lines[at + 1 :]]
        else:
            new_lines = [*lines[:start], block, *lines[end:]]
        new_text = "".join(new_lines)
    try:
        check = yaml.safe_load(new_text)
    except yaml.YAMLError:
        check = None
    if check != wanted:
        raise MergeError(
            f"{path}: its layout is unusual and the entry cannot be added safely; add it by hand"
        )
    return new_text


def _block(name: str, entry: dict[str, Any], indent: int) -> str:
    text = yaml.safe_dump(
        {name: entry}, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096
    )
    return "".join(" " * indent + line if line.strip() else line for line in text.splitlines(True))


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _meaningful(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _child_indent(lines: list[str], at: int) -> int:
    for line in lines[at + 1 :]:
        if _meaningful(line):
            return _indent_of(line) if _indent_of(line) > 0 else 2
    return 2


def _entry_span(lines: list[str], at: int, indent: int, name: str) -> tuple[int | None, int]:
    """The lines ``[start, end)`` of entry ``name`` in the section whose header is line ``at``
    (``start`` None: there is no such entry). Comments and blank lines after the entry stay:
    they may belong to the next one."""
    key = re.compile(rf"^ {{{indent}}}(['\"]?){re.escape(name)}\1\s*:")
    start: int | None = None
    for i in range(at + 1, len(lines)):
        line = lines[i]
        if not _meaningful(line):
            continue
        if _indent_of(line) < indent:
            break  # the section is over
        if _indent_of(line) == indent:
            if start is not None:
                return start, _trimmed(lines, start, i)
            if key.match(line):
                start = i
    if start is None:
        return None, 0
    return start, _trimmed(lines, start, _section_end(lines, at, indent))


def _section_end(lines: list[str], at: int, indent: int) -> int:
    for i in range(at + 1, len(lines)):
        if _meaningful(lines[i]) and _indent_of(lines[i]) < indent:
            return i
    return len(lines)


def _trimmed(lines: list[str], start: int, end: int) -> int:
    while end > start + 1 and not _meaningful(lines[end - 1]):
        end -= 1
    return end
