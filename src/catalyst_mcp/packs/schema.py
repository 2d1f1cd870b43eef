"""The knowledge-pack file format, as pydantic models (docs/packs.md walks through it).

One YAML file is one :class:`Pack`. Models only check shape and single values; what needs the
whole pack (a tool naming a declared connection, a statement's ``:name`` binds being declared
parameters) is checked by :mod:`catalyst_mcp.packs.loader`, so every problem is reported at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from catalyst_mcp.settings import SERVER_NAME

__all__ = [
    "Pack",
    "ParamSpec",
    "PromptArgument",
    "PromptMessage",
    "PromptSpec",
    "ResourceSpec",
    "SqlAction",
    "SqlConnection",
    "ToolAnnotations",
    "ToolSpec",
]

TOOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TEMPLATE_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


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

    type: Literal["sql"] = Field(description="Connection kind: 'sql' (REST is coming).")
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


class ParamSpec(_Model):
    """One tool parameter; together they become the tool's MCP ``inputSchema``."""

    type: Literal["string", "integer", "number", "boolean"] = Field(
        description="JSON type of the value."
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

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.required and self.default is not None:
            raise ValueError("a required parameter cannot have a default")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        numeric = self.type in ("integer", "number")
        if not numeric and (self.minimum is not None or self.maximum is not None):
            raise ValueError("minimum/maximum apply to integer and number parameters only")
        text = self.minLength, self.maxLength, self.pattern
        if self.type != "string" and any(v is not None for v in text):
            raise ValueError("minLength/maxLength/pattern apply to string parameters only")
        return self


class SqlAction(_Model):
    """A SQL statement run on a declared connection; values are always bound parameters."""

    connection: str = Field(description="Name of a connection declared under `connections:`.")
    statement: str = Field(
        min_length=1,
        description="One SQL statement. Parameters appear as :name and are bound, never "
        "formatted into the text.",
    )
    max_rows: int = Field(100, ge=1, le=10_000, description="Rows returned at most.")


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
    sql: SqlAction = Field(description="The SQL action the tool runs.")


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
    sql: SqlAction | None = Field(
        None, description="A query whose rows (as JSON) are the contents; {variables} bind."
    )
    parameters: dict[str, ParamSpec] = Field(
        default_factory=dict,
        description="Types of a template's variables (default: string), e.g. id: integer.",
    )

    @model_validator(mode="after")
    def _check(self) -> ResourceSpec:
        if (self.uri is None) == (self.uri_template is None):
            raise ValueError("give either 'uri' or 'uri_template'")
        if (self.text is None) == (self.sql is None):
            raise ValueError("give either 'text' or 'sql' as the contents")
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


class Pack(_Model):
    """One knowledge pack: connections plus the tools, resources and prompts built on them."""

    pack: PackName = Field(description="The pack's name: the namespace of everything it offers.")
    description: str | None = Field(None, description="What the pack is about.")
    connections: dict[str, SqlConnection] = Field(
        default_factory=dict, description="Connections by name, used by tools and resources."
    )
    tools: list[ToolSpec] = Field(default_factory=list, description="Its tools.")
    resources: list[ResourceSpec] = Field(
        default_factory=list, description="Its resources and resource templates."
    )
    prompts: list[PromptSpec] = Field(default_factory=list, description="Its prompts.")
