"""Typed settings: a ``catalyst.yaml`` file plus ``CATALYST_*`` environment overrides.

The ``servers:`` section takes the de-facto ``mcpServers`` entries of Claude Desktop, Cursor and
VS Code unchanged (``command``/``args``/``env``/``cwd`` for stdio, ``url``/``headers``/``transport``
or ``type`` for remote servers); a pasted top-level ``mcpServers:`` key is accepted as well.

Every setting can be overridden from the environment by its path, upper-cased, sections joined
by ``__`` to any depth: ``CATALYST_GATEWAY__PORT=9000``, ``CATALYST_AUTH__ENABLED=true``,
``CATALYST_AUTH__JWT__HS256_SECRET=...`` (:mod:`catalyst_mcp.configsources`, on
pydantic-settings). Nothing here is built at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from catalyst_mcp.cluster.config import RedisSettings
from catalyst_mcp.configsources import ENV_PREFIX, read_environment
from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.observability.config import LogSettings, MetricsSettings, TelemetrySettings
from catalyst_mcp.orchestration.cache.config import (
    CacheField,
    CacheSettings,
    ToolSettings,
    refuse_shared,
    shared_places,
)
from catalyst_mcp.orchestration.events.config import EventsSettings
from catalyst_mcp.orchestration.rules.config import RulesSettings
from catalyst_mcp.orchestration.workflows.config import WorkflowsSettings
from catalyst_mcp.packages.config import PackagesSettings
from catalyst_mcp.security.config import (
    AuditSettings,
    AuthSettings,
    RateLimitSettings,
    RbacSettings,
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
from catalyst_mcp.web.config import UiSettings
from catalyst_mcp.yamlsource import LocatedYaml, read_yaml

__all__ = [
    "ENV_PREFIX",
    "NAMESPACE_SEPARATOR",
    "GatewaySettings",
    "PacksSettings",
    "RedisSettings",
    "ServerConfig",
    "Settings",
    "StorageSettings",
    "load_settings",
]

NAMESPACE_SEPARATOR = "__"
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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GatewaySettings(_Model):
    """How the gateway listens and how it treats clients."""

    host: str = Field("127.0.0.1", description="Address to bind. Loopback by default.")
    port: int = Field(8765, ge=0, le=65535, description="TCP port of the HTTP endpoint.")
    uds: Path | None = Field(
        None,
        description="Listen on this Unix domain socket instead of TCP (host and port are then "
        "unused). A stale socket file is replaced; any other file there is refused. The file "
        "is removed on exit.",
    )
    uds_mode: str = Field(
        "0600",
        pattern=r"^(0o?)?[0-7]{3}$",
        description="File mode of the Unix socket, in octal. 0600: only the gateway's user may "
        "connect; 0660 lets its group in too (e.g. a reverse proxy's).",
    )
    mcp_path: str = Field(
        "/mcp", pattern=r"^/", description="Path of the Streamable HTTP endpoint."
    )
    legacy_sse: bool = Field(
        True, description="Also serve the deprecated HTTP+SSE transport at /sse and /messages."
    )
    websocket: bool = Field(
        True, description="Also serve MCP over WebSocket at /ws (subprotocol 'mcp')."
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed besides loopback ones (exact match, e.g. "
        "'https://app.example.com'). Requests with any other Origin get 403.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values accepted besides loopback names (e.g. 'mcp.example.com'"
        "). While bound to loopback, any other Host is refused with 403 (DNS rebinding).",
    )
    allow_non_loopback: bool = Field(
        False,
        description="Permit binding a non-loopback address while auth is off (with "
        "auth.enabled it is always permitted). Off by default: an unauthenticated gateway "
        "beyond this machine must be explicit.",
    )
    max_request_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="Largest request body accepted; larger gets 413."
    )
    call_timeout_seconds: float = Field(
        60.0, gt=0, description="Default time limit for one call to an upstream server."
    )
    session_idle_seconds: float = Field(
        3600.0, gt=0, description="Legacy-era sessions unused this long are closed."
    )
    max_legacy_sessions: int = Field(
        10_000,
        ge=1,
        description="Most legacy-era sessions held at once. At the cap, initialize closes the "
        "least recently used idle session (no request in flight, no open stream); if all are "
        "busy it is refused with HTTP 503.",
    )
    max_legacy_sessions_per_caller: int = Field(
        1_000,
        ge=1,
        description="Most legacy-era sessions one caller (authenticated subject; without auth "
        "every client is one caller) holds at once. At the cap, initialize closes that caller's "
        "least recently used idle session; if all are busy it is refused with HTTP 429.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log verbosity of the gateway process (logs go to stderr)."
    )
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = Field(
        1,
        description="Processes serving the one HTTP port (catalyst serve --workers), each a full "
        "gateway with its own upstream processes, supervised (a crashed worker is restarted). "
        "'auto': one per CPU core. Legacy-era sessions live in the worker that made them: with "
        "more than 1, legacy clients need shared session state (docs/deploy.md).",
    )
    watch_config: bool = Field(
        True,
        description="Hot reload of the config file the gateway was started with: apply edited "
        "servers while it runs. Each edit is validated first; an invalid one keeps the last good "
        "configuration serving and is reported by /ready until fixed.",
    )


class ServerConfig(_Model):
    """One upstream MCP server, in the de-facto ``mcpServers`` entry format plus a few extras."""

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


class PacksSettings(_Model):
    """Where knowledge packs are loaded from, and whether edits apply live (docs/packs.md)."""

    path: Path | None = Field(
        Path("knowledge-packs"),
        description="Folder of knowledge packs (*.yaml or *.yml, one pack per file; *.example "
        "and hidden files skipped), relative to the working directory. A missing folder means "
        "no packs (they are loaded when it appears, if watch is on); null turns packs off.",
    )
    watch: bool = Field(
        True,
        description="Hot reload: apply edited, new and deleted pack files while the gateway "
        "runs. Each file is validated first; an invalid edit keeps the last good version "
        "serving and is reported by /ready until fixed.",
    )


DATABASE_URL_ENV = "CATALYST_DATABASE_URL"
STATE_DIR_ENV = "XDG_STATE_HOME"


def default_database_url(environ: Mapping[str, str]) -> str:
    """The SQLite file in the user's state folder: ``$XDG_STATE_HOME/catalyst/catalyst.db``,
    else ``~/.local/state/catalyst/catalyst.db`` (the same wherever the gateway is started:
    a desktop client may start ``catalyst serve --stdio`` in any folder)."""
    home = Path(environ.get("HOME") or Path.home())
    base = environ.get(STATE_DIR_ENV) or str(home / ".local" / "state")
    return f"sqlite+aiosqlite:///{Path(base) / 'catalyst' / 'catalyst.db'}"


class StorageSettings(_Model):
    """Where users, keys, roles, secrets and the audit trail are stored (docs/security.md)."""

    url: str | None = Field(
        None,
        description="SQLAlchemy async URL of the database, e.g. "
        "'postgresql+asyncpg://user@host/db'. Unset: the CATALYST_DATABASE_URL environment "
        "variable, else the SQLite file catalyst/catalyst.db in the user's state folder "
        "($XDG_STATE_HOME, else ~/.local/state).",
    )
    auto_upgrade: bool = Field(
        True,
        description="Apply pending database migrations at start. Turn off where migrations "
        "run as a separate deployment step (`catalyst db upgrade`).",
    )

    def database_url(self, environ: Mapping[str, str] | None = None) -> str:
        """The URL in effect: this setting, else CATALYST_DATABASE_URL, else the SQLite file."""
        env = os.environ if environ is None else environ
        return self.url or env.get(DATABASE_URL_ENV) or default_database_url(env)


def _check_server_name(name: str) -> str:
    if not SERVER_NAME.match(name):
        raise ValueError(
            f"server name {name!r} must be letters and digits joined by single '-' or '_' "
            "(it becomes the namespace prefix)"
        )
    return name


ServerName = Annotated[str, AfterValidator(_check_server_name)]


class Settings(_Model):
    """The whole gateway configuration."""

    gateway: GatewaySettings = Field(
        default_factory=lambda: GatewaySettings(), description="The gateway's own listener."
    )
    servers: dict[ServerName, ServerConfig] = Field(
        default_factory=dict, description="Upstream MCP servers by name (mcpServers format)."
    )
    packs: PacksSettings = Field(
        default_factory=lambda: PacksSettings(), description="Knowledge packs to serve."
    )
    storage: StorageSettings = Field(
        default_factory=lambda: StorageSettings(), description="The gateway's database."
    )
    auth: AuthSettings = Field(
        default_factory=lambda: AuthSettings(), description="Who may connect."
    )
    rbac: RbacSettings = Field(
        default_factory=lambda: RbacSettings(), description="Roles: who may see and call what."
    )
    rate_limits: RateLimitSettings = Field(
        default_factory=lambda: RateLimitSettings(), description="Call rate limits."
    )
    audit: AuditSettings = Field(
        default_factory=lambda: AuditSettings(), description="The audit trail."
    )
    packages: PackagesSettings = Field(
        default_factory=lambda: PackagesSettings(),
        description="MCP server packages: catalog, installs, lockfile (docs/packages.md).",
    )
    metrics: MetricsSettings = Field(
        default_factory=lambda: MetricsSettings(),
        description="Prometheus metrics at /metrics (docs/observability.md).",
    )
    telemetry: TelemetrySettings = Field(
        default_factory=lambda: TelemetrySettings(),
        description="OpenTelemetry traces over OTLP (docs/observability.md).",
    )
    log: LogSettings = Field(
        default_factory=lambda: LogSettings(), description="The look of the log lines."
    )
    rules: RulesSettings = Field(
        default_factory=lambda: RulesSettings(),
        description="Policy rules over identity, tool, arguments, result and time (docs/rules.md).",
    )
    workflows: WorkflowsSettings = Field(
        default_factory=lambda: WorkflowsSettings(),
        description="Workflows: multi-step tool chains served as tools (docs/workflows.md).",
    )
    ui: UiSettings = Field(
        default_factory=lambda: UiSettings(), description="The web dashboard (docs/dashboard.md)."
    )
    redis: RedisSettings = Field(
        default_factory=lambda: RedisSettings(),
        description="State shared by several instances of one deployment (docs/scale-out.md).",
    )
    cache: CacheSettings = Field(
        default_factory=lambda: CacheSettings(),
        description="The result cache of tools/call (docs/cache.md).",
    )
    events: EventsSettings = Field(
        default_factory=lambda: EventsSettings(),
        description="The event bus, its consumers and webhooks (docs/events.md).",
    )

    @model_validator(mode="after")
    def _redis_for_events(self) -> Settings:
        if self.events.enabled and self.events.backend == "redis" and not self.redis.url:
            raise ValueError("events.backend is 'redis' but redis.url is not set")
        return self

    def cache_in_effect(self) -> CacheSettings:
        """The result cache's settings with its Redis resolved: ``cache.redis_url``, else the
        deployment's ``redis.url`` (one Redis for the deployment), else none (memory only)."""
        if self.cache.redis_url is None and self.redis.url is not None:
            return self.cache.model_copy(update={"redis_url": self.redis.url})
        return self.cache

    def namespace_clashes(self) -> list[tuple[str, str]]:
        """(server, namespace) pairs whose namespace an earlier active server already uses."""
        owners: dict[str, str] = {}
        clashes = []
        for name, server in self.servers.items():
            namespace = self.namespace_of(name)
            if server.active and namespace:
                if namespace in owners:
                    clashes.append((name, namespace))
                owners.setdefault(namespace, name)
        return clashes

    def namespace_of(self, name: str) -> str:
        ns = self.servers[name].namespace
        return name if ns is None else ns


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


def _problems_from(
    exc: ValidationError, source: LocatedYaml, variables: Mapping[tuple[str, ...], str]
) -> list[ConfigProblem]:
    """Every validation error, located at the variable that set the value or its file line."""
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        where = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling; `catalyst config init` lists them all)"
        variable = _variable_for(variables, loc)
        if variable is None and loc not in source.lines:  # a section only the environment made
            under = sorted(v for path, v in variables.items() if path[: len(loc)] == loc)
            variable = ", ".join(dict.fromkeys(under)) or None
        if variable is not None:
            problems.append(ConfigProblem(variable, None, f"{where}: {msg}"))
        else:
            problems.append(source.problem(loc, f"{where}: {msg}"))
    return problems


def _variable_for(
    variables: Mapping[tuple[str, ...], str], loc: tuple[str | int, ...]
) -> str | None:
    """The environment variable that gave the value at ``loc`` (or one of its parents)."""
    for end in range(len(loc), 0, -1):
        found = variables.get(tuple(str(p) for p in loc[:end]))
        if found is not None:
            return found
    return None


def _overlay(base: Any, over: Any) -> Any:
    """``over`` laid on ``base``: maps merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _overlay(base.get(key), value) if key in base else value
        return merged
    return over


def parse_settings(source: LocatedYaml, environ: Mapping[str, str] | None = None) -> Settings:
    """Validate a located YAML document (plus env overrides) into :class:`Settings`."""
    data = source.data if source.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([source.problem((), "the top level must be a mapping of sections")])
    data = dict(data)
    if "mcpServers" in data:
        if "servers" in data:
            raise ConfigError([source.problem(("mcpServers",), "give 'servers' or 'mcpServers'")])
        data["servers"] = data.pop("mcpServers")
        source.lines.update(
            {("servers", *k[1:]): v for k, v in source.lines.items() if k[:1] == ("mcpServers",)}
        )
    servers = data.get("servers")
    if isinstance(servers, dict):
        odd = [k for k in servers if not isinstance(k, str)]
        if odd:
            raise ConfigError(
                [
                    source.problem(
                        ("servers", k),
                        f"server name {k!r} is not a string (YAML reads on/off/yes/no and "
                        "numbers as other types): quote it",
                    )
                    for k in odd
                ]
            )
    env = os.environ if environ is None else environ
    layer = read_environment(Settings, env)
    data = _overlay(data, layer.data)
    try:
        settings = Settings.model_validate(data, context={"environ": env})
    except ValidationError as exc:
        raise ConfigError(_problems_from(exc, source, layer.variables)) from exc
    clashes = settings.namespace_clashes()
    if clashes:
        raise ConfigError(
            [
                source.problem(
                    ("servers", name, "namespace"),
                    f"servers.{name}: namespace {namespace!r} is already used by another "
                    "server; give one of them another `namespace:`",
                )
                for name, namespace in clashes
            ]
        )
    return settings


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load settings from ``path`` (or defaults when ``None``) and the environment."""
    source = read_yaml(path) if path is not None else LocatedYaml("<defaults>", {})
    return parse_settings(source, environ)
