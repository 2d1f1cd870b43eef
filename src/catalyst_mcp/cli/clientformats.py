"""The MCP clients ``catalyst clients`` knows: where each keeps its config, and its entry format.

* claude-desktop: ``claude_desktop_config.json`` in ``~/.config/Claude`` (Linux),
  ``~/Library/Application Support/Claude`` (macOS) or ``%APPDATA%\\Claude`` (Windows);
  ``mcpServers``; stdio servers only, so the gateway's URL is reached through ``mcp-remote``;
* cursor: ``~/.cursor/mcp.json`` (a project's: ``.cursor/mcp.json``); ``mcpServers``;
  ``url`` and ``headers`` with ``${env:NAME}``;
* vscode: ``Code/User/mcp.json`` in the same per-OS folders (a workspace's:
  ``.vscode/mcp.json``); ``servers`` plus ``inputs``; ``type: http`` and ``headers`` with
  ``${input:ID}`` (prompted for once, stored securely by VS Code);
* windsurf: ``~/.codeium/windsurf/mcp_config.json``; ``mcpServers``; ``serverUrl`` and
  ``headers`` with ``${env:NAME}``;
* librechat: ``librechat.yaml`` of the LibreChat installation; ``mcpServers`` (YAML);
  ``type: streamable-http`` and ``headers`` with ``${NAME}`` (from LibreChat's ``.env``).

An API key is always written as a reference the client resolves (an environment variable, or
VS Code's prompted and securely stored input), unless the value itself is asked for
(``inline_key``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CLIENTS",
    "Client",
    "Endpoint",
    "describe_entry",
    "points_here",
    "same_url",
]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How a client should reach the gateway."""

    transport: str  # "stdio" or "http"
    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    key_env: str | None = None  # the API key's environment variable; None: no key is sent
    key: str | None = None  # the key itself, only when it is to be written in clear


@dataclass(frozen=True, slots=True)
class Client:
    """One MCP client's config file format."""

    name: str
    title: str
    section: str
    yaml: bool = False

    # ---- where ---------------------------------------------------------------------------

    def user_file(
        self, home: Path, platform: str = sys.platform, environ: Mapping[str, str] = os.environ
    ) -> Path | None:
        """The per-user config file on ``platform`` (None: the client has none)."""
        if self.name == "cursor":
            return home / ".cursor" / "mcp.json"
        if self.name == "windsurf":
            return home / ".codeium" / "windsurf" / "mcp_config.json"
        if self.name == "librechat":
            return None
        folder = {"claude-desktop": "Claude", "vscode": "Code"}[self.name]
        if platform == "darwin":
            base = home / "Library" / "Application Support" / folder
        elif platform == "win32":
            base = Path(environ.get("APPDATA") or home / "AppData" / "Roaming") / folder
        else:
            base = Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / folder
        if self.name == "vscode":
            return base / "User" / "mcp.json"
        return base / "claude_desktop_config.json"

    def workspace_file(self, folder: Path) -> Path | None:
        """The config file of a project folder (None: the client has none)."""
        if self.name == "vscode":
            return folder / ".vscode" / "mcp.json"
        if self.name == "cursor":
            return folder / ".cursor" / "mcp.json"
        if self.name == "librechat":
            return folder / "librechat.yaml"
        return None

    # ---- what ----------------------------------------------------------------------------

    def input_id(self, key_env: str) -> str:
        """VS Code: the input that prompts for the key (``catalyst-api-key`` for
        ``CATALYST_API_KEY``; the importer turns it back into that variable)."""
        return key_env.lower().replace("_", "-")

    def entry(self, endpoint: Endpoint) -> dict[str, Any]:
        """The server entry that points this client at ``endpoint``."""
        if endpoint.transport == "stdio":
            assert endpoint.command is not None
            entry: dict[str, Any] = {"command": endpoint.command, "args": list(endpoint.args)}
            if self.name in ("vscode", "librechat"):
                entry = {"type": "stdio", **entry}
            return entry
        assert endpoint.url is not None
        if self.name == "claude-desktop":
            return self._bridged(endpoint)
        entry = {}
        if self.name == "vscode":
            entry["type"] = "http"
        elif self.name == "librechat":
            entry["type"] = "streamable-http"
        entry["serverUrl" if self.name == "windsurf" else "url"] = endpoint.url
        if endpoint.key_env is not None:
            entry["headers"] = {"Authorization": f"Bearer {self._reference(endpoint)}"}
        return entry

    def _reference(self, endpoint: Endpoint) -> str:
        assert endpoint.key_env is not None
        if endpoint.key is not None:
            return endpoint.key
        if self.name == "vscode":
            return f"${{input:{self.input_id(endpoint.key_env)}}}"
        if self.name == "librechat":
            return f"${{{endpoint.key_env}}}"
        return f"${{env:{endpoint.key_env}}}"

    def _bridged(self, endpoint: Endpoint) -> dict[str, Any]:
        """Claude Desktop runs stdio servers only: ``mcp-remote`` bridges to the URL. It
        expands ``${NAME}`` in its arguments from its environment."""
        assert endpoint.url is not None
        args = ["-y", "mcp-remote", endpoint.url]
        parts = urlsplit(endpoint.url)
        if parts.scheme == "http" and (parts.hostname or "") not in LOOPBACK:
            args.append("--allow-http")
        entry: dict[str, Any] = {"command": "npx", "args": args}
        if endpoint.key_env is not None:
            args += ["--header", f"Authorization:Bearer ${{{endpoint.key_env}}}"]
            if endpoint.key is not None:
                entry["env"] = {endpoint.key_env: endpoint.key}
        return entry

    def inputs(self, endpoint: Endpoint) -> list[dict[str, Any]]:
        """VS Code's ``inputs`` the entry needs (the prompt for the API key)."""
        if self.name != "vscode" or endpoint.transport != "http" or endpoint.key_env is None:
            return []
        if endpoint.key is not None:
            return []
        return [
            {
                "type": "promptString",
                "id": self.input_id(endpoint.key_env),
                "description": "Catalyst API key",
                "password": True,
            }
        ]

    def document(self, name: str, endpoint: Endpoint) -> dict[str, Any]:
        """A whole config file holding just this entry (the snippet ``export`` prints)."""
        document: dict[str, Any] = {}
        inputs = self.inputs(endpoint)
        if inputs:
            document["inputs"] = inputs
        document[self.section] = {name: self.entry(endpoint)}
        return document


CLIENTS: dict[str, Client] = {
    c.name: c
    for c in (
        Client("claude-desktop", "Claude Desktop", "mcpServers"),
        Client("cursor", "Cursor", "mcpServers"),
        Client("vscode", "VS Code", "servers"),
        Client("windsurf", "Windsurf", "mcpServers"),
        Client("librechat", "LibreChat", "mcpServers", yaml=True),
    )
}


# ---- reading entries back (clients list) -----------------------------------------------------


def _normal(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if host in LOOPBACK:
        host = "loopback"
    return parts.scheme.lower(), host, port, parts.path.rstrip("/") or "/"


def same_url(a: str, b: str) -> bool:
    """Whether two URLs name the same endpoint (loopback names, default ports and a trailing
    slash aside)."""
    first, second = _normal(a), _normal(b)
    return first is not None and first == second


def describe_entry(entry: Any) -> tuple[str, str]:
    """(transport, where) of any client's server entry, for people."""
    if not isinstance(entry, dict):
        return "?", "not an object"
    url = entry.get("url") or entry.get("serverUrl")
    if isinstance(url, str):
        return str(entry.get("type") or "http"), url
    command = entry.get("command")
    args = [str(a) for a in entry.get("args") or [] if isinstance(a, str | int | float)]
    if isinstance(command, str):
        if "mcp-remote" in args:
            remote = args[args.index("mcp-remote") + 1 :]
            if remote:
                return "mcp-remote", remote[0]
        if "--stdio" in args and "serve" in args:
            config = args[args.index("--config") + 1] if "--config" in args[:-1] else "(default)"
            return "stdio", f"catalyst serve --stdio, config {config}"
        return "stdio", " ".join([command, *args])
    return "?", "neither url nor command"


def points_here(entry: Any, gateway: str) -> bool:
    """Whether ``entry`` reaches the gateway whose MCP URL is ``gateway`` (directly, through
    mcp-remote, or as ``catalyst serve --stdio``)."""
    transport, where = describe_entry(entry)
    if transport == "stdio":
        command = str(entry.get("command", ""))
        return Path(command).name in ("catalyst", "catalyst.exe") and where.startswith(
            "catalyst serve --stdio"
        )
    return transport != "?" and same_url(where, gateway)
