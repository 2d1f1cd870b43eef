"""``POST /tools/{name}/call``, ``GET /resources/read``, ``POST /prompts/{name}/get``.

Each goes through the MCP endpoint's own pipeline (:meth:`Dispatcher.direct`): RBAC and key
scopes, rate limits, the audit trail (recorded as ``tools/call``, ``resources/read`` and
``prompts/get``, as for MCP clients), then the provider. A tool call's body is its arguments,
checked against the tool's input schema after admission and before the tool runs; a prompt's
are strings, the ones it requires present.

What a tool call answers (:class:`~catalyst_mcp.api.toolmodels.ToolCallResult`): a 200 for
every result the tool gives, ``isError`` true for a tool error (the caller's model can read and
act on it, as MCP clients do); the gateway's refusals and failures are HTTP errors, an upstream
server that is down a 503, one that fails otherwise a 502 or 504.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catalyst_mcp.api import toolmodels as m
from catalyst_mcp.api.router import ApiRequest, Route

if TYPE_CHECKING:
    from catalyst_mcp.protocol.dispatch import Dispatcher

__all__ = ["CallHandlers", "tool_result"]

CALL_ERRORS = ("400", "404", "413", "415", "429", "502", "503", "504")


def tool_result(result: dict[str, Any]) -> dict[str, Any]:
    """A ``tools/call`` result in the REST API's shape."""
    content = result.get("content")
    blocks: list[Any] = content if isinstance(content, list) else []
    text = "\n".join(
        block["text"]
        for block in blocks
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )
    answer: dict[str, Any] = {"isError": result.get("isError") is True, "text": text}
    structured = result.get("structuredContent")
    if isinstance(structured, dict):
        answer["structuredContent"] = structured
    answer["content"] = blocks
    return answer


class CallHandlers:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def call_tool(self, request: ApiRequest) -> dict[str, Any]:
        name = request.path_as(m.ToolPath).name
        params = {"name": name, "arguments": request.data or {}}
        result = await self.dispatcher.direct(
            "tools/call", params, request.identity, request.headers
        )
        return tool_result(result)

    async def read_resource(self, request: ApiRequest) -> dict[str, Any]:
        uri = request.query_as(m.ReadQuery).uri
        request.target = uri
        params = {"uri": uri}
        result = await self.dispatcher.direct(
            "resources/read", params, request.identity, request.headers
        )
        return {"contents": result.get("contents") or []}

    async def get_prompt(self, request: ApiRequest) -> dict[str, Any]:
        name = request.path_as(m.PromptPath).name
        params = {"name": name, "arguments": request.data or {}}
        result = await self.dispatcher.direct(
            "prompts/get", params, request.identity, request.headers
        )
        answer: dict[str, Any] = {"messages": result.get("messages") or []}
        if isinstance(result.get("description"), str):
            answer = {"description": result["description"], **answer}
        return answer

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                "/tools/{name}/call",
                self.call_tool,
                action="tools.call",
                summary="Call a tool: the body is its arguments (a JSON object)",
                tag="tools",
                path_model=m.ToolPath,
                response=m.ToolCallResult,
                admin=False,
                json_object=True,
                errors=CALL_ERRORS,
            ),
            Route(
                "GET",
                "/resources/read",
                self.read_resource,
                action="resources.read",
                summary="Read a resource",
                tag="tools",
                query=m.ReadQuery,
                response=m.ResourceRead,
                admin=False,
                errors=("400", "404", "429", "502", "503", "504"),
            ),
            Route(
                "POST",
                "/prompts/{name}/get",
                self.get_prompt,
                action="prompts.get",
                summary="Get a prompt: the body is its arguments (a JSON object of strings)",
                tag="tools",
                path_model=m.PromptPath,
                response=m.PromptResult,
                admin=False,
                json_object=True,
                json_schema={"type": "object", "additionalProperties": {"type": "string"}},
                errors=CALL_ERRORS,
            ),
        ]
