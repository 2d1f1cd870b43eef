"""The ``catalyst`` command: one group, one module per command group."""

from __future__ import annotations

import click

from catalyst_mcp import __version__
from catalyst_mcp.cli.audit import audit
from catalyst_mcp.cli.cache import cache
from catalyst_mcp.cli.clients import clients
from catalyst_mcp.cli.config import config
from catalyst_mcp.cli.connect import connect
from catalyst_mcp.cli.db import db
from catalyst_mcp.cli.health import health
from catalyst_mcp.cli.keys import keys
from catalyst_mcp.cli.packages import packages
from catalyst_mcp.cli.packs import packs
from catalyst_mcp.cli.pins import approve_tools, diff_tools
from catalyst_mcp.cli.prompts import prompts
from catalyst_mcp.cli.resources import resources
from catalyst_mcp.cli.roles import roles
from catalyst_mcp.cli.rules import rules
from catalyst_mcp.cli.runserver import run_server
from catalyst_mcp.cli.secrets import secrets
from catalyst_mcp.cli.serve import serve
from catalyst_mcp.cli.servers import servers
from catalyst_mcp.cli.tools import tools
from catalyst_mcp.cli.users import users
from catalyst_mcp.cli.workflows import workflows

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
      4  cannot connect to the server or gateway (or to a package registry)
    """


for command in (serve, config, servers, tools, prompts, resources, health, packs, db):
    cli.add_command(command)
tools.add_command(diff_tools)  # catalyst tools diff|approve: pinned tool definitions
tools.add_command(approve_tools)
cli.add_command(audit)
cli.add_command(users)
cli.add_command(keys)
cli.add_command(roles)
cli.add_command(rules)
cli.add_command(secrets)
cli.add_command(packages)
cli.add_command(connect)
cli.add_command(clients)
cli.add_command(run_server)
cli.add_command(workflows)
cli.add_command(cache)


def main() -> None:
    cli(prog_name="catalyst")
