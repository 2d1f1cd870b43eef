"""YAML with the line of every key, for file:line error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalyst_mcp.errors import ConfigError
from catalyst_mcp.yamlsource import LocatedYaml, load_yaml, read_yaml

TEXT = """\
gateway:
  port: 9000
servers:
  one:
    command: run
    args:
      - a
      - b
  two: {url: "http://x"}
"""


def test_data_and_lines() -> None:
    doc = load_yaml(TEXT, "c.yaml")
    assert doc.data == {
        "gateway": {"port": 9000},
        "servers": {"one": {"command": "run", "args": ["a", "b"]}, "two": {"url": "http://x"}},
    }
    assert doc.lines[("gateway",)] == 1
    assert doc.lines[("gateway", "port")] == 2
    assert doc.lines[("servers", "one", "command")] == 5
    assert doc.lines[("servers", "one", "args", 1)] == 8
    assert doc.lines[("servers", "two", "url")] == 9


def test_line_of_falls_back_to_the_nearest_ancestor() -> None:
    doc = load_yaml(TEXT, "c.yaml")
    assert doc.line_of(("servers", "one", "nope", "deeper")) == 4
    assert doc.line_of(("missing",)) == 1  # the document itself
    assert LocatedYaml("x", None).line_of(("a",)) is None


def test_problem_names_file_and_line() -> None:
    doc = load_yaml(TEXT, "c.yaml")
    assert str(doc.problem(("gateway", "port"), "bad port")) == "c.yaml:2: bad port"


@pytest.mark.parametrize(
    ("text", "line"), [("a: [1, 2\n", 2), ("a:\n  b: 1\n c: 2\n", 3), ("a: 'x\n", 2)]
)
def test_syntax_errors_carry_the_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(text, "bad.yaml")
    (problem,) = caught.value.problems
    assert problem.file == "bad.yaml"
    assert problem.line == line
    assert problem.message.startswith("YAML syntax:")


def test_duplicate_keys_are_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml("servers:\n  a: {}\n  a: {}\n", "d.yaml")
    assert str(caught.value) == "d.yaml:3: duplicate key 'a'"


def test_python_tags_never_construct_objects() -> None:
    doc = load_yaml("a: !!python/object/apply:os.system ['true']\n", "evil.yaml")
    assert doc.data == {"a": ["true"]}  # the tag is ignored; nothing runs


@pytest.mark.parametrize("text", ["a: !custom 5\n", "a:\n  b: !!python/name:os.system ''\n"])
def test_unknown_scalar_tags_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(text, "tag.yaml")
    assert caught.value.problems[0].line == text.count("\n")


def test_empty_document() -> None:
    doc = load_yaml("", "e.yaml")
    assert doc.data is None
    assert doc.lines == {}
    assert load_yaml("# only a comment\n", "e.yaml").data is None


def test_scalars_keep_yaml_types() -> None:
    doc = load_yaml("a: true\nb: 1.5\nc: null\nd: '7'\n", "s.yaml")
    assert doc.data == {"a": True, "b": 1.5, "c": None, "d": "7"}


def test_read_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(TEXT, encoding="utf-8")
    assert read_yaml(path).file == str(path)
    with pytest.raises(ConfigError) as caught:
        read_yaml(tmp_path / "missing.yaml")
    assert caught.value.problems[0].message.startswith("cannot read:")
    assert caught.value.problems[0].line is None


def test_a_file_that_is_not_utf8_is_a_clear_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    assert str(caught.value.problems[0]) == (
        f"{path}: not UTF-8 text (byte 9): save the file as UTF-8"
    )
