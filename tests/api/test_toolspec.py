"""The per-tool OpenAPI document: one operation per tool the caller may call, shaped for Open
WebUI's OpenAPI tool servers and LibreChat actions (their import is imitated here), rebuilt
when the tools change."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator

from catalyst_mcp.api.toolspec import inline_refs, operation_id
from tests.api.conftest import (
    ADD_OUTPUT,
    ECHO_SCHEMA,
    ToolsApi,
    say_name,
    settings,
    start_tools_api,
)
from tests.fakes import tool

DOC = "/tools/openapi.json"
RECURSIVE = {
    "type": "object",
    "properties": {"tree": {"$ref": "#/$defs/Node"}},
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
        }
    },
}


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def as_functions(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What Open WebUI and LibreChat make of the document: a function per operation with an
    operationId, its parameters the request body's properties (a ``$ref`` they resolve only
    within ``#/components/``), called as ``servers[0].url + path`` with the arguments as the
    JSON body."""
    components = document["components"]
    functions = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            if "$ref" in schema:
                assert schema["$ref"].startswith("#/components/")
                schema = resolve({"components": components}, schema["$ref"])
            functions[operation["operationId"]] = {
                "description": operation.get("description", operation.get("summary")),
                "parameters": {
                    "type": "object",
                    "properties": schema.get("properties", {}),
                    "required": schema.get("required", []),
                },
                "method": method,
                "url": document["servers"][0]["url"].rstrip("/") + path,
            }
    return functions


async def test_one_operation_per_tool_the_caller_may_call(tools_api: ToolsApi) -> None:
    response = await tools_api.call("GET", DOC, token="bob", headers={"host": "127.0.0.1:8765"})
    assert response.status == 200
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    assert document["servers"] == [{"url": "http://127.0.0.1:8765"}]
    assert list(document["paths"]) == [
        "/api/v1/tools/fake__echo/call",
        "/api/v1/tools/fake__add/call",
    ]
    echo = document["paths"]["/api/v1/tools/fake__echo/call"]["post"]
    assert (echo["operationId"], echo["summary"], echo["description"]) == (
        "fake__echo",
        "Echo text back.",
        "Echo text back.\nSeveral times.",
    )
    assert echo["tags"] == ["fake"]
    assert echo["requestBody"]["content"]["application/json"]["schema"] == ECHO_SCHEMA
    assert {"200", "400", "401", "403", "404", "429", "502", "503", "504"} <= set(echo["responses"])
    add = document["paths"]["/api/v1/tools/fake__add/call"]["post"]
    assert add["summary"] == "Add two integers"
    result = add["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["allOf"][1]["properties"]["structuredContent"] == ADD_OUTPUT
    root = (await tools_api.call("GET", DOC)).json()
    assert "/api/v1/tools/other__secret/call" in root["paths"]
    assert (await tools_api.call("GET", DOC, token="carol")).json()["paths"] == {}
    assert (await tools_api.call("GET", DOC, token=None)).status == 401


async def test_the_document_is_valid_and_self_contained(tools_api: ToolsApi) -> None:
    tools_api.fake.set_items(
        "tools",
        [
            *tools_api.fake.lists["tools"],
            tool("tree", inputSchema=RECURSIVE, outputSchema=RECURSIVE),
        ],
    )
    document = (await tools_api.call("GET", DOC)).json()
    for ref in refs(document):
        assert ref.startswith("#/components/"), ref
        assert resolve(document, ref) is not None, ref
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    # a schema with $defs is inlined: clients that resolve nothing still see every field
    nested = document["paths"]["/api/v1/tools/fake__nested/call"]["post"]
    body = nested["requestBody"]["content"]["application/json"]["schema"]
    assert "$defs" not in body and not refs(body)
    assert body["properties"]["at"]["required"] == ["x", "y"]
    assert body["properties"]["path"]["items"]["properties"]["x"] == {"type": "number"}
    # one that refers to itself keeps its references, rebased into the components
    tree = document["paths"]["/api/v1/tools/fake__tree/call"]["post"]
    ref = tree["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    stored = resolve(document, ref)
    assert stored["properties"]["tree"]["$ref"] == ref + "/$defs/Node"
    node = resolve(document, stored["properties"]["tree"]["$ref"])
    assert node["properties"]["children"]["items"]["$ref"] == ref + "/$defs/Node"


async def test_every_operation_can_be_called_as_clients_call_it(tools_api: ToolsApi) -> None:
    tools_api.fake.handler = say_name
    tools_api.fake.set_items(
        "tools", [tool("lookup.by/name", description="Find."), *tools_api.fake.lists["tools"]]
    )
    document = (await tools_api.call("GET", DOC, headers={"host": "localhost"})).json()
    functions = as_functions(document)
    odd = operation_id("fake__lookup.by/name")
    assert odd in functions
    assert functions[odd]["url"] == "http://localhost/api/v1/tools/fake__lookup.by%2Fname/call"
    arguments = {
        "fake__echo": {"text": "hi"},
        "fake__add": {"a": 1, "b": 2},
        "fake__nested": {"at": {"x": 0, "y": 1}},
    }
    for name, function in functions.items():
        if name not in ("fake__echo", "fake__add", "fake__nested", "fake__oops", odd):
            continue
        path = urlsplit(function["url"]).path.removeprefix("/api/v1")
        response = await tools_api.call("POST", path, arguments.get(name, {}))
        assert response.status == 200, (name, response.body)
    assert functions["fake__add"]["parameters"]["required"] == ["a", "b"]


def test_operation_ids_are_function_names() -> None:
    assert operation_id("crm__find_customer") == "crm__find_customer"
    odd = operation_id("crm__find.customer/by name")
    assert odd.startswith("crm__find_customer_by_name_")
    assert odd == operation_id("crm__find.customer/by name")  # stable
    assert odd != operation_id("crm__find_customer/by.name")  # and unique
    long = operation_id("x" * 100)
    assert len(long) == 64
    assert long != operation_id("x" * 101)
    for name in ("a.b", "ü", "x" * 200, "a b/c"):
        assert all(c.isascii() and (c.isalnum() or c in "_-") for c in operation_id(name))
        assert len(operation_id(name)) <= 64


def test_inlining() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A", "description": "the a"},
            "b": {"$ref": "#/definitions/B", "minLength": 2},
            "c": {"$ref": "https://example.com/c.json"},
            "d": {"$ref": "#/$defs/Missing"},
        },
        "$defs": {"A": {"type": "integer", "description": "an A"}},
        "definitions": {"B": {"type": "string"}},
    }
    assert inline_refs(schema) == {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "the a"},
            "b": {"allOf": [{"type": "string"}], "minLength": 2},
            "c": {"$ref": "https://example.com/c.json"},
            "d": {"$ref": "#/$defs/Missing"},
        },
    }
    assert inline_refs(RECURSIVE) is None
    assert inline_refs({"type": "object", "properties": {"me": {"$ref": "#"}}}) is None


async def test_the_document_follows_the_tools(tools_api: ToolsApi) -> None:
    before = (await tools_api.call("GET", DOC)).json()
    assert "/api/v1/tools/fake__echo/call" in before["paths"]
    tools_api.fake.set_items("tools", [tool("echo", description="Say it again.")])
    after = (await tools_api.call("GET", DOC)).json()
    assert list(after["paths"]) == [
        "/api/v1/tools/fake__echo/call",
        "/api/v1/tools/other__secret/call",
    ]
    echo = after["paths"]["/api/v1/tools/fake__echo/call"]["post"]
    assert echo["description"] == "Say it again."


@pytest.mark.parametrize("url", ["https://mcp.example.com/mcp", "https://mcp.example.com:8443/x"])
async def test_the_public_url_names_the_server(tmp_path: Path, url: str) -> None:
    api = await start_tools_api(settings(tmp_path, auth={"resource_url": url}))
    try:
        document = (await api.call("GET", DOC, headers={"host": "localhost:9"})).json()
        split = urlsplit(url)
        assert document["servers"] == [{"url": f"{split.scheme}://{split.netloc}"}]
    finally:
        await api.gateway.stop()
