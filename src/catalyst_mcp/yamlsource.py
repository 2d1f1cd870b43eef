"""Load YAML while remembering where every value came from, so errors can say ``file:line``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from catalyst_mcp.errors import ConfigError, ConfigProblem

__all__ = ["LocatedYaml", "load_yaml", "read_yaml"]

Path_ = tuple[str | int, ...]


@dataclass(slots=True)
class LocatedYaml:
    """A parsed YAML document plus the 1-based line (and column) of every key and item."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    columns: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest located ancestor."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def problem(self, path: Path_, message: str) -> ConfigProblem:
        return ConfigProblem(self.file, self.line_of(path), message)

    def problem_at(self, path: Path_, message: str) -> ConfigProblem:
        """Like :meth:`problem`, located as ``file:line:col`` where the column is known."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return ConfigProblem(self.file, line, message, self.columns.get(path[:end]))
        return ConfigProblem(self.file, None, message)


_CONSTRUCTOR = yaml.SafeLoader("")
# libyaml's parser when PyYAML was built with it: ~10x faster, with the same node marks
# (bench/packs.py: loading 100 packs spent most of its time in the pure-Python parser).
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


STR_TAG = "tag:yaml.org,2002:str"


def _scalar(node: yaml.Node, file: str) -> Any:
    if node.tag == STR_TAG and isinstance(node, yaml.ScalarNode):
        return node.value  # most scalars: nothing to construct
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [ConfigProblem(file, node.start_mark.line + 1, f"unsupported YAML value: {problem}")]
        ) from exc


def _walk(
    node: yaml.Node, path: Path_, lines: dict[Path_, int], file: str, cols: dict[Path_, int]
) -> Any:
    if path not in lines:
        lines[path] = node.start_mark.line + 1
        cols[path] = node.start_mark.column + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, file)
            if key in out:
                raise ConfigError(
                    [ConfigProblem(file, key_node.start_mark.line + 1, f"duplicate key {key!r}")]
                )
            child = (*path, key if isinstance(key, int | str) else str(key))
            lines[child] = key_node.start_mark.line + 1
            cols[child] = key_node.start_mark.column + 1
            out[key] = _walk(value_node, child, lines, file, cols)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), lines, file, cols) for i, item in enumerate(node.value)]
    return _scalar(node, file)


def load_yaml(text: str, file: str) -> LocatedYaml:
    """Parse one YAML document from ``file``; syntax errors become :class:`ConfigError`."""
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem(file, line, f"YAML syntax: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(file, None, f"YAML syntax: {exc}")]) from exc
    located = LocatedYaml(file, None)
    if node is not None:
        located.data = _walk(node, (), located.lines, file, located.columns)
    return located


def read_yaml(path: Path) -> LocatedYaml:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start}): save the file as UTF-8"
        raise ConfigError([ConfigProblem(str(path), None, problem)]) from exc
    return load_yaml(text, str(path))
