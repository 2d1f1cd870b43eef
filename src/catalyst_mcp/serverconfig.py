"""One upstream server's entry in ``servers:``: the de-facto ``mcpServers`` format of Claude
Desktop, Cursor and VS Code (``command``/``args``/``env``/``cwd`` for stdio, ``url``/``headers``/
``transport`` or ``type`` for remote servers), plus Catalyst's own keys (sharing, sandbox,
built-in kinds, cache, liveness ...). :mod:`catalyst_mcp.settings` holds the file around it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from catalyst_mcp.orchestration.cache.config import (
    CacheField,
    ToolSettings,
    refuse_shared,
    shared_places,
)
from catalyst_mcp.security.references import SECRET_REFERENCE, names_in
from catalyst_mcp.servers.config import (
    BUILTIN_KINDS,
    DatabaseOptions,
    FilesystemOptions,
    KubernetesOptions,
    S3Options,
)
from catalyst_mcp.upstreams.sandboxconfig import SandboxSettings

__all__ = ["EXPANDED_KEYS", "FOREIGN_SERVER_KEYS", "SERVER_NAME", "ServerConfig"]

# Segments of letters and digits joined by single '-' or '_': never contains the separator and
# never ends in '_', so "<server>__<tool>" splits unambiguously at the first "__".
SERVER_NAME = re.compile(r"^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$")
# Keys other MCP clients put in mcpServers entries; accepted and ignored so configs paste as-is.
# Values of these server keys may reference environment variables as ${NAME}.
EXPANDED_KEYS = ("command", "args", "env", "cwd", "url", "headers", "sandbox", *BUILTIN_KINDS)
ENV_REFERENCE = re.compile(r"\$?\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
FOREIGN_SERVER_KEYS = frozenset(
    {"alwaysAllow", "autoApprove", "description", "envFile", "disabledTools", "note"}
)


class ServerConfig(BaseModel):
    """One upstream MCP server, in the de-facto ``mcpServers`` entry format plus a few extras."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    command: str | None = Field(None, description="stdio: program to start.")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="stdio: environment of the process. It inherits only PATH, HOME, locale, "
        "temp-dir, XDG folder and proxy variables from the gateway; give everything else here.",
    )
    cwd: str | None = Field(None, description="stdio: working directory.")
    url: str | None = Field(None, description="remote: the server's MCP endpoint URL.")
    headers: dict[str, str] = Field(default_factory=dict, description="remote: extra headers.")
    filesystem: FilesystemOptions | None = Field(
        None,
        description="built-in: serve folders of this machine (instead of command or url; "
        "docs/servers.md).",
    )
    database: DatabaseOptions | None = Field(
        None,
        description="built-in: serve a SQL database (instead of command or url; docs/servers.md).",
    )
    s3: S3Options | None = Field(
        None,
        description="built-in: serve buckets of AWS S3 or an S3-compatible store (instead of "
        "command or url; docs/servers.md).",
    )
    kubernetes: KubernetesOptions | None = Field(
        None,
        description="built-in: serve a Kubernetes cluster (instead of command or url; "
        "docs/servers.md).",
    )
    transport: Literal["streamable-http", "http", "sse", "websocket", "stdio"] | None = Field(
        None,
        alias="type",
        description="remote: 'streamable-http' (alias 'http'), legacy 'sse', or 'websocket' "
        "(ws:// and wss:// URLs). Inferred when omitted: 'stdio' with command, 'websocket' for "
        "ws(s):// URLs, else 'streamable-http' (or 'sse' for URLs ending /sse).",
    )
    era: Literal["auto", "modern", "legacy"] = Field(
        "auto",
        description="Protocol era to speak: 'auto' probes with server/discover and falls back to "
        "initialize; 'modern' or 'legacy' skip the probe.",
    )
    namespace: str | None = Field(
        None,
        description="Prefix of this server's tools, prompts and resource URIs. Defaults to the "
        "server's name; '' exposes names unprefixed (collisions are then reported).",
    )
    enabled: bool = Field(True, description="Set false (or disabled: true) to keep but not run it.")
    disabled: bool = Field(
        False, description="Claude-Desktop style switch; the opposite of enabled."
    )
    timeout_seconds: float | None = Field(
        None, gt=0, description="Per-call time limit; defaults to gateway.call_timeout_seconds."
    )
    serialize_calls: bool = Field(
        False,
        description="Run one call at a time on this server. For legacy-era stdio servers that "
        "ask the client for input (sampling, elicitation, roots) mid-call: stdio cannot say which "
        "of several concurrent calls asked, so without this only a lone call can be answered.",
    )
    connect_timeout_seconds: float = Field(
        30.0, gt=0, description="Time allowed to start and handshake with the server."
    )
    restart_initial_seconds: float = Field(
        0.5, gt=0, description="First delay before reconnecting a failed server; doubles each try."
    )
    restart_max_seconds: float = Field(30.0, gt=0, description="Longest delay between retries.")
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive failed calls that open the circuit breaker."
    )
    breaker_reset_seconds: float = Field(
        30.0, gt=0, description="How long an open breaker rejects calls before trying one."
    )
    ping_interval_seconds: float = Field(
        30.0,
        ge=0,
        description="Probe the server this often while no call is in flight (legacy era: ping; "
        "modern era: server/discover, since 2026-07-28 has no ping). A probe that gets no answer "
        "within ping_timeout_seconds marks the server failed and restarts (stdio) or reconnects "
        "it. 0 turns the periodic probe off.",
    )
    ping_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="How long a liveness probe waits for an answer. Also used after a call "
        "times out, to tell a slow server (it answers: nothing happens) from a hung one (it is "
        "restarted, and the calls in flight on it fail).",
    )
    sharing: Literal["shared", "per-user", "per-session"] | None = Field(
        None,
        description="Who shares a process of this server: 'shared' (one for every caller), "
        "'per-user' (one per caller, started at their first call), 'per-session' (one per MCP "
        "session: a legacy session, or a stdio or WebSocket connection; modern-era HTTP "
        "requests have no session and are refused). Unset: 'per-user' when env or headers "
        "reference ${secret:...} (callers whose values are the shared ones use the shared "
        "process), else 'shared'. 'shared' with ${secret:...} references is refused.",
    )
    idle_seconds: float = Field(
        600.0,
        gt=0,
        description="per-user and per-session: a caller's process unused this long is stopped "
        "(their next call starts another).",
    )
    max_processes: int = Field(
        200,
        ge=1,
        description="per-user and per-session: most callers' processes of this server at once "
        "(the one that lists its tools not counted). A caller who needs another past it gets "
        "an error that names this cap; idle ones are stopped after idle_seconds.",
    )
    max_processes_per_user: int = Field(
        5,
        ge=1,
        description="per-session: most processes one user holds of this server at once (one "
        "per session they keep open); past it their new session gets an error that names this "
        "cap. per-user mode has one per user by definition.",
    )
    log_lines: int = Field(
        1000,
        ge=1,
        description="stdio: lines of the server's stderr kept in memory for `catalyst servers "
        "logs` (a ring buffer shared by all its processes; the oldest lines go first).",
    )
    sandbox: SandboxSettings = Field(
        default_factory=lambda: SandboxSettings(),
        description="stdio: run the server under bubblewrap: {enabled, network, writable, "
        "readable, hidden} (docs/security.md).",
    )
    pin: Literal["strict", "warn", "off"] = Field(
        "warn",
        description="Pin what this server's tools tell the model (name, title, description, "
        "input and output schema, annotations), approved on first contact. 'strict': a tool "
        "whose definition later changes, or a new tool, is held back (not listed, not "
        "callable) until an administrator approves it (`catalyst tools approve`); 'warn': it "
        "is served, and the change is logged and audited; 'off': nothing is recorded.",
    )

    cache: CacheField = Field(
        None,
        description="Serve this server's successful tool results again for a while: "
        "{ttl, scope} (docs/cache.md). Off unless given.",
    )
    tools: dict[str, ToolSettings] = Field(
        default_factory=dict,
        description="Settings of single tools, by the server's own tool name (without the "
        "namespace): {cache: {ttl, scope}} instead of the server's cache (false: never cached).",
    )

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if k not in FOREIGN_SERVER_KEYS}
        if data.get("pin") is False:  # YAML 1.1 reads a bare `off` as false
            data["pin"] = "off"
        environ = (info.context or {}).get("environ", os.environ)
        for key in EXPANDED_KEYS:
            if key in data:
                data[key] = _expand(data[key], environ)
        return data

    @model_validator(mode="after")
    def _check_kind(self) -> ServerConfig:
        if self.namespace and not SERVER_NAME.match(self.namespace):
            raise ValueError(
                f"namespace {self.namespace!r} must be letters and digits joined by single "
                "'-' or '_'"
            )
        builtins = [kind for kind in BUILTIN_KINDS if getattr(self, kind) is not None]
        if builtins:
            if self.command or self.url or len(builtins) > 1:
                raise ValueError(
                    f"give one of 'command', 'url' or a built-in ({', '.join(BUILTIN_KINDS)}), "
                    "not several"
                )
            return self
        if self.command and self.url:
            raise ValueError("give either 'command' (stdio) or 'url' (remote), not both")
        if not self.command and not self.url:
            raise ValueError(
                "needs 'command' (a stdio server), 'url' (a remote server) or a built-in "
                f"section ({', '.join(BUILTIN_KINDS)})"
            )
        if self.url and not re.match(r"^(https?|wss?)://", self.url):
            # The value is not shown: it may come from ${NAME} and carry a secret.
            raise ValueError("url must start with http://, https://, ws:// or wss://")
        websocket = bool(self.url and re.match(r"^wss?://", self.url))
        if (websocket and self.transport not in (None, "websocket")) or (
            self.transport == "websocket" and not websocket
        ):
            raise ValueError("transport 'websocket' goes with ws:// or wss:// URLs, and only it")
        if self.command and self.transport not in (None, "stdio"):
            raise ValueError(f"transport {self.transport!r} needs a 'url', not a 'command'")
        if self.url and self.transport == "stdio":
            raise ValueError("transport 'stdio' needs a 'command', not a 'url'")
        if self.sharing == "shared" and self.secret_names:
            raise ValueError(
                "sharing: shared cannot run a server whose env or headers reference "
                f"${{secret:...}} ({', '.join(self.secret_names)}): each caller's values need a "
                "process of their own; use sharing: per-user (or per-session), or give the "
                "values in env directly"
            )
        if self.url and self.sandbox.enabled:
            raise ValueError("sandbox: only stdio servers (with 'command') can be sandboxed")
        return self

    @model_validator(mode="after")
    def _check_cache(self) -> ServerConfig:
        places = shared_places(self.cache, {n: t.cache for n, t in self.tools.items()})
        if not places:
            return self
        why = None
        options = getattr(self, self.builtin) if self.builtin is not None else None
        if self.secret_names:
            why = "env or headers reference ${secret:...}"
        elif self.mode != "shared":
            why = f"the server runs {self.mode}"
        elif options is not None and SECRET_REFERENCE.search(options.model_dump_json()):
            why = f"its {self.builtin} options use ${{secret:...}}"
        if why is not None:
            raise ValueError(f"{', '.join(places)}: {refuse_shared(why)}")
        return self

    @property
    def kind(self) -> Literal["stdio", "streamable-http", "sse", "websocket", "builtin"]:
        if self.builtin is not None:
            return "builtin"
        if self.command:
            return "stdio"
        if self.transport == "websocket" or re.match(r"^wss?://", self.url or ""):
            return "websocket"
        if self.transport == "sse" or (
            self.transport is None and (self.url or "").rstrip("/").endswith("/sse")
        ):
            return "sse"
        return "streamable-http"

    @property
    def builtin(self) -> str | None:
        """The kind of built-in server this entry runs (``filesystem``, ...), or None."""
        return next((kind for kind in BUILTIN_KINDS if getattr(self, kind) is not None), None)

    @property
    def secret_names(self) -> list[str]:
        """The ``${secret:NAME}`` names of env and headers (sorted)."""
        found: set[str] = set()
        for value in (*self.env.values(), *self.headers.values()):
            found |= names_in(value)
        return sorted(found)

    @property
    def mode(self) -> Literal["shared", "per-user", "per-session"]:
        """The sharing mode in effect (``sharing``, else what the references call for)."""
        if self.sharing is not None:
            return self.sharing
        return "per-user" if self.secret_names else "shared"

    @property
    def active(self) -> bool:
        return self.enabled and not self.disabled


def _expand(value: Any, environ: Mapping[str, str]) -> Any:
    """Replace ``${NAME}`` with the environment variable NAME (``$${`` keeps a literal ``${``)."""
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            if match.group(0).startswith("$$"):
                return match.group(0)[1:]
            name = match.group(1)
            if name not in environ:
                raise ValueError(
                    f"environment variable {name} is not set (referenced as ${{{name}}})"
                )
            return environ[name]

        return ENV_REFERENCE.sub(one, value)
    if isinstance(value, list):
        return [_expand(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, environ) for k, v in value.items()}
    return value
