"""Editing ``catalyst.yaml`` in place: add, replace or remove one server entry and keep
everything else — comments, order, quoting, indentation — as the user wrote it.

Round-trip YAML (``ruamel.yaml``) reads the file with its comments and layout, the change is
made on that tree, and the file is replaced atomically. An entry of the same name is never
overwritten unless asked (``--force``). A config that uses a pasted ``mcpServers:`` key gets
its entries there.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from catalyst_mcp.errors import ConfigError, ConfigProblem, PackageConflict
from catalyst_mcp.packages.atomicwrite import atomic_write

__all__ = ["ConfigFile"]


class ConfigFile:
    """One config file, loaded for editing (a missing file starts empty)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.yaml = YAML(typ="rt")
        self.yaml.preserve_quotes = True
        self.yaml.width = 4096  # never re-wrap long lines
        self.exists = path.exists()
        text = path.read_text(encoding="utf-8") if self.exists else ""
        indent, block_seq_indent = 2, 0
        try:
            if text.strip():
                _, guessed, seq_indent = load_yaml_guess_indent(text)
                indent, block_seq_indent = guessed or 2, seq_indent or 0
                self.yaml.indent(
                    mapping=indent, sequence=indent + block_seq_indent, offset=block_seq_indent
                )
            data = self.yaml.load(text) if text.strip() else None
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise ConfigError([ConfigProblem(str(path), line, f"not valid YAML: {exc}")]) from exc
        if data is None:
            data = CommentedMap()
        if not isinstance(data, CommentedMap):
            raise ConfigError(
                [ConfigProblem(str(path), 1, "the top level must be a mapping of sections")]
            )
        self.data: CommentedMap = data

    @property
    def _key(self) -> str:
        return (
            "mcpServers" if "mcpServers" in self.data and "servers" not in self.data else "servers"
        )

    def _servers(self, create: bool) -> CommentedMap | None:
        servers = self.data.get(self._key)
        if servers is None and create:
            servers = CommentedMap()
            self.data[self._key] = servers
        if servers is not None and not isinstance(servers, CommentedMap):
            raise ConfigError(
                [ConfigProblem(str(self.path), None, f"'{self._key}' must be a mapping")]
            )
        return servers

    def server(self, name: str) -> Mapping[str, Any] | None:
        servers = self._servers(create=False)
        entry = servers.get(name) if servers is not None else None
        return entry if isinstance(entry, Mapping) else None

    def has_server(self, name: str) -> bool:
        servers = self._servers(create=False)
        return servers is not None and name in servers

    def set_server(self, name: str, entry: Mapping[str, Any], *, replace: bool = False) -> None:
        """Add the entry ``name`` at the end of the servers (or replace it, with ``replace``)."""
        servers = self._servers(create=True)
        assert servers is not None
        if name in servers and not replace:
            raise PackageConflict(
                f"a server named {name!r} is already configured in {self.path}: choose another "
                "name with --name, or replace it with --force"
            )
        node = CommentedMap()
        for key, value in entry.items():
            if isinstance(value, list):
                seq = CommentedSeq(value)
                seq.fa.set_flow_style()
                node[key] = seq
            elif isinstance(value, dict):
                node[key] = CommentedMap(value)
            else:
                node[key] = value
        if name in servers:
            servers[name] = node
            return
        # What followed the last entry (blank lines, comments of the next section) follows
        # the new last entry instead.
        trailing = _take_trailing(servers)
        servers[name] = node
        if trailing is not None:
            _put_trailing(servers, trailing)

    def set_command(self, name: str, command: str) -> bool:
        """Point an existing entry at ``command``; ``False`` if there is no such entry."""
        servers = self._servers(create=False)
        if servers is None or not isinstance(servers.get(name), CommentedMap):
            return False
        servers[name]["command"] = command
        return True

    def remove_server(self, name: str) -> bool:
        servers = self._servers(create=False)
        if servers is None or name not in servers:
            return False
        last = list(servers.keys())[-1] == name
        trailing = _take_trailing(servers) if last else None
        del servers[name]
        if trailing is not None:
            _put_trailing(servers, trailing)
        return True

    def dumps(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.data, out)
        return out.getvalue()

    def save(self) -> None:
        atomic_write(self.path, self.dumps().encode("utf-8"))


def _last_slot(node: Any) -> tuple[Any, Any, int] | None:
    """Where the comment after ``node``'s last line lives: (container, key, index in its
    comment list), descending through block collections."""
    while True:
        if isinstance(node, CommentedMap) and len(node):
            key, index = list(node.keys())[-1], 2
        elif isinstance(node, CommentedSeq) and len(node):
            key, index = len(node) - 1, 0
        else:
            return None
        value = node[key]
        nested = isinstance(value, CommentedMap | CommentedSeq) and len(value)
        if nested and not value.fa.flow_style():
            node = value
            continue
        return node, key, index


def _take_trailing(node: Any) -> Any:
    slot = _last_slot(node)
    if slot is None:
        return None
    container, key, index = slot
    comments = container.ca.items.get(key)
    if not comments or len(comments) <= index or comments[index] is None:
        return None
    token = comments[index]
    comments[index] = None
    return token


def _put_trailing(node: Any, token: Any) -> None:
    slot = _last_slot(node)
    if slot is None:
        return
    container, key, index = slot
    comments = container.ca.items.setdefault(key, [None, None, None, None])
    while len(comments) <= index:
        comments.append(None)
    comments[index] = token
