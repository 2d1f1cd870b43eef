"""The official conformance suite's fixture server, written as a Catalyst :class:`Provider`.

``@modelcontextprotocol/conformance`` tests a server that offers a fixed set of tools, resources,
prompts and a completion (its "everything server"). :class:`ConformanceFixture` is that set,
written from the suite's description (docs/conformance.md), on Catalyst's own provider interface.

It speaks the modern era (2026-07-28) only, as any provider does: tools that need the client
(sampling, elicitation, roots) return an ``InputRequiredResult`` (SEP-2322, "MRTR") and finish
when the client retries with ``inputResponses``. A legacy (2025-11-25) client reaches the same
tools through the gateway, which turns each input request into a server→client JSON-RPC request
and retries for the client (``catalyst_mcp.protocol.mrtr.satisfy_for_legacy``).

The fixture is split by concept: ``fixture_builders`` (results, input requests, the MRTR
helpers), ``fixture_tools`` (the ``TOOLS`` table and the tools every era calls),
``fixture_mrtr`` (the modern-only tools), ``fixture_resources``, ``fixture_prompts`` and
``fixture_tasks`` (the ``tasks-*`` scenarios). This module is the provider that serves them.
"""

from __future__ import annotations

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import InvalidParams, NotFound, ResourceNotFound
from catalyst_mcp.providers import ListKind, Provider

try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_builders import (  # type: ignore[import-not-found,unused-ignore]
        PNG,
        WAV,
        Json,
        StateSigner,
    )
except ImportError:
    from conformance.fixture_builders import (
        PNG,
        WAV,
        Json,
        StateSigner,
    )
try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_prompts import PROMPTS, get_prompt  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from conformance.fixture_prompts import PROMPTS, get_prompt
try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_resources import (  # type: ignore[import-not-found,unused-ignore]
        READ_TTL_MS,
        RESOURCES,
        TEMPLATE,
        read_template,
    )
except ImportError:
    from conformance.fixture_resources import (
        READ_TTL_MS,
        RESOURCES,
        TEMPLATE,
        read_template,
    )
try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_tasks import TASK_TOOLS, TaskFixtures  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from conformance.fixture_tasks import TASK_TOOLS, TaskFixtures
try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_tools import TOOLS  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from conformance.fixture_tools import TOOLS

__all__ = ["PNG", "TOOLS", "WAV", "ConformanceFixture"]


class ConformanceFixture(Provider):
    """Everything the conformance suite calls, served in-process by a Catalyst gateway."""

    def __init__(self, name: str = "conformance", namespace: str = "") -> None:
        super().__init__(name, namespace)
        self.tools = {tool.name: tool for tool in TOOLS}
        self.resources = {resource.uri: resource for resource in RESOURCES}
        self.states = StateSigner()
        self.task_fixtures = TaskFixtures()  # the tasks-* scenarios' tools and task methods

    def items(self, kind: ListKind) -> list[Json]:
        if kind == "tools":
            return [*(tool.listing() for tool in TOOLS), *TASK_TOOLS]
        if kind == "resources":
            return [resource.listing() for resource in RESOURCES]
        if kind == "resourceTemplates":
            return [TEMPLATE]
        return list(PROMPTS)

    async def call(self, method: str, params: Json, ctx: CallContext) -> Json:
        if method == "tools/call":
            return await self._call_tool(params, ctx)
        if method == "resources/read":
            return self._read(str(params.get("uri")))
        if method == "prompts/get":
            args = params.get("arguments")
            name = str(params.get("name"))
            return get_prompt(name, args if isinstance(args, dict) else {}, params, ctx)
        if method == "completion/complete":
            return {"completion": {"values": [], "total": 0, "hasMore": False}}
        if method in ("tasks/get", "tasks/update", "tasks/cancel"):
            return await self.task_fixtures.method(method, params, ctx)
        raise InvalidParams(f"{method} is not served by the conformance fixture")

    async def _call_tool(self, params: Json, ctx: CallContext) -> Json:
        name = params.get("name")
        tool = self.tools.get(name) if isinstance(name, str) else None
        args = params.get("arguments")
        if tool is None and isinstance(name, str) and self.task_fixtures.serves(name):
            arguments = args if isinstance(args, dict) else {}
            return await self.task_fixtures.call_tool(name, arguments, params, ctx)
        if tool is None:
            raise NotFound(f"Unknown tool: {name}")
        return await tool.run(self, args if isinstance(args, dict) else {}, params, ctx)

    def _read(self, uri: str) -> Json:
        resource = self.resources.get(uri)
        contents = resource.contents() if resource is not None else read_template(uri)
        if contents is None:
            raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
        return {"contents": [contents], "ttlMs": READ_TTL_MS, "cacheScope": "private"}

    @property
    def capabilities(self) -> Json:
        return {
            "tools": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": True},
            "prompts": {"listChanged": True},
            "completions": {},
            "logging": {},
        }

    def health(self) -> Json:
        return {"name": self.name, "kind": "fixture", "status": "ready", "tools": len(TOOLS)}
