"""The ``catalyst`` command: one group, one module per command group."""

from __future__ import annotations

import click

from catalyst_mcp import __version__
from catalyst_mcp.cli.config import config
from catalyst_mcp.cli.health import health
from catalyst_mcp.cli.packs import packs
from catalyst_mcp.cli.prompts import prompts
from catalyst_mcp.cli.resources import resources
from catalyst_mcp.cli.serve import serve
from catalyst_mcp.cli.servers import servers
from catalyst_mcp.cli.tools import tools

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="catalyst")
def cli() -> None:
    """Catalyst: one MCP endpoint over your MCP servers, for every AI client.

    \b
    Exit codes:
      0  success
      1  failed: a server is down, a tool reported an error, a file exists
      2  usage error: a bad option or argument
      3  invalid configuration (problems are shown as file:line: what is wrong)
      4  cannot connect to the server or gateway
    """


for command in (serve, config, servers, tools, prompts, resources, health, packs):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="catalyst")
