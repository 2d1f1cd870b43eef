"""Completion of command lines in the terminal (the pty tests in test_connect.py type them)."""

from __future__ import annotations

from typing import Any

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from catalyst_mcp.cli.shell import Shell, StreamReader
from catalyst_mcp.cli.terminal import ShellCompleter, TerminalReader


class FakeTarget:
    lists: dict[str, list[dict[str, Any]]] = {
        "tools": [
            {"name": "add", "inputSchema": {"properties": {"a": {}, "b": {}}}},
            {"name": "echo", "inputSchema": {"properties": {"text": {}}}},
        ],
        "resources": [{"uri": "res://hello"}],
        "resourceTemplates": [],
        "prompts": [{"name": "greet", "arguments": [{"name": "name"}]}],
    }

    def items(self, kind: str) -> list[dict[str, Any]]:
        return self.lists[kind]


def complete(text: str) -> list[str]:
    completer = ShellCompleter()
    completer.shell = Shell(FakeTarget(), "x", StreamReader(None))  # type: ignore[arg-type]
    found = completer.get_completions(Document(text), CompleteEvent(completion_requested=True))
    return [c.text for c in found]


def test_commands_then_what_each_takes() -> None:
    assert complete("")[:3] == ["help", "tools", "describe"]
    assert complete("de") == ["describe"]
    assert complete("call ") == ["add", "echo"]
    assert complete("call e") == ["echo"]
    assert complete("describe a") == ["add"]
    assert complete("read r") == ["res://hello"]
    assert complete("prompt ") == ["greet"]
    assert complete("help lo") == ["loglevel"]
    assert complete("loglevel e") == ["error", "emergency"]
    assert complete("tools ") == []
    assert complete("nonsense ") == []


def test_argument_names_after_a_tool_or_prompt() -> None:
    assert complete("call add ") == ["a=", "b="]
    assert complete("call add a=1 ") == ["b="]
    assert complete("call add a=1 b") == ["b="]
    assert complete("call nope ") == []
    assert complete("prompt greet n") == ["name="]


def test_history_goes_to_its_file(tmp_path: Any) -> None:
    reader = TerminalReader(tmp_path / "deep" / "history")
    assert (tmp_path / "deep").is_dir()
    reader.commands.history.append_string("tools")
    assert "tools" in (tmp_path / "deep" / "history").read_text()
