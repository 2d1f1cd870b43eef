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
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from catalyst_mcp.cluster.config import RedisSettings
from catalyst_mcp.configsources import ENV_PREFIX, read_environment
from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.observability.config import LogSettings, MetricsSettings, TelemetrySettings
from catalyst_mcp.orchestration.cache.config import (
    CacheSettings,
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
from catalyst_mcp.serverconfig import SERVER_NAME, ServerConfig
from catalyst_mcp.web.config import UiSettings
from catalyst_mcp.yamlsource import LocatedYaml, read_yaml

__all__ = [
    "ENV_PREFIX",
    "NAMESPACE_SEPARATOR",
    "SERVER_NAME",
    "GatewaySettings",
    "PacksSettings",
    "RedisSettings",
    "ServerConfig",
    "Settings",
    "StorageSettings",
    "load_settings",
]

NAMESPACE_SEPARATOR = "__"


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
