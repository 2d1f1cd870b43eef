"""``catalyst prompts``: list and render the prompts of any MCP server, or of every configured one.

Targets are those of ``catalyst tools`` (:mod:`catalyst_mcp.cli.targets`).
"""

from __future__ import annotations

from typing import Any

import click

from catalyst_mcp.cli.common import json_option, print_json, print_table, run_async
from catalyst_mcp.cli.targets import TargetSpec, open_target, target_options
from catalyst_mcp.cli.tools import describe_block, described, list_items

__all__ = ["prompts"]


@click.group()
def prompts() -> None:
    """List and render prompts of MCP servers."""


@prompts.command("list")
@json_option
@target_options
def list_prompts(target: TargetSpec, json_output: bool) -> None:
    """List the prompts: NAME, ARGUMENTS and the first line of DESCRIPTION."""
    items, code = run_async(list_items(target, "prompts"), verbose=target.verbose)
    if json_output:
        print_json(items)
    else:
        rows = described(items, "name")
        for row, item in zip(rows, items, strict=True):
            row["arguments"] = ", ".join(_argument_names(item))
        print_table(rows, ["name", "arguments", "description"])
    click.get_current_context().exit(code)


def _argument_names(prompt: dict[str, Any]) -> list[str]:
    names = []
    for argument in prompt.get("arguments") or []:
        if isinstance(argument, dict) and "name" in argument:
            mark = "" if argument.get("required") else "?"
            names.append(f"{argument['name']}{mark}")
    return names


@prompts.command("get")
@click.argument("name")
@click.option(
    "--arg", "arg_pairs", multiple=True, metavar="KEY=VALUE", help="A prompt argument (repeatable)."
)
@json_option
@target_options
def get_prompt(
    target: TargetSpec, name: str, arg_pairs: tuple[str, ...], json_output: bool
) -> None:
    """Render prompt NAME and print its messages (ROLE: text)."""
    arguments: dict[str, str] = {}
    for pair in arg_pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--arg")
        arguments[key] = value
    result = run_async(_get(target, name, arguments), verbose=target.verbose)
    if json_output:
        print_json(result)
        return
    for message in result.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        role = message.get("role", "?") if isinstance(message, dict) else "?"
        if isinstance(content, dict) and content.get("type") == "text":
            click.echo(f"{role}: {content.get('text', '')}")
        else:
            click.echo(f"{role}: {describe_block(content)}")


async def _get(spec: TargetSpec, name: str, arguments: dict[str, str]) -> dict[str, Any]:
    async with open_target(spec) as target:
        provider, _ = target.gateway.registry.resolve("prompts", name)
        target.require_ready(provider)
        return await target.request("prompts/get", {"name": name, "arguments": arguments})
