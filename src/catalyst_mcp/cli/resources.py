"""``catalyst resources``: list and read resources of any MCP server, or of every configured one.

Targets are those of ``catalyst tools`` (:mod:`catalyst_mcp.cli.targets`). With the configured
servers, URIs carry the gateway's ``catalyst://<server>/`` prefix.
"""

from __future__ import annotations

from typing import Any

import click

from catalyst_mcp.cli.common import json_option, print_json, print_table, run_async
from catalyst_mcp.cli.targets import TargetSpec, open_target, target_options
from catalyst_mcp.cli.tools import describe_block, described, list_items
from catalyst_mcp.providers import ListKind

__all__ = ["resources"]


@click.group()
def resources() -> None:
    """List and read resources of MCP servers."""


@resources.command("list")
@click.option("--templates", is_flag=True, help="List resource templates instead.")
@json_option
@target_options
def list_resources(target: TargetSpec, templates: bool, json_output: bool) -> None:
    """List the resources: URI, MIME type and the first line of DESCRIPTION (or the name)."""
    key = "uriTemplate" if templates else "uri"
    kind: ListKind = "resourceTemplates" if templates else "resources"
    items, code = run_async(list_items(target, kind), verbose=target.verbose)
    if json_output:
        print_json(items)
    else:
        rows = described(items, key)
        for row, item in zip(rows, items, strict=True):
            row["mime"] = item.get("mimeType") or ""
            row["description"] = row["description"] or item.get("name", "")
        print_table(rows, [key, "mime", "description"])
    click.get_current_context().exit(code)


@resources.command("read")
@click.argument("uri")
@json_option
@target_options
def read_resource(target: TargetSpec, uri: str, json_output: bool) -> None:
    """Read resource URI: text contents are printed, binary ones described."""
    result = run_async(_read(target, uri), verbose=target.verbose)
    if json_output:
        print_json(result)
        return
    for content in result.get("contents") or []:
        if isinstance(content, dict) and isinstance(content.get("text"), str):
            click.echo(content["text"])
        elif isinstance(content, dict):
            click.echo(describe_block({"type": "blob", **content}))
        else:
            click.echo(describe_block(content))


async def _read(spec: TargetSpec, uri: str) -> dict[str, Any]:
    async with open_target(spec) as target:
        provider, _ = target.gateway.registry.resolve_uri(uri)
        target.require_ready(provider)
        return await target.request("resources/read", {"uri": uri})
