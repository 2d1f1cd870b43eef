"""``catalyst clients``: point MCP clients at the gateway, and see which ones are.

``export CLIENT`` prints the config entry that makes Claude Desktop, Cursor, VS Code, Windsurf
or LibreChat use the gateway, over HTTP (its URL, the API key as a reference the client
resolves) or stdio (``catalyst serve --stdio --config <file>``), or with ``--write`` adds it to
the client's own config file (:mod:`catalyst_mcp.cli.configfiles`: other entries kept, a backup
first, an atomic write). ``list`` reads those files and says which of them reach this gateway.
Formats and file locations: :mod:`catalyst_mcp.cli.clientformats`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from catalyst_mcp.cli.clientformats import CLIENTS, Client, Endpoint, describe_entry, points_here
from catalyst_mcp.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    CliError,
    config_option,
    find_config,
    json_option,
    load_config,
    print_json,
    print_table,
)
from catalyst_mcp.cli.configfiles import EntryExists, MergeError, merge_entry, read_config
from catalyst_mcp.cli.gatewayurl import API_KEY_ENV, gateway_url
from catalyst_mcp.cli.targets import ENV_NAME
from catalyst_mcp.settings import SERVER_NAME

__all__ = ["clients"]

DEFAULT_NAME = "catalyst"


@click.group()
def clients() -> None:
    """Point MCP clients (Claude Desktop, Cursor, VS Code, Windsurf, LibreChat) at the gateway."""


# ---- export ----------------------------------------------------------------------------------


@clients.command("export")
@click.argument("client", type=click.Choice(list(CLIENTS)))
@click.option(
    "--transport",
    type=click.Choice(["http", "stdio"]),
    default="http",
    show_default=True,
    help="http: the client connects to the running gateway's URL. stdio: the client starts "
    "its own `catalyst serve --stdio` with this config file.",
)
@config_option
@click.option(
    "--url",
    help="The gateway's MCP endpoint as clients reach it (default: auth.resource_url, else "
    "http://<gateway.host>:<gateway.port><gateway.mcp_path> of the config).",
)
@click.option(
    "--name",
    default=DEFAULT_NAME,
    show_default=True,
    help="The entry's name in the client's config.",
)
@click.option(
    "--auth/--no-auth",
    default=None,
    help="Send an API key (default: when the config has auth.enabled).",
)
@click.option(
    "--key-env",
    default=API_KEY_ENV,
    show_default=True,
    metavar="NAME",
    help="The environment variable the client reads the API key from (VS Code prompts for it "
    "instead, as input NAME in lower case with '-').",
)
@click.option(
    "--inline-key",
    is_flag=True,
    help="Write the API key itself (from $NAME of --key-env, else asked for) instead of a "
    "reference. Anyone who can read the file can then use the key.",
)
@click.option(
    "--catalyst",
    "catalyst_command",
    metavar="PATH",
    help="stdio: the catalyst program the client starts (default: the one running now).",
)
@click.option("--write", is_flag=True, help="Add the entry to the client's config file.")
@click.option(
    "--file",
    "target_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The config file to add it to (default: the client's own; see `clients list`).",
)
@click.option(
    "--workspace",
    is_flag=True,
    help="vscode, cursor: the project's file in the current folder (.vscode/mcp.json, "
    ".cursor/mcp.json) instead of the user's.",
)
@click.option("--force", is_flag=True, help="Replace an entry of the same name.")
def export(
    client: str,
    transport: str,
    config_path: Path | None,
    url: str | None,
    name: str,
    auth: bool | None,
    key_env: str,
    inline_key: bool,
    catalyst_command: str | None,
    write: bool,
    target_file: Path | None,
    workspace: bool,
    force: bool,
) -> None:
    """Print (or with --write, add) the config entry pointing CLIENT at the gateway.

    \b
    Examples:
      catalyst clients export cursor                       # print the snippet
      catalyst clients export vscode --workspace --write   # into .vscode/mcp.json
      catalyst clients export claude-desktop --transport stdio --write
      catalyst clients export librechat --url https://mcp.example.com/mcp --auth \\
          --file /opt/librechat/librechat.yaml --write
    """
    spec = CLIENTS[client]
    if not SERVER_NAME.match(name):
        raise click.BadParameter(
            "letters and digits joined by single '-' or '_'", param_hint="--name"
        )
    if not ENV_NAME.match(key_env):
        raise click.BadParameter("must be an environment variable name", param_hint="--key-env")
    if workspace and spec.workspace_file(Path.cwd()) is None:
        raise click.UsageError(f"{client} has no per-project config file")
    if not write and (target_file is not None or workspace or force):
        raise click.UsageError("--file, --workspace and --force go with --write")
    endpoint = _endpoint(transport, config_path, url, auth, key_env, inline_key, catalyst_command)
    if endpoint.key is not None:
        click.echo(
            "warning: the API key is written in clear: anyone who can read the "
            f"{'file' if write else 'output'} can use it",
            err=True,
        )
    for note in _notes(spec, endpoint):
        click.echo(f"note: {note}", err=True)
    if not write:
        click.echo(_render(spec, name, endpoint), nl=False)
        usual = spec.user_file(Path.home()) or spec.workspace_file(Path.cwd())
        click.echo(f"# add it to {_shown(usual)}, or run again with --write", err=True)
        return
    path = target_file or _default_file(spec, workspace)
    try:
        merged = merge_entry(
            path,
            spec.section,
            name,
            spec.entry(endpoint),
            is_yaml=spec.yaml,
            inputs=spec.inputs(endpoint),
            force=force,
            private=endpoint.key is not None,
        )
    except EntryExists as exc:
        raise CliError(str(exc), EXIT_FAILED) from exc
    except MergeError as exc:
        raise CliError(str(exc), EXIT_CONFIG) from exc
    for note in merged.notes:
        click.echo(f"note: {note}", err=True)
    if not merged.changed:
        click.echo(f"{_shown(path)} already has this entry {name!r}: nothing changed")
        return
    action = "replaced" if merged.replaced else "added"
    where = "created " if merged.created else ""
    backup = f" (backup: {_shown(merged.backup)})" if merged.backup else ""
    click.echo(f"{action} {spec.title} entry {name!r} in {where}{_shown(path)}{backup}")


def _endpoint(
    transport: str,
    config_path: Path | None,
    url: str | None,
    auth: bool | None,
    key_env: str,
    inline_key: bool,
    catalyst_command: str | None,
) -> Endpoint:
    if transport == "stdio":
        if url is not None or auth is not None or inline_key:
            raise click.UsageError("--url, --auth and --inline-key go with --transport http")
        config = find_config(config_path)
        if config is None or not config.exists():
            raise click.UsageError(
                "--transport stdio starts `catalyst serve --stdio` with a config file: give "
                "--config (or create ./catalyst.yaml)"
            )
        load_config(config)  # an invalid file is reported now, not by the client later
        command = catalyst_command or _this_catalyst()
        args = ("serve", "--stdio", "--config", str(config.resolve()))
        return Endpoint("stdio", command=command, args=args)
    if catalyst_command is not None:
        raise click.UsageError("--catalyst goes with --transport stdio")
    settings = load_config(config_path) if url is None or auth is None else None
    if url is None:
        assert settings is not None
        url = gateway_url(settings)
    elif not url.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--url")
    if auth is None:
        auth = inline_key or (settings is not None and settings.auth.enabled)
    if inline_key and not auth:
        raise click.UsageError("--inline-key and --no-auth contradict each other")
    if not auth:
        return Endpoint("http", url=url)
    key = None
    if inline_key:
        key = os.environ.get(key_env) or click.prompt(
            f"API key (${key_env} is not set)", hide_input=True, err=True
        )
    return Endpoint("http", url=url, key_env=key_env, key=key)


def _this_catalyst() -> str:
    """The catalyst program of this installation, by absolute path: desktop clients start
    servers without the user's shell PATH (or its virtual environment)."""
    beside = Path(sys.executable).parent / ("catalyst.exe" if os.name == "nt" else "catalyst")
    if beside.exists():
        return str(beside)
    found = shutil.which("catalyst")
    return str(Path(found).resolve()) if found else "catalyst"


def _notes(client: Client, endpoint: Endpoint) -> list[str]:
    notes: list[str] = []
    if client.name == "claude-desktop" and endpoint.transport == "http":
        notes.append(
            "Claude Desktop starts stdio servers only: this entry reaches the URL through "
            "`npx mcp-remote` (Node.js needed); --transport stdio needs neither"
        )
    if endpoint.transport != "http" or endpoint.key_env is None or endpoint.key is not None:
        return notes
    if client.name == "vscode":
        notes.append("VS Code asks for the API key the first time and stores it securely")
    elif client.name == "librechat":
        notes.append(f"set {endpoint.key_env} (the API key) in LibreChat's .env")
    else:
        notes.append(
            f"{client.title} reads the API key from ${endpoint.key_env}: set it in the "
            "environment the client is started from"
        )
    return notes


def _render(client: Client, name: str, endpoint: Endpoint) -> str:
    document = client.document(name, endpoint)
    if client.yaml:
        return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=4096)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _default_file(client: Client, workspace: bool) -> Path:
    user = client.user_file(Path.home())
    if workspace or user is None:
        path = client.workspace_file(Path.cwd())
        assert path is not None
        return path
    return user


def _shown(path: Path | None) -> str:
    """``path`` with the home folder as ``~``."""
    if path is None:
        return "?"
    home = Path.home()
    try:
        return f"~/{path.relative_to(home)}"
    except ValueError:
        return str(path)


# ---- list ------------------------------------------------------------------------------------


@clients.command("list")
@config_option
@click.option("--url", help="The gateway's MCP URL to look for (default: from the config).")
@json_option
def list_clients(config_path: Path | None, url: str | None, json_output: bool) -> None:
    """Show which clients are configured to use this gateway.

    For each client's config file (the user's, and the project's in the current folder): is
    it there, which entries reach this gateway (its URL, directly or through mcp-remote, or
    `catalyst serve --stdio`), and where they point.
    """
    gateway = url or gateway_url(load_config(config_path))
    rows: list[dict[str, Any]] = []
    for client in CLIENTS.values():
        files = [client.user_file(Path.home()), client.workspace_file(Path.cwd())]
        for path in [f for f in files if f is not None]:
            rows.extend(_file_rows(client, path, gateway))
    if json_output:
        print_json({"gateway": gateway, "files": rows})
        return
    click.echo(f"gateway: {gateway}")
    table = [
        {
            "client": r["client"],
            "status": r["status"],
            "entry": r.get("entry") or "",
            "transport": r.get("transport") or "",
            "target": r.get("target") or r.get("error") or "",
            "file": _shown(Path(r["file"])),
        }
        for r in rows
    ]
    print_table(table, ["client", "status", "entry", "transport", "target", "file"])


def _file_rows(client: Client, path: Path, gateway: str) -> list[dict[str, Any]]:
    row: dict[str, Any] = {"client": client.name, "file": str(path)}
    if not path.exists():
        return [{**row, "status": "no file"}]
    try:
        _, data = read_config(path, client.yaml)
    except MergeError as exc:
        return [{**row, "status": "unreadable", "error": str(exc)}]
    servers = data.get(client.section)
    servers = servers if isinstance(servers, dict) else {}
    rows = []
    for name, entry in servers.items():
        if points_here(entry, gateway):
            transport, target = describe_entry(entry)
            rows.append(
                {
                    **row,
                    "status": "configured",
                    "entry": name,
                    "transport": transport,
                    "target": target,
                }
            )
    if rows:
        return rows
    if DEFAULT_NAME in servers:
        transport, target = describe_entry(servers[DEFAULT_NAME])
        return [
            {
                **row,
                "status": "points elsewhere",
                "entry": DEFAULT_NAME,
                "transport": transport,
                "target": target,
            }
        ]
    return [{**row, "status": "not configured"}]
