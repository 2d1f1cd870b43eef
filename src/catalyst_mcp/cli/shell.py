"""The interactive shell of ``catalyst connect``: commands over one connected MCP server.

The shell runs in the same event loop as the in-process gateway that holds the connection
(:mod:`catalyst_mcp.cli.targets`), so server notifications arrive while it waits for a line:
list changes, progress and log messages are printed above the prompt without breaking it
(prompt_toolkit's ``patch_stdout``). Lines come from a :class:`LineReader`: the terminal, with
completion and history (:mod:`catalyst_mcp.cli.terminal`), or plain lines from a pipe.

Every failure is one ``error:`` line and the shell goes on; Ctrl-C stops the running command
(or the argument prompt), never the shell; ``exit``, ``quit`` or Ctrl-D leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import itertools
import json
import logging
import shlex
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import click

from catalyst_mcp.cli.common import CliError, describe_error, print_table
from catalyst_mcp.cli.schemaargs import (
    ArgumentError,
    Parameter,
    parameters,
    parse_pairs,
    parse_value,
    schema_problem,
)
from catalyst_mcp.cli.targets import Target, server_error
from catalyst_mcp.cli.tools import describe_block, described, print_result
from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import CatalystError, MethodNotFound
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.versions import LATEST_LEGACY, LOG_LEVELS
from catalyst_mcp.providers import ListKind

__all__ = ["COMMANDS", "LineReader", "Shell", "StreamReader"]

log = logging.getLogger("catalyst.cli")


class LineReader(Protocol):
    """Where the shell's lines come from. Raises EOFError at the end, KeyboardInterrupt on
    Ctrl-C."""

    async def command(self, prompt: str) -> str:
        """The next command line."""

    async def value(self, prompt: str, choices: list[str]) -> str:
        """One answer to an argument prompt (``choices``: what completion may offer)."""


class StreamReader:
    """Lines from a pipe or file (no prompt, no completion): ``catalyst connect < script``."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    async def _line(self) -> str:
        line = await asyncio.to_thread(self.stream.readline)
        if not line:
            raise EOFError
        return str(line).rstrip("\r\n")

    async def command(self, prompt: str) -> str:
        return await self._line()

    async def value(self, prompt: str, choices: list[str]) -> str:
        return await self._line()


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    usage: str
    summary: str
    run: Callable[[Shell, list[str], str], Awaitable[None]]
    completes: ListKind | str | None = None  # what its first argument is


class CommandError(Exception):
    """A command used wrongly; the message is shown as one line."""


class Shell:
    """Commands over a connected :class:`Target` (one server, under its own names)."""

    def __init__(self, target: Target, label: str, reader: LineReader) -> None:
        self.target = target
        self.label = label
        self.reader = reader
        self.log_level = "info"
        self._tokens = itertools.count(1)
        self._running: asyncio.Task[None] | None = None

    # ---- what the completer and the commands read ----------------------------------------------

    def names(self, kind: ListKind) -> list[str]:
        key = {"tools": "name", "prompts": "name", "resources": "uri"}.get(kind, "uriTemplate")
        return [str(item[key]) for item in self.target.items(kind) if key in item]

    def tool(self, name: str) -> dict[str, Any]:
        for item in self.target.items("tools"):
            if item.get("name") == name:
                return item
        raise CommandError(self._unknown("tool", name, self.names("tools")))

    def prompt_item(self, name: str) -> dict[str, Any]:
        for item in self.target.items("prompts"):
            if item.get("name") == name:
                return item
        raise CommandError(self._unknown("prompt", name, self.names("prompts")))

    @staticmethod
    def _unknown(kind: str, name: str, known: list[str]) -> str:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f" (see `{kind}s`)"
        return f"unknown {kind} {name!r}{hint}"

    def argument_names(self, command: str, first: str) -> list[str]:
        """``key=`` completions for ``call TOOL`` and ``prompt NAME``."""
        if command == "call":
            found = [t for t in self.target.items("tools") if t.get("name") == first]
            return [f"{p.name}=" for p in parameters(found[0].get("inputSchema"))] if found else []
        if command == "prompt":
            found = [p for p in self.target.items("prompts") if p.get("name") == first]
            if found:
                return [f"{a['name']}=" for a in _prompt_arguments(found[0])]
        return []

    # ---- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        registry = self.target.gateway.registry
        registry.change_listeners.append(self._lists_changed)
        try:
            self._banner()
            while True:
                try:
                    line = await self.reader.command(f"{self.label}> ")
                except KeyboardInterrupt:
                    continue  # Ctrl-C at the prompt clears the line
                except EOFError:
                    return
                if not await self.execute(line):
                    return
        finally:
            registry.change_listeners.remove(self._lists_changed)

    def _banner(self) -> None:
        reports = self.target.servers()
        if len(reports) == 1:
            report = reports[0]
            info = report.get("serverInfo") or {}
            who = " ".join(str(info[k]) for k in ("name", "version") if info.get(k)) or "?"
            click.echo(
                f"connected to {self.label}: {who}, {report.get('era', '?')} era "
                f"(protocol {report.get('protocolVersion', '?')}) over "
                f"{report.get('transport', '?')}"
            )
        counts = ", ".join(
            f"{len(self.target.items(kind))} {kind}" for kind in ("tools", "resources", "prompts")
        )
        click.echo(f"{counts}. Type `help` for commands, `exit` or Ctrl-D to leave.")

    async def execute(self, line: str) -> bool:
        """Run one command line; False when the shell should end."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        name, _, rest = text.partition(" ")
        if name in ("exit", "quit"):
            return False
        command = COMMANDS.get(name)
        if command is None:
            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else "; type `help`"
            _error(f"unknown command {name!r}{hint}")
            return True
        try:
            words = [] if command.name == "call" else shlex.split(rest)  # call splits its own
        except ValueError as exc:
            _error(f"{name}: {exc}")
            return True
        await self._guarded(command.run(self, words, rest.strip()))
        return True

    async def _guarded(self, work: Awaitable[None]) -> None:
        """Run a command; Ctrl-C (SIGINT) cancels it; every failure is one line."""
        task: asyncio.Task[None] = asyncio.ensure_future(_settled(work))
        self._running = task
        loop = asyncio.get_running_loop()
        handled = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, self._interrupt)
            handled = True
        try:
            await asyncio.wait({task})
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGINT)
            self._running = None
        if task.cancelled():
            click.echo("interrupted")
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, CatalystError):
            _error(_one_line(describe_error(exc)))
        elif isinstance(exc, CliError):
            _error(exc.format_message())
        elif isinstance(exc, CommandError | ArgumentError):
            _error(str(exc))
        else:
            log.warning("command failed", exc_info=exc)
            _error(f"internal error: {type(exc).__name__}: {exc}")

    def _interrupt(self) -> None:
        if self._running is not None:
            self._running.cancel()

    # ---- talking to the server ---------------------------------------------------------------

    def context(self, method: str) -> CallContext:
        """A call context that shows progress and log messages, and answers elicitations."""
        return CallContext(
            era="legacy",
            protocol_version=LATEST_LEGACY,
            method=method,
            client_capabilities={"elicitation": {"form": {}}},
            client_info={"name": "catalyst-connect"},
            progress_token=f"connect-{next(self._tokens)}",
            log_level=self.log_level,
            emit=self._notify,
            ask=self._ask,
        )

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self.target.gateway.server.handle(method, params, self.context(method))

    async def _notify(self, message: Message) -> None:
        method = message.get("method")
        params = message.get("params") or {}
        if method == "notifications/progress":
            total = params.get("total")
            amount = f"{params.get('progress')}" + (f"/{total}" if total is not None else "")
            note = f" {params['message']}" if params.get("message") else ""
            click.echo(f"progress: {amount}{note}")
        elif method == "notifications/message":
            source = f" [{params['logger']}]" if params.get("logger") else ""
            data = params.get("data")
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            click.echo(f"log {params.get('level', '?')}{source}: {text}")
        else:
            click.echo(f"notification: {method}")

    def _lists_changed(self, kinds: set[ListKind]) -> None:
        for kind in sorted(kinds):
            if kind != "resourceTemplates":
                click.echo(f"note: the {kind} list changed ({len(self.target.items(kind))} now)")

    async def _ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The server asks the user something mid-call: form elicitations are prompted for."""
        if method != "elicitation/create" or params.get("mode", "form") != "form":
            raise MethodNotFound(f"catalyst connect cannot answer {method}")
        click.echo(f"the server asks: {params.get('message', '')}")
        schema = params.get("requestedSchema")
        try:
            values = await self.ask_values(parameters(schema), {})
        except (KeyboardInterrupt, EOFError):
            click.echo("declined")
            return {"action": "decline"}
        return {"action": "accept", "content": values}

    async def ask_values(self, params: list[Parameter], given: dict[str, Any]) -> dict[str, Any]:
        """Prompt for each parameter not in ``given``; empty skips an optional one."""
        values = dict(given)
        for parameter in params:
            if parameter.name in values:
                continue
            click.echo(f"  {parameter.summary()}")
            choices = [
                v if isinstance(v, str) else json.dumps(v) for v in (parameter.enum or [])
            ] or (["true", "false"] if parameter.types == ["boolean"] else [])
            while True:
                text = await self.reader.value(f"{parameter.name}: ", choices)
                if text == "":
                    if parameter.required:
                        click.echo(f"  {parameter.name} is required (Ctrl-C cancels)")
                        continue
                    break
                try:
                    values[parameter.name] = parse_value(parameter, text)
                    break
                except ArgumentError as exc:
                    click.echo(f"  {exc}")
        return values


# ---- commands ------------------------------------------------------------------------------


async def _help(shell: Shell, words: list[str], rest: str) -> None:
    if words:
        command = COMMANDS.get(words[0])
        if command is None:
            raise CommandError(f"unknown command {words[0]!r}")
        click.echo(f"{command.usage}\n  {command.summary}")
        return
    width = max(len(c.usage) for c in COMMANDS.values())
    for command in COMMANDS.values():
        click.echo(f"  {command.usage.ljust(width)}  {command.summary}")
    click.echo(f"  {'exit'.ljust(width)}  leave (also `quit` or Ctrl-D)")
    click.echo("Tab completes commands, names and arguments; Ctrl-C stops a call or a prompt.")


def _matching(items: list[dict[str, Any]], key: str, words: list[str]) -> list[dict[str, Any]]:
    if not words:
        return items
    needle = words[0].lower()
    return [i for i in items if needle in str(i.get(key, "")).lower()]


async def _tools(shell: Shell, words: list[str], rest: str) -> None:
    items = _matching(shell.target.items("tools"), "name", words)
    print_table(described(items, "name"), ["name", "description"])


async def _resources(shell: Shell, words: list[str], rest: str) -> None:
    items = _matching(shell.target.items("resources"), "uri", words)
    rows = described(items, "uri")
    for row, item in zip(rows, items, strict=True):
        row["mime"] = item.get("mimeType") or ""
        row["description"] = row["description"] or item.get("name", "")
    print_table(rows, ["uri", "mime", "description"])


async def _templates(shell: Shell, words: list[str], rest: str) -> None:
    items = _matching(shell.target.items("resourceTemplates"), "uriTemplate", words)
    print_table(described(items, "uriTemplate"), ["uriTemplate", "description"])


async def _prompts(shell: Shell, words: list[str], rest: str) -> None:
    items = _matching(shell.target.items("prompts"), "name", words)
    rows = described(items, "name")
    for row, item in zip(rows, items, strict=True):
        row["arguments"] = ", ".join(
            a["name"] + ("" if a.get("required") else "?") for a in _prompt_arguments(item)
        )
    print_table(rows, ["name", "arguments", "description"])


async def _describe(shell: Shell, words: list[str], rest: str) -> None:
    if len(words) != 1:
        raise CommandError("usage: describe TOOL")
    tool = shell.tool(words[0])
    title = f" ({tool['title']})" if tool.get("title") else ""
    click.echo(f"{tool['name']}{title}")
    if tool.get("description"):
        click.echo(str(tool["description"]).strip())
    params = parameters(tool.get("inputSchema"))
    click.echo("arguments:" if params else "arguments: none")
    for parameter in params:
        click.echo(f"  {parameter.summary()}")
    click.echo("input schema:")
    click.echo(_indented(tool.get("inputSchema", {})))
    if tool.get("outputSchema") is not None:
        click.echo("output schema:")
        click.echo(_indented(tool["outputSchema"]))
    annotations = tool.get("annotations")
    if isinstance(annotations, dict) and annotations:
        click.echo("annotations:")
        for key, value in annotations.items():
            click.echo(f"  {key}: {json.dumps(value, ensure_ascii=False)}")


def _indented(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return "\n".join("  " + line for line in text.splitlines())


async def _call(shell: Shell, words: list[str], rest: str) -> None:
    name, _, given_text = rest.partition(" ")
    if not name:
        raise CommandError("usage: call TOOL [{json} | key=value ...]")
    tool = shell.tool(name)
    schema = tool.get("inputSchema")
    given_text = given_text.strip()
    if given_text.startswith("{"):
        try:
            arguments = json.loads(given_text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"the arguments are not valid JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise CommandError("the arguments must be a JSON object")
    else:
        try:
            pairs = shlex.split(given_text)
        except ValueError as exc:
            raise CommandError(f"call: {exc}") from None
        arguments = parse_pairs(pairs, schema)
        params = parameters(schema)
        wanted = params if not pairs else [p for p in params if p.required]
        try:
            arguments = await shell.ask_values(wanted, arguments)
        except (KeyboardInterrupt, EOFError):
            click.echo("call cancelled")
            return
    problem = schema_problem(schema, arguments)
    if problem is not None:
        raise CommandError(f"invalid arguments for {name}: {problem}")
    result = await shell.request("tools/call", {"name": name, "arguments": arguments})
    if result.get("isError"):
        click.echo(f"[isError] {name} reported an error:")
    print_result(result)


async def _read(shell: Shell, words: list[str], rest: str) -> None:
    if len(words) != 1:
        raise CommandError("usage: read URI")
    result = await shell.request("resources/read", {"uri": words[0]})
    for content in result.get("contents") or []:
        if isinstance(content, dict) and isinstance(content.get("text"), str):
            click.echo(content["text"])
        elif isinstance(content, dict):
            click.echo(describe_block({"type": "blob", **content}))
        else:
            click.echo(describe_block(content))


def _prompt_arguments(prompt: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        a
        for a in prompt.get("arguments") or []
        if isinstance(a, dict) and isinstance(a.get("name"), str)
    ]


async def _prompt(shell: Shell, words: list[str], rest: str) -> None:
    if not words:
        raise CommandError("usage: prompt NAME [key=value ...]")
    prompt = shell.prompt_item(words[0])
    arguments: dict[str, Any] = {}
    for pair in words[1:]:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"expected key=value, got {pair!r}")
        arguments[key] = value
    declared = [
        Parameter(
            a["name"],
            {"type": "string", "description": a.get("description") or ""},
            bool(a.get("required")),
        )
        for a in _prompt_arguments(prompt)
    ]
    wanted = declared if len(words) == 1 else [p for p in declared if p.required]
    try:
        arguments = await shell.ask_values(wanted, arguments)
    except (KeyboardInterrupt, EOFError):
        click.echo("cancelled")
        return
    result = await shell.request("prompts/get", {"name": words[0], "arguments": arguments})
    if result.get("description"):
        click.echo(f"# {result['description']}")
    for message in result.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        role = message.get("role", "?") if isinstance(message, dict) else "?"
        if isinstance(content, dict) and content.get("type") == "text":
            click.echo(f"{role}: {content.get('text', '')}")
        else:
            click.echo(f"{role}: {describe_block(content)}")


async def _info(shell: Shell, words: list[str], rest: str) -> None:
    for report in shell.target.servers():
        info = report.get("serverInfo") or {}
        click.echo(f"server: {info.get('name', report['name'])} {info.get('version', '')}".rstrip())
        click.echo(f"status: {report['status']}")
        error = server_error(report)
        if error:
            click.echo(f"error: {error}")
        for key in ("transport", "era", "protocolVersion"):
            if report.get(key):
                click.echo(f"{key}: {report[key]}")
    for provider in shell.target.gateway.registry.providers:
        if provider.capabilities:
            click.echo(f"capabilities: {', '.join(sorted(provider.capabilities))}")
        if provider.instructions:
            click.echo(f"instructions: {provider.instructions}")
    click.echo(f"log level: {shell.log_level}")


async def _loglevel(shell: Shell, words: list[str], rest: str) -> None:
    if not words:
        click.echo(f"log level: {shell.log_level}")
        return
    if words[0] not in LOG_LEVELS:
        raise CommandError(f"unknown level {words[0]!r} (one of {', '.join(LOG_LEVELS)})")
    shell.log_level = words[0]
    click.echo(f"log messages at {words[0]} and above are shown")


async def _settled(work: Awaitable[None]) -> None:
    """``work``, with Ctrl-C or Ctrl-D at one of its prompts ending it quietly (a
    KeyboardInterrupt must not leave a task: asyncio would stop the whole loop with it)."""
    try:
        await work
    except (KeyboardInterrupt, EOFError):
        click.echo("cancelled")


def _error(text: str) -> None:
    click.echo(f"error: {text}", err=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", "help [COMMAND]", "list the commands, or explain one", _help, "commands"),
        Command("tools", "tools [TEXT]", "list the tools (whose name contains TEXT)", _tools),
        Command(
            "describe",
            "describe TOOL",
            "a tool's description, input and output schemas, annotations",
            _describe,
            "tools",
        ),
        Command(
            "call",
            "call TOOL [{json} | key=value ...]",
            "call a tool; without arguments, asks for each one",
            _call,
            "tools",
        ),
        Command("resources", "resources [TEXT]", "list the resources", _resources),
        Command("templates", "templates [TEXT]", "list the resource templates", _templates),
        Command("read", "read URI", "read a resource", _read, "resources"),
        Command("prompts", "prompts [TEXT]", "list the prompts", _prompts),
        Command(
            "prompt",
            "prompt NAME [key=value ...]",
            "get a prompt; without arguments, asks for each one",
            _prompt,
            "prompts",
        ),
        Command("info", "info", "the server: name, era, transport, capabilities", _info),
        Command(
            "loglevel",
            "loglevel [LEVEL]",
            "show or set the level of log messages shown",
            _loglevel,
            "levels",
        ),
    )
}
