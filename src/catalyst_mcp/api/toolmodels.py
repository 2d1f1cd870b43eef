"""What the REST API for tools reads and answers: one pydantic model per query, path and answer.

The answers carry MCP objects (tools, resources, prompts, content blocks) as the gateway lists
and relays them; the models describe them for the OpenAPI document and for clients, and only
what the gateway itself guarantees is required (an upstream may leave optional MCP fields out).
Handlers return plain dicts in these shapes: nothing is validated twice on the way out.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from catalyst_mcp.api.servermodels import ServerStatus

__all__ = [
    "ListQuery",
    "Prompt",
    "PromptArgument",
    "PromptList",
    "PromptMessage",
    "PromptPath",
    "PromptResult",
    "ReadQuery",
    "Resource",
    "ResourceContent",
    "ResourceList",
    "ResourceRead",
    "ResourceTemplate",
    "ResourceTemplateList",
    "Server",
    "ServerList",
    "Tool",
    "ToolCallResult",
    "ToolList",
    "ToolPath",
]

MAX_NAME = 2048  # as the MCP endpoint: a longer tool or prompt name, or URI, is refused

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
Json = dict[str, Any]
NEXT_CURSOR = "Pass it as `cursor` for the next page; absent on the last page."


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# ---- queries and paths ----------------------------------------------------------------------


class ListQuery(_In):
    cursor: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        None, description="The nextCursor of the previous page (none: the first page)."
    )


class ReadQuery(_In):
    uri: Name = Field(description="The resource's URI, as listed (catalyst://server/...).")


class ToolPath(_In):
    name: Name = Field(description="The tool's name, as listed (server__tool).")


class PromptPath(_In):
    name: Name = Field(description="The prompt's name, as listed (server__prompt).")


# ---- lists ----------------------------------------------------------------------------------


class Server(_Out):
    name: str = Field(description="The server's (or knowledge pack's) name.")
    namespace: str = Field(
        description="The prefix of its tool and prompt names (server__tool) and resource URIs "
        "(catalyst://server/...); empty when its names are served unchanged."
    )
    status: str = Field(
        description="ready when it can serve calls; else starting, failed, stopped, ..."
    )
    tools: int = Field(description="How many of its tools the caller may use.")
    resources: int = Field(description="How many of its resources the caller may read.")
    resourceTemplates: int = Field(description="How many of its resource templates.")
    prompts: int = Field(description="How many of its prompts the caller may get.")
    process: ServerStatus | None = Field(
        None,
        description="For administrators only: the server's process and state, as "
        "GET /servers/{name} shows it without instances (absent for knowledge packs).",
    )


class ServerList(_Out):
    servers: list[Server] = Field(
        description="The servers the caller may use something of (or that RBAC allows), by name."
    )


class Tool(_Out):
    """An MCP tool, as the MCP endpoint lists it to the same caller."""

    name: str = Field(description="The name to call it by.")
    title: str | None = None
    description: str | None = None
    inputSchema: Json = Field(description="The JSON Schema of its arguments (the call's body).")
    outputSchema: Json | None = Field(
        None, description="The JSON Schema of its structuredContent, when it declares one."
    )
    annotations: Json | None = None


class ToolList(_Out):
    tools: list[Tool]
    nextCursor: str | None = Field(None, description=NEXT_CURSOR)


class Resource(_Out):
    uri: str = Field(description="The URI to read it by.")
    name: str | None = None
    title: str | None = None
    description: str | None = None
    mimeType: str | None = None
    size: int | None = None


class ResourceList(_Out):
    resources: list[Resource]
    nextCursor: str | None = Field(None, description=NEXT_CURSOR)


class ResourceTemplate(_Out):
    uriTemplate: str = Field(description="An RFC 6570 URI template of readable resources.")
    name: str | None = None
    title: str | None = None
    description: str | None = None
    mimeType: str | None = None


class ResourceTemplateList(_Out):
    resourceTemplates: list[ResourceTemplate]
    nextCursor: str | None = Field(None, description=NEXT_CURSOR)


class PromptArgument(_Out):
    name: str
    description: str | None = None
    required: bool | None = None


class Prompt(_Out):
    name: str = Field(description="The name to get it by.")
    title: str | None = None
    description: str | None = None
    arguments: list[PromptArgument] | None = None


class PromptList(_Out):
    prompts: list[Prompt]
    nextCursor: str | None = Field(None, description=NEXT_CURSOR)


# ---- calls ----------------------------------------------------------------------------------


class ToolCallResult(_Out):
    """A tool's result. A tool error (the tool ran and failed: bad input it found, a failure it
    reports) is a 200 with ``isError: true`` and its message in ``text``, for the caller (or its
    model) to read; the gateway's own refusals and failures are HTTP errors."""

    isError: bool = Field(description="true when the tool reports an error: read text.")
    text: str = Field(
        description='Its text content blocks joined by newlines ("" when it has none).'
    )
    structuredContent: Json | None = Field(
        None,
        description="Its structured result (absent when it gives none); it matches the tool's "
        "outputSchema when the tool declares one.",
    )
    content: list[Json] = Field(
        description="Every MCP content block as the tool returned it: text, image, audio, "
        "resource_link, resource."
    )


class ResourceContent(_Out):
    uri: str
    mimeType: str | None = None
    text: str | None = Field(None, description="Text contents.")
    blob: str | None = Field(None, description="Binary contents, base64-encoded.")


class ResourceRead(_Out):
    contents: list[ResourceContent]


class PromptMessage(_Out):
    role: str = Field(description="user or assistant.")
    content: Json = Field(description="One MCP content block.")


class PromptResult(_Out):
    description: str | None = None
    messages: list[PromptMessage]
