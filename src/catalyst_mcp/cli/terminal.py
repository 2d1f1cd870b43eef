"""The terminal side of ``catalyst connect``: prompt_toolkit prompts with completion and history.

Completion (Tab) knows the shell's commands, then what the command's first argument is (a tool
name, a resource URI, a prompt name, a command, a log level), then ``key=`` for the arguments
of ``call TOOL`` and ``prompt NAME``. Argument prompts complete an ``enum``'s values. History is
kept in a file between sessions (Up/Down, Ctrl-R). Decision 014 says why prompt_toolkit.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, WordCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from catalyst_mcp.cli.shell import COMMANDS, Shell
from catalyst_mcp.protocol.versions import LOG_LEVELS

__all__ = ["ShellCompleter", "TerminalReader"]


class ShellCompleter(Completer):
    """Completes a command line of :class:`Shell`."""

    def __init__(self) -> None:
        self.shell: Shell | None = None

    def candidates(self, words: list[str], position: int) -> list[str]:
        """What may stand at word ``position`` of a line whose words are ``words``."""
        if position == 0:
            return [*COMMANDS, "exit", "quit"]
        shell = self.shell
        command = COMMANDS.get(words[0])
        if shell is None or command is None:
            return []
        if position == 1:
            kind = command.completes
            if kind == "commands":
                return list(COMMANDS)
            if kind == "levels":
                return list(LOG_LEVELS)
            if kind == "tools":
                return shell.names("tools")
            if kind == "prompts":
                return shell.names("prompts")
            if kind == "resources":
                return shell.names("resources")
            return []
        given = {w.partition("=")[0] + "=" for w in words[2:position]}
        return [a for a in shell.argument_names(words[0], words[1]) if a not in given]

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split()
        if not text or text[-1].isspace():
            words.append("")
        current = words[-1]
        for candidate in self.candidates(words, len(words) - 1):
            if candidate.startswith(current):
                yield Completion(candidate, start_position=-len(current))


class TerminalReader:
    """Reads command lines and argument values from the terminal."""

    def __init__(self, history_file: Path | None) -> None:
        history: History = InMemoryHistory()
        if history_file is not None:
            history_file.parent.mkdir(parents=True, exist_ok=True)
            history = FileHistory(str(history_file))
        self.completer = ShellCompleter()
        self.commands: PromptSession[str] = PromptSession(
            history=history, completer=self.completer, complete_while_typing=False
        )
        self.values: PromptSession[str] = PromptSession(complete_while_typing=False)

    def bind(self, shell: Shell) -> None:
        self.completer.shell = shell

    async def command(self, prompt: str) -> str:
        return await self.commands.prompt_async(prompt)

    async def value(self, prompt: str, choices: list[str]) -> str:
        completer = WordCompleter(choices) if choices else None
        return await self.values.prompt_async(prompt, completer=completer)
