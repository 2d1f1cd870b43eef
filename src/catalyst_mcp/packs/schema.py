"""The knowledge-pack file format, as pydantic models (docs/packs.md walks through it).

One YAML file is one :class:`Pack`. Models only check shape and single values; what needs the
whole pack (a tool naming a declared connection, a statement's ``:name`` binds being declared
parameters) is checked by :mod:`catalyst_mcp.packs.loader`, so every problem is reported at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from catalyst_mcp.orchestration.cache.config import CacheField
from catalyst_mcp.settings import SERVER_NAME

__all__ = [
    "IDENTIFIER",
    "PARAM_NAME",
    "TOOL_NAME",
    "Connection",
    "ItemSpec",
    "Pack",
    "PackLimits",
    "PackTest",
    "ParamSpec",
    "PromptArgument",
    "PromptMessage",
    "PromptSpec",
    "ResourceSpec",
    "RestAction",
    "RestAuth",
    "RestConnection",
    "RestRetries",
    "RestTls",
    "SqlAction",
    "SqlConnection",
    "TestExpectation",
    "ToolAnnotations",
    "ToolSpec",
]

TOOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TEMPLATE_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# a SQL identifier an allow-list may name: a column or table, optionally qualified (o.total)
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
HTTP_METHODS = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _pack_name(name: str) -> str:
    if not SERVER_NAME.match(name):
        raise ValueError(
            f"pack name {name!r} must be letters and digits joined by single '-' or '_' "
            "(it becomes the namespace prefix)"
        )
    return name


def _tool_name(name: str) -> str:
    if not TOOL_NAME.match(name) or "__" in name:
        raise ValueError(
            f"name {name!r} must be 1-64 letters, digits, '_', '-' or '.', without '__'"
        )
    return name


PackName = Annotated[str, AfterValidator(_pack_name)]
ItemName = Annotated[str, AfterValidator(_tool_name)]


class SqlConnection(_Model):
    """A database reached through SQLAlchemy (SQLite and PostgreSQL are tested)."""

    type: Literal["sql"] = Field(description="Connection kind: 'sql'.")
    url: str = Field(
        description="SQLAlchemy URL, e.g. 'sqlite:///${pack_dir}/crm.db' or "
        "'postgresql://user@host/db' (the async driver is chosen for you). May use "
        "${pack_dir} and ${env:NAME}."
    )
    read_only: bool = Field(
        True,
        description="Open the connection read-only (enforced by the database, not by parsing "
        "SQL). Supported for SQLite and PostgreSQL.",
    )
    pool_size: int = Field(5, ge=1, le=100, description="Connections kept open (PostgreSQL).")
    timeout_seconds: float = Field(10.0, gt=0, description="Time limit of one statement.")


class RestAuth(_Model):
    """How requests of a REST connection authenticate. Secret values should be references:
    ``${env:NAME}`` (the gateway's environment) or ``${secret:NAME}`` (the secrets store: the
    caller's own value, else the shared one)."""

    type: Literal["bearer", "basic", "api_key", "oauth2_client_credentials"] = Field(
        description="bearer (token), basic (username, password), api_key (name, value, in), "
        "oauth2_client_credentials (token_url, client_id, client_secret, scopes)."
    )
    token: str | None = Field(None, description="bearer: the token.")
    username: str | None = Field(None, description="basic: the user name.")
    password: str | None = Field(None, description="basic: the password.")
    name: str | None = Field(None, description="api_key: header or query parameter name.")
    value: str | None = Field(None, description="api_key: the key.")
    in_: Literal["header", "query"] = Field(
        "header", alias="in", description="api_key: sent as a header or a query parameter."
    )
    token_url: str | None = Field(None, description="oauth2: the token endpoint.")
    client_id: str | None = Field(None, description="oauth2: the client id.")
    client_secret: str | None = Field(None, description="oauth2: the client secret.")
    scopes: list[str] = Field(default_factory=list, description="oauth2: scopes to ask for.")
    audience: str | None = Field(None, description="oauth2: 'audience' form field, if needed.")

    @model_validator(mode="after")
    def _check(self) -> RestAuth:
        needed = {
            "bearer": ("token",),
            "basic": ("username", "password"),
            "api_key": ("name", "value"),
            "oauth2_client_credentials": ("token_url", "client_id", "client_secret"),
        }[self.type]
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(f"auth type {self.type!r} needs {', '.join(missing)}")
        return self


class RestRetries(_Model):
    """Retries of idempotent requests (GET, HEAD, PUT, DELETE, or any marked idempotent)."""

    attempts: int = Field(3, ge=1, le=10, description="Tries in all, the first included.")
    backoff_seconds: float = Field(0.2, ge=0, description="Wait before the first retry.")
    max_backoff_seconds: float = Field(5.0, ge=0, description="Longest wait between tries.")
    on_status: list[int] = Field(
        default_factory=lambda: [429, 502, 503, 504],
        description="Statuses retried (a Retry-After header is honoured up to the max wait).",
    )


class RestTls(_Model):
    """TLS options of an https connection."""

    verify: bool = Field(True, description="Check the server's certificate (keep it on).")
    ca_file: str | None = Field(None, description="PEM file of extra trusted CAs.")
    client_cert: str | None = Field(None, description="PEM client certificate (mutual TLS).")
    client_key: str | None = Field(None, description="PEM key of the client certificate.")


class RestConnection(_Model):
    """An HTTP API: a base URL, default headers, auth, timeouts, retries, TLS and SSRF policy."""

    type: Literal["rest"] = Field(description="Connection kind: 'rest'.")
    base_url: str = Field(
        description="http(s) URL every action path is relative to, e.g. "
        "'https://api.example.com/v1'."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers sent with every request."
    )
    auth: RestAuth | None = Field(None, description="How requests authenticate.")
    timeout_seconds: float = Field(10.0, gt=0, description="Time limit of one request.")
    connect_timeout_seconds: float = Field(5.0, gt=0, description="Time limit to connect.")
    retries: RestRetries = Field(
        default_factory=lambda: RestRetries(), description="Retries of idempotent requests."
    )
    tls: RestTls = Field(default_factory=lambda: RestTls(), description="TLS options.")
    allow_private_network: bool = Field(
        False,
        description="Allow loopback and private addresses (10/8, 172.16/12, 192.168/16, fc00::/7, "
        "127/8, ::1). Link-local and cloud-metadata addresses are refused always.",
    )
    max_redirects: int = Field(
        3, ge=0, le=10, description="Redirects followed (each target checked again)."
    )
    max_response_bytes: int = Field(1_000_000, ge=1, description="Largest response body accepted.")
    max_connections: int = Field(20, ge=1, le=1000, description="Connections kept per host.")


Connection = Annotated[SqlConnection | RestConnection, Field(discriminator="type")]


class ItemSpec(_Model):
    """The type of the items of an ``array`` parameter."""

    type: Literal["string", "integer", "number", "boolean"] = Field(
        description="JSON type of each item."
    )
    enum: list[Any] | None = Field(None, min_length=1, description="The only values accepted.")
    minimum: float | None = Field(None, description="Smallest number accepted.")
    maximum: float | None = Field(None, description="Largest number accepted.")
    minLength: int | None = Field(None, ge=0, description="Shortest string accepted.")
    maxLength: int | None = Field(None, ge=0, description="Longest string accepted.")
    pattern: str | None = Field(None, description="Regular expression a string must match.")


class ParamSpec(_Model):
    """One tool parameter; together they become the tool's MCP ``inputSchema``."""

    type: Literal["string", "integer", "number", "boolean", "array", "object"] = Field(
        description="JSON type of the value ('object' is passed through as it is, for REST bodies)."
    )
    description: str | None = Field(None, description="What the value means, for the model.")
    required: bool = Field(False, description="The caller must give it.")
    default: Any = Field(None, description="Value used when the caller gives none.")
    enum: list[Any] | None = Field(None, min_length=1, description="The only values accepted.")
    minimum: float | None = Field(None, description="Smallest number accepted.")
    maximum: float | None = Field(None, description="Largest number accepted.")
    minLength: int | None = Field(None, ge=0, description="Shortest string accepted.")
    maxLength: int | None = Field(None, ge=0, description="Longest string accepted.")
    pattern: str | None = Field(None, description="Regular expression a string must match.")
    items: ItemSpec | None = Field(None, description="array: the type of its items.")
    minItems: int | None = Field(None, ge=0, description="array: fewest items accepted.")
    maxItems: int | None = Field(None, ge=0, description="array: most items accepted.")

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.required and self.default is not None:
            raise ValueError("a required parameter cannot have a default")
        for pattern in (self.pattern, self.items.pattern if self.items else None):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        numeric = self.type in ("integer", "number")
        if not numeric and (self.minimum is not None or self.maximum is not None):
            raise ValueError("minimum/maximum apply to integer and number parameters only")
        text = self.minLength, self.maxLength, self.pattern
        if self.type != "string" and any(v is not None for v in text):
            raise ValueError("minLength/maxLength/pattern apply to string parameters only")
        if self.type == "array" and self.items is None:
            raise ValueError("an array parameter needs 'items' (the type of its items)")
        if self.type != "array" and (
            self.items is not None or self.minItems is not None or self.maxItems is not None
        ):
            raise ValueError("items/minItems/maxItems apply to array parameters only")
        if self.type in ("array", "object") and self.enum is not None:
            raise ValueError("enum applies to scalar parameters (use items.enum for arrays)")
        return self


class SqlAction(_Model):
    """A SQL statement run on a declared connection; values are always bound parameters."""

    connection: str = Field(description="Name of a connection declared under `connections:`.")
    statement: str = Field(
        min_length=1,
        description="One SQL statement. Parameters appear as :name and are bound, never "
        "formatted into the text; an array parameter binds as a list (IN :ids). "
        "{name} marks an identifier taken from `identifiers`.",
    )
    identifiers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Identifiers (table or column names) that may vary: parameter name -> the "
        "only names it may take. {name} in the statement becomes the chosen name, quoted.",
    )
    max_rows: int = Field(100, ge=1, le=10_000, description="Rows returned at most.")


class RestAction(_Model):
    """An HTTP request on a declared REST connection, built structurally from parameters.

    ``{param}`` in ``path`` is replaced by the percent-encoded value. In ``query``, ``headers``
    and ``body`` a string that is exactly ``"{param}"`` becomes the parameter's value with its
    JSON type (left out when the value is absent); a longer string has ``{param}`` replaced by
    the value's text. Nothing is ever built by templating JSON text.
    """

    connection: str = Field(description="Name of a connection declared under `connections:`.")
    method: HTTP_METHODS = Field("GET", description="HTTP method.")
    path: str = Field(
        "", description="Path appended to the connection's base_url, e.g. '/issues/{number}'."
    )
    query: dict[str, Any] = Field(default_factory=dict, description="Query parameters.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    body: Any = Field(None, description="JSON body (any YAML structure), built structurally.")
    idempotent: bool | None = Field(
        None,
        description="Whether retrying is safe (default: true for GET, HEAD, PUT and DELETE).",
    )
    project: str | None = Field(
        None,
        description="JMESPath expression applied to the JSON response; the result is the "
        "structured content (e.g. 'items[].{id: id, title: title}').",
    )
    errors: dict[str, str] = Field(
        default_factory=dict,
        description="Messages for error statuses: '404' or '4xx' -> the text the caller gets.",
    )

    @property
    def retry_safe(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method in IDEMPOTENT_METHODS

    @model_validator(mode="after")
    def _check(self) -> RestAction:
        for key in self.errors:
            if not re.match(r"^[1-5]([0-9]{2}|xx)$", key):
                raise ValueError(f"errors: {key!r} is not a status like '404' or '4xx'")
        if self.path and not self.path.startswith("/"):
            raise ValueError("path must start with '/' (it is appended to base_url)")
        if self.method in ("GET", "HEAD") and self.body is not None:
            raise ValueError(f"a {self.method} request has no body")
        return self


class ToolAnnotations(_Model):
    """MCP tool annotations: hints for clients, not enforced."""

    title: str | None = Field(None, description="Human-readable title.")
    readOnlyHint: bool | None = Field(None, description="The tool does not modify anything.")
    destructiveHint: bool | None = Field(None, description="It may destroy data.")
    idempotentHint: bool | None = Field(None, description="Repeating a call changes nothing.")
    openWorldHint: bool | None = Field(None, description="It reaches outside systems.")


class ToolSpec(_Model):
    """One tool of the pack."""

    name: ItemName = Field(description="Tool name; clients see '<pack>__<name>'.")
    title: str | None = Field(None, description="Human-readable title.")
    description: str = Field(min_length=1, description="What the tool does, for the model.")
    annotations: ToolAnnotations | None = Field(None, description="MCP tool annotations.")
    parameters: dict[str, ParamSpec] = Field(
        default_factory=dict, description="Parameters by name (letters, digits, '_')."
    )
    sql: SqlAction | None = Field(None, description="The SQL action the tool runs.")
    rest: RestAction | None = Field(None, description="The REST request the tool makes.")
    output_schema: dict[str, Any] | None = Field(
        None,
        description="JSON Schema (type: object) of the structured result; results are checked "
        "against it. Default for SQL tools: {rows, truncated}.",
    )
    cache: CacheField = Field(
        None,
        description="Serve this tool's successful results again for a while: {ttl, scope} "
        "(docs/cache.md), instead of the pack's cache; false: never cached.",
    )

    @model_validator(mode="after")
    def _check(self) -> ToolSpec:
        if (self.sql is None) == (self.rest is None):
            raise ValueError("give exactly one action: 'sql' or 'rest'")
        if self.output_schema is not None and self.output_schema.get("type") != "object":
            raise ValueError("output_schema must be a JSON Schema with type: object")
        return self


class ResourceSpec(_Model):
    """A resource (fixed ``uri``) or a resource template (``uri_template``)."""

    uri: str | None = Field(None, description="URI of a fixed resource, e.g. 'crm://schema'.")
    uri_template: str | None = Field(
        None, description="RFC 6570 level-1 template, e.g. 'crm://customers/{id}'."
    )
    name: ItemName = Field(description="Short name of the resource.")
    description: str | None = Field(None, description="What it holds.")
    mime_type: str | None = Field(None, description="MIME type of its contents.")
    text: str | None = Field(None, description="Static text contents.")
    file: str | None = Field(
        None,
        description="A file whose contents are served, relative to the pack's folder; "
        "{variables} of a template may name files inside that folder only.",
    )
    sql: SqlAction | None = Field(
        None, description="A query whose rows (as JSON) are the contents; {variables} bind."
    )
    rest: RestAction | None = Field(
        None, description="A GET request whose (projected) response is the contents."
    )
    parameters: dict[str, ParamSpec] = Field(
        default_factory=dict,
        description="Types of a template's variables (default: string), e.g. id: integer.",
    )

    @model_validator(mode="after")
    def _check(self) -> ResourceSpec:
        if (self.uri is None) == (self.uri_template is None):
            raise ValueError("give either 'uri' or 'uri_template'")
        sources = [k for k in ("text", "file", "sql", "rest") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of 'text', 'file', 'sql' or 'rest' as the contents")
        if self.rest is not None and self.rest.method != "GET":
            raise ValueError("a REST resource is read with GET")
        if self.uri is not None and self.parameters:
            raise ValueError("'parameters' belong to a 'uri_template'")
        return self

    @property
    def variables(self) -> list[str]:
        return TEMPLATE_VARIABLE.findall(self.uri_template or "")


class PromptArgument(_Model):
    """One argument of a prompt."""

    name: str = Field(pattern=PARAM_NAME.pattern, description="Argument name.")
    description: str | None = Field(None, description="What to give.")
    required: bool = Field(False, description="The caller must give it.")


class PromptMessage(_Model):
    """One message of a prompt; ``{argument}`` in its text is replaced by the argument."""

    role: Literal["user", "assistant"] = Field(description="Who says it.")
    text: str = Field(description="The message text, with {argument} placeholders.")


class PromptSpec(_Model):
    """A prompt: templated messages with arguments."""

    name: ItemName = Field(description="Prompt name; clients see '<pack>__<name>'.")
    title: str | None = Field(None, description="Human-readable title.")
    description: str | None = Field(None, description="What the prompt is for.")
    arguments: list[PromptArgument] = Field(default_factory=list, description="Its arguments.")
    messages: list[PromptMessage] = Field(min_length=1, description="The messages, in order.")


class PackLimits(_Model):
    """Limits the pack author sets on every call of the pack (tools and resource reads)."""

    concurrency: int = Field(16, ge=1, le=10_000, description="Calls running at once.")
    rate_per_second: float | None = Field(
        None, gt=0, description="Calls started per second on average (null: unlimited)."
    )
    burst: int | None = Field(
        None, ge=1, description="Calls allowed in a burst (default: one second's worth)."
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Time limit of one whole call.")
    max_response_bytes: int = Field(
        1_000_000, ge=1, description="Largest result (its JSON text) returned to a client."
    )


class TestExpectation(_Model):
    """What a pack test expects of the result."""

    is_error: bool = Field(False, description="The call fails (a tool error).")
    structured: Any = Field(
        None,
        description="Expected structured content: objects match as subsets, lists item by "
        "item from the start.",
    )
    text_contains: list[str] | str | None = Field(
        None, description="Text(s) the readable result must contain."
    )


class PackTest(_Model):
    """One example call of the pack, run by ``catalyst packs test``."""

    name: str = Field(min_length=1, description="What the test shows.")
    tool: str | None = Field(None, description="Tool to call (its name within the pack).")
    read: str | None = Field(None, description="Resource URI to read (the pack's own URI).")
    prompt: str | None = Field(None, description="Prompt to get.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments.")
    expect: TestExpectation = Field(
        default_factory=lambda: TestExpectation(), description="The expected result."
    )

    @model_validator(mode="after")
    def _check(self) -> PackTest:
        if sum(x is not None for x in (self.tool, self.read, self.prompt)) != 1:
            raise ValueError("a test gives exactly one of 'tool', 'read' or 'prompt'")
        return self


class Pack(_Model):
    """One knowledge pack: connections plus the tools, resources and prompts built on them."""

    pack: PackName = Field(description="The pack's name: the namespace of everything it offers.")
    description: str | None = Field(None, description="What the pack is about.")
    connections: dict[str, Connection] = Field(
        default_factory=dict, description="Connections by name, used by tools and resources."
    )
    tools: list[ToolSpec] = Field(default_factory=list, description="Its tools.")
    resources: list[ResourceSpec] = Field(
        default_factory=list, description="Its resources and resource templates."
    )
    prompts: list[PromptSpec] = Field(default_factory=list, description="Its prompts.")
    limits: PackLimits = Field(
        default_factory=lambda: PackLimits(), description="Limits on the pack's calls."
    )
    cache: CacheField = Field(
        None,
        description="Serve the successful results of the pack's tools again for a while: "
        "{ttl, scope} (docs/cache.md); tools that declare readOnlyHint: false or "
        "destructiveHint: true are left out. Off unless given.",
    )
    tests: list[PackTest] = Field(
        default_factory=list,
        description="Example calls with expected results (catalyst packs test).",
    )
