"""The ``catalyst`` command: one group, one module per command group."""

from __future__ import annotations

import click

from catalyst_mcp import __version__
from catalyst_mcp.cli.serve import serve

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="catalyst")
def cli() -> None:
    """Catalyst: one MCP endpoint over your MCP servers, for every AI client."""


cli.add_command(serve)


def main() -> None:
    cli(prog_name="catalyst")
