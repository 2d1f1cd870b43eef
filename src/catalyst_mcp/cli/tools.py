"""``catalyst tools``: list and call the tools of any MCP server, or of every configured one
(``diff`` and ``approve``, for pinned tool definitions, live in :mod:`catalyst_mcp.cli.pins`).

Targets (see :mod:`catalyst_mcp.cli.targets`): ``--config`` (default) aggregates the configured
servers under the gateway's names (``<server>__<tool>``); ``--url`` or ``--command`` (or a
command after ``--``) talks to one server under its own names.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import click

from catalyst_mcp.cli.common import (
    EXIT_CONNECT,
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    json_option,
    print_json,
    print_table,
    run_async,
    truncate,
)
from catalyst_mcp.cli.targets import Target, TargetSpec, open_target, server_error, target_options
from catalyst_mcp.errors import ToolHeldBack
from catalyst_mcp.providers import ListKind

__all__ = ["describe_block", "described", "list_items", "parse_arguments", "tools"]

TABLE_WIDTH = 100
MIN_DESCRIPTION = 20


@click.group()
def tools() -> None:
    """List and call tools of MCP servers; review and approve changed tool definitions."""


# ---- tools list ----------------------------------------------------------------------------


@tools.command("list")
@json_option
@target_options
def list_tools(target: TargetSpec, json_output: bool) -> None:
    """List the tools: NAME and the first line of DESCRIPTION (or everything with --json).

    \b
    Examples:
      catalyst tools list                          # every configured server
      catalyst tools list --url http://127.0.0.1:3000/mcp
      catalyst tools list -- npx -y @modelcontextprotocol/server-everything
    """
    items, code = run_async(list_items(target, "tools"), verbose=target.verbose)
    if json_output:
        print_json(items)
    else:
        print_table(described(items, "name"), ["name", "description"])
    click.get_current_context().exit(code)


async def list_items(spec: TargetSpec, kind: ListKind) -> tuple[list[dict[str, Any]], int]:
    """The target's ``kind`` (tools, prompts, ...) and the exit code to end with.

    With the configured servers, those that are not ready are named on stderr and the exit code
    is 1 (4 when none is reachable); the others' items are still listed.
    """
    async with open_target(spec) as target:
        items = list(target.items(kind))
        code = EXIT_OK if spec.adhoc else _report_down(target)
    return items, code


def _report_down(target: Target) -> int:
    servers = target.servers()
    if not servers:
        click.echo("note: no servers are configured (see `catalyst config init`)", err=True)
        return EXIT_OK
    down = target.down()
    for report in down:
        click.echo(
            f"warning: server {report['name']!r} is not ready ({report['status']}): "
            f"{server_error(report) or 'no details'}",
            err=True,
        )
    if not down:
        return EXIT_OK
    return EXIT_CONNECT if len(down) == len(servers) else EXIT_FAILED


def described(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows of ``key`` and the first description line, cut to fit a 100-column table."""
    names = [str(item.get(key, "")) for item in items]
    width = max(MIN_DESCRIPTION, TABLE_WIDTH - 2 - max((len(n) for n in names), default=0))
    rows = []
    for name, item in zip(names, items, strict=True):
        text = item.get("description") or item.get("title") or ""
        first = str(text).strip().splitlines()[0] if str(text).strip() else ""
        rows.append({key: name, "description": truncate(first, width)})
    return rows


# ---- tools call ----------------------------------------------------------------------------


@tools.command("call")
@click.argument("name")
@click.option("--args", "args_json", metavar="JSON", help="The arguments as one JSON object.")
@click.option(
    "--arg",
    "arg_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="One argument (repeatable). VALUE is read as JSON (1, true, [1,2], {...}) unless the "
    "tool declares the argument a string or it is not valid JSON.",
)
@json_option
@target_options
def call_tool(
    target: TargetSpec,
    name: str,
    args_json: str | None,
    arg_pairs: tuple[str, ...],
    json_output: bool,
) -> None:
    """Call tool NAME and print its result.

    Text blocks are printed as they are, other blocks as one line each ([image: image/png,
    1234 bytes]), structuredContent as JSON. Exit code 1 when the tool reports an error.

    \b
    Examples:
      catalyst tools call files__read_file --arg path=/etc/hostname
      catalyst tools call add --args '{"a": 1, "b": 2}' --url http://127.0.0.1:3000/mcp
      catalyst tools call echo --arg text=hi -- python server.py
    """
    if args_json is not None and arg_pairs:
        raise click.UsageError("give --args or --arg, not both")
    arguments = parse_json_object(args_json) if args_json is not None else None
    result = run_async(_call(target, name, arguments, arg_pairs), verbose=target.verbose)
    if json_output:
        print_json(result)
    else:
        print_result(result)
    if result.get("isError"):
        raise CliError(f"tool {name!r} reported an error", EXIT_FAILED)


def parse_json_object(text: str) -> dict[str, Any]:
    """``--args``: a JSON object, or a usage error (exit 2) saying what is wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--args") from exc
    if not isinstance(value, dict):
        raise click.BadParameter(
            f"must be a JSON object, got {type(value).__name__}", param_hint="--args"
        )
    return value


def parse_arguments(pairs: tuple[str, ...], schema: Any) -> dict[str, Any]:
    """``--arg key=value`` pairs as arguments, typed by the tool's ``inputSchema`` if known."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    props = props if isinstance(props, dict) else {}
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--arg")
        declared = props.get(key, {}).get("type") if isinstance(props.get(key), dict) else None
        if declared == "string" or (isinstance(declared, list) and declared == ["string"]):
            arguments[key] = raw
            continue
        try:
            arguments[key] = json.loads(raw)
        except json.JSONDecodeError:
            arguments[key] = raw
    return arguments


async def _call(
    spec: TargetSpec, name: str, arguments: dict[str, Any] | None, pairs: tuple[str, ...]
) -> dict[str, Any]:
    async with open_target(spec) as target:
        try:
            provider, _ = target.gateway.registry.resolve("tools", name)
        except ToolHeldBack:
            pass  # refused (and audited) by the gateway's own handling of the call below
        else:
            target.require_ready(provider)
        if arguments is None:
            tool = next((t for t in target.items("tools") if t.get("name") == name), {})
            arguments = parse_arguments(pairs, tool.get("inputSchema"))
        return await target.request("tools/call", {"name": name, "arguments": arguments})


def print_result(result: dict[str, Any]) -> None:
    """A tool result for people: text as is, other blocks described, structured data as JSON."""
    for block in result.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "text":
            click.echo(str(block.get("text", "")))
        else:
            click.echo(describe_block(block))
    structured = result.get("structuredContent")
    if structured is not None:
        click.echo("structuredContent:")
        click.echo(json.dumps(structured, indent=2, ensure_ascii=False))


def describe_block(block: Any) -> str:
    """One line for a non-text content block: its type, MIME type, size or URI."""
    if not isinstance(block, dict):
        return f"[{type(block).__name__}]"
    kind = str(block.get("type", "unknown"))
    details: list[str] = []
    if kind == "resource" and isinstance(block.get("resource"), dict):
        inner = block["resource"]
        details.append(str(inner.get("uri", "")))
        block = inner
    elif kind == "resource_link":
        details.append(str(block.get("uri", "")))
    mime = block.get("mimeType")
    if mime:
        details.append(str(mime))
    if isinstance(block.get("data"), str) or isinstance(block.get("blob"), str):
        details.append(f"{_decoded_size(block.get('data') or block.get('blob') or '')} bytes")
    elif isinstance(block.get("text"), str):
        details.append(f"{len(block['text'].encode())} bytes of text")
    return f"[{kind}: {', '.join(d for d in details if d)}]" if details else f"[{kind}]"


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return len(data)
