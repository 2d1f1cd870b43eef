"""OpenAPI 3.0/3.1 documents become valid packs: connection, auth, one tool per operation, and
every skipped operation or approximation reported."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalyst_mcp.errors import ConfigError
from catalyst_mcp.packs.loader import load_pack
from catalyst_mcp.packs.openapi import Conversion, convert, load_spec, pack_name_from, to_yaml
from tests.conftest import FIXTURES

SPECS = FIXTURES / "openapi"
TRACKER = SPECS / "tracker.yaml"
PETSTORE = SPECS / "petstore-3.1.json"


def tools_of(conv: Conversion) -> dict[str, dict[str, Any]]:
    return {tool["name"]: tool for tool in conv.pack["tools"]}


def minimal(**extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "Mini", "version": "1"},
        "servers": [{"url": "https://mini.example.com"}],
        "paths": {"/ping": {"get": {"operationId": "ping", "responses": {}}}},
    }
    spec.update(extra)
    return spec


@pytest.fixture(scope="module")
def tracker() -> Conversion:
    return convert(load_spec(TRACKER), source=str(TRACKER))


def test_tracker_connection_and_auth(tracker: Conversion) -> None:
    assert tracker.pack["pack"] == "tracker-api"
    assert tracker.pack["description"] == (
        "Tracker API 2.1.0: Issues and comments of a small tracker."
    )
    assert tracker.pack["connections"] == {
        "api": {
            "type": "rest",
            "base_url": "https://demo.tracker.example.com/api/v2",  # server variables' defaults
            "auth": {"type": "bearer", "token": "${env:TRACKER_API_TOKEN}"},
        }
    }
    assert tracker.env == {"TRACKER_API_TOKEN": "bearer token (security scheme 'bearerAuth')"}


def test_tracker_tools(tracker: Conversion) -> None:
    tools = tools_of(tracker)
    assert list(tools) == [
        "list_issues",
        "create_issue",
        "get_issue",
        "delete_issue",
        "update_issue",
        "list_issue_comments",
        "post_issues_number_comments",  # no operationId: method and path
        "list_issues_2",  # a duplicate operationId made unique
    ]
    listing = tools["list_issues"]
    assert listing["title"] == "List issues"
    assert listing["description"] == "List issues\n\nIssues of the tracker, newest first."
    assert listing["annotations"] == {"readOnlyHint": True, "openWorldHint": True}
    assert listing["parameters"] == {
        "state": {  # a $ref'd parameter whose schema is a $ref'd enum
            "type": "string",
            "default": "open",
            "description": "Which issues.",
            "enum": ["open", "closed", "all"],
        },
        "labels": {
            "type": "array",
            "description": "Only issues with all of these labels.",
            "items": {"type": "string", "maxLength": 50},
            "maxItems": 10,
        },
        "per_page": {"type": "integer", "default": 30, "minimum": 1, "maximum": 100},
        "sort": {
            "type": "string",
            "default": "created",
            "enum": ["created", "updated", "comments"],
        },
        "X_Request_ID": {"type": "string", "description": "(format: uuid)"},
    }
    assert listing["rest"] == {
        "connection": "api",
        "method": "GET",
        "path": "/issues",
        "query": {
            "state": "{state}",
            "labels": "{labels}",
            "per_page": "{per_page}",
            "sort": "{sort}",
        },
        "headers": {"X-Request-ID": "{X_Request_ID}"},  # Accept is not a parameter
    }


def test_tracker_bodies(tracker: Conversion) -> None:
    tools = tools_of(tracker)
    create = tools["create_issue"]
    assert create["annotations"] == {
        "readOnlyHint": False,
        "destructiveHint": False,
        "idempotentHint": False,
        "openWorldHint": True,
    }
    assert create["parameters"] == {  # readOnly id left out; a body default only described
        "title": {
            "type": "string",
            "required": True,
            "description": "One line.",
            "minLength": 1,
            "maxLength": 200,
        },
        "body": {"type": "string", "description": "Markdown text."},
        "labels": {"type": "array", "items": {"type": "string"}},
        "priority": {
            "type": "integer",
            "description": "(API default: 3)",
            "minimum": 1,
            "maximum": 5,
        },
        "assignee": {"type": "object"},
    }
    assert create["rest"]["body"] == {
        "title": "{title}",
        "body": "{body}",
        "labels": "{labels}",
        "priority": "{priority}",
        "assignee": "{assignee}",
    }
    update = tools["update_issue"]
    assert update["rest"]["headers"] == {"Content-Type": "application/merge-patch+json"}
    assert "default" not in update["parameters"]["state"]  # a PATCH must not reset the state
    assert update["parameters"]["number"]["required"] is True  # from the path-level parameters
    assert update["annotations"]["destructiveHint"] is True
    comment = tools["post_issues_number_comments"]
    assert comment["parameters"]["body"] == {
        "type": "array",
        "required": True,
        "items": {"type": "string"},
    }
    assert comment["rest"]["body"] == "{body}"  # an array body is one parameter
    delete = tools["delete_issue"]
    assert delete["description"].endswith("(deprecated)")
    assert delete["annotations"]["idempotentHint"] is True


def test_tracker_skips_and_notes(tracker: Conversion) -> None:
    assert tracker.skipped == [
        "TRACE /issues/{number}/comments: TRACE is not supported",
        "POST /issues/{number}/attachments: the request body is multipart/form-data "
        "(only JSON bodies are supported)",
    ]
    assert tracker.notes == [
        "GET /issues: query parameter 'filter' left out: an object in the query cannot be sent",
        "POST /issues: body property 'watchers' left out: an array of objects or arrays cannot "
        "be declared",
        "POST /issues: body property 'loop' left out: $ref #/components/schemas/Loop is part of "
        "a cycle",
    ]


def test_tracker_output_passes_validation(
    tracker: Conversion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "tracker.yaml"
    file.write_text(to_yaml(tracker), encoding="utf-8")
    loaded = load_pack(file, {"TRACKER_API_TOKEN": "t"})
    assert [t.name for t in loaded.pack.tools] == list(tools_of(tracker))
    with pytest.raises(ConfigError, match="TRACKER_API_TOKEN is not set"):
        load_pack(file, {})


def test_yaml_is_commented_and_round_trips(tracker: Conversion) -> None:
    text = to_yaml(tracker)
    assert text.startswith("# Generated by `catalyst packs from-openapi` from tracker.yaml")
    assert "#   TRACKER_API_TOKEN  bearer token (security scheme 'bearerAuth')" in text
    assert "# GET /issues/{number} (getIssue)\n- name: get_issue\n" in text
    assert "  annotations: {readOnlyHint: true, openWorldHint: true}\n" in text
    assert yaml.safe_load(text) == tracker.pack


def test_openapi_31(tmp_path: Path) -> None:
    conv = convert(load_spec(PETSTORE), source=str(PETSTORE))
    api = conv.pack["connections"]["api"]
    assert api["base_url"] == "http://localhost/v1"  # relative server URL
    assert api["allow_private_network"] is True
    assert api["auth"] == {  # the scheme `security` names, not the first declared
        "type": "api_key",
        "name": "X-API-Key",
        "in": "header",
        "value": "${env:PETSTORE_API_KEY}",
    }
    tools = tools_of(conv)
    assert tools["list_pets"]["parameters"] == {
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},  # [integer, null], exclusive
        "kind": {"type": "string"},  # anyOf string|integer in the query: text on the wire
        "tag": {"type": "string", "enum": ["cute"]},  # const
    }
    assert tools["create_pet"]["parameters"] == {
        "name": {"type": "string", "required": True},
        "tag": {"type": "string"},
        "status": {"type": "string", "enum": ["available", "sold"]},
        "weight": {"type": "number", "minimum": 0},
    }
    assert tools["show_pet_by_id"]["parameters"]["petId"]["pattern"] == "^[a-z0-9-]+$"
    assert tools["replace_pet"]["rest"]["body"] == "{body}"  # a free-form object body
    assert conv.notes[-1] == (
        "POST /pets: body property 'owner' left out: its schema mixes types or has none"
    )
    file = tmp_path / "pets.yaml"
    file.write_text(to_yaml(conv), encoding="utf-8")
    load_pack(file, {"PETSTORE_API_KEY": "k"})
    assert "allow_private_network is on because" in file.read_text()


@pytest.mark.parametrize(
    ("op_id", "method", "path", "name"),
    [
        ("listIssues", "get", "/x", "list_issues"),
        ("HTTPServerList", "get", "/x", "http_server_list"),
        ("get-pet-by-id", "get", "/x", "get_pet_by_id"),
        ("pets.list", "get", "/x", "pets_list"),
        ("__weird__Name__", "get", "/x", "weird_name"),
        (None, "delete", "/users/{user-id}/keys", "delete_users_user_id_keys"),
        ("x" * 80, "get", "/x", "x" * 64),
        ("!!!", "get", "/", "get"),
    ],
    ids=["camel", "acronym", "kebab", "dotted", "underscores", "no-id", "long", "symbols"],
)
def test_tool_names(op_id: str | None, method: str, path: str, name: str) -> None:
    op: dict[str, Any] = {"responses": {}}
    if op_id is not None:
        op["operationId"] = op_id
    conv = convert(minimal(paths={path: {method: op}}))
    assert [t["name"] for t in conv.pack["tools"]] == [name]


def test_unique_names_stay_within_64_characters() -> None:
    paths = {f"/p{i}": {"get": {"operationId": "y" * 70, "responses": {}}} for i in range(3)}
    names = [t["name"] for t in convert(minimal(paths=paths)).pack["tools"]]
    assert names == ["y" * 64, "y" * 62 + "_2", "y" * 62 + "_3"]


def test_parameter_names_made_valid_and_unique() -> None:
    op = {
        "operationId": "update",
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
            {"name": "page[size]", "in": "query", "schema": {"type": "integer"}},
            {"name": "2fa", "in": "header", "schema": {"type": "string"}},
        ],
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": {"id": {"type": "string"}}}
                }
            }
        },
        "responses": {},
    }
    [tool] = convert(minimal(paths={"/things/{id}": {"put": op}})).pack["tools"]
    assert list(tool["parameters"]) == ["id", "page_size", "p_2fa", "body_id"]
    assert tool["rest"]["path"] == "/things/{id}"
    assert tool["rest"]["query"] == {"page[size]": "{page_size}"}
    assert tool["rest"]["headers"] == {"2fa": "{p_2fa}"}
    assert tool["rest"]["body"] == {"id": "{body_id}"}


@pytest.mark.parametrize(
    ("scheme", "auth", "env"),
    [
        (
            {"type": "http", "scheme": "basic"},
            {
                "type": "basic",
                "username": "${env:MINI_USERNAME}",
                "password": "${env:MINI_PASSWORD}",
            },
            ["MINI_USERNAME", "MINI_PASSWORD"],
        ),
        (
            {"type": "apiKey", "in": "query", "name": "key"},
            {"type": "api_key", "name": "key", "in": "query", "value": "${env:MINI_API_KEY}"},
            ["MINI_API_KEY"],
        ),
        (
            {
                "type": "oauth2",
                "flows": {
                    "clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {"b": "", "a": ""}}
                },
            },
            {
                "type": "oauth2_client_credentials",
                "token_url": "https://mini.example.com/oauth/token",
                "client_id": "${env:MINI_CLIENT_ID}",
                "client_secret": "${env:MINI_CLIENT_SECRET}",
                "scopes": ["a", "b"],
            },
            ["MINI_CLIENT_ID", "MINI_CLIENT_SECRET"],
        ),
    ],
    ids=["basic", "api-key-in-query", "oauth2-client-credentials"],
)
def test_auth_schemes(scheme: dict[str, Any], auth: dict[str, Any], env: list[str]) -> None:
    conv = convert(minimal(components={"securitySchemes": {"s": scheme}}))
    assert conv.pack["connections"]["api"]["auth"] == auth
    assert list(conv.env) == env


def test_unsupported_auth_is_noted() -> None:
    schemes = {
        "oidc": {"type": "openIdConnect", "openIdConnectUrl": "https://x"},
        "code": {"type": "oauth2", "flows": {"authorizationCode": {}}},
    }
    conv = convert(minimal(components={"securitySchemes": schemes}))
    assert "auth" not in conv.pack["connections"]["api"]
    assert [n.split(":")[0] for n in conv.notes] == [
        "security scheme 'oidc' left out",
        "security scheme 'code' left out",
    ]


def test_options(tmp_path: Path) -> None:
    conv = convert(
        load_spec(TRACKER),
        name="tracker",
        base_url="http://10.0.0.5:8080/api/",
        include_tags=("comments",),
    )
    assert conv.pack["pack"] == "tracker"
    assert conv.pack["connections"]["api"]["base_url"] == "http://10.0.0.5:8080/api"
    assert conv.pack["connections"]["api"]["allow_private_network"] is True
    assert [t["name"] for t in conv.pack["tools"]] == [
        "list_issue_comments",
        "post_issues_number_comments",
    ]
    assert "8 operation(s) without the tag(s) comments left out" in conv.notes


def test_refs_cycles_and_external_refs() -> None:
    op = {
        "operationId": "op",
        "parameters": [
            {"$ref": "#/components/parameters/Missing"},
            {"name": "ext", "in": "query", "schema": {"$ref": "other.yaml#/X"}},
        ],
        "responses": {},
    }
    required_external = {
        "operationId": "needs",
        "parameters": [
            {"name": "ext", "in": "query", "required": True, "schema": {"$ref": "other.yaml#/X"}}
        ],
        "responses": {},
    }
    spec = minimal(paths={"/a": {"get": op}, "/b": {"get": required_external}})
    conv = convert(spec)
    assert conv.skipped[0] == "GET /a: $ref #/components/parameters/Missing points to nothing"
    del op["parameters"][0]
    conv = convert(spec)
    assert [t["name"] for t in conv.pack["tools"]] == ["op"]
    assert conv.notes == [
        "GET /a: query parameter 'ext' left out: $ref 'other.yaml#/X' is not inside the document"
    ]
    assert conv.skipped == [
        "GET /b: required query parameter 'ext': $ref 'other.yaml#/X' is not inside the document"
    ]


def test_an_undeclared_path_variable_is_a_string() -> None:
    conv = convert(minimal(paths={"/a/{id}": {"get": {"operationId": "a", "responses": {}}}}))
    assert conv.pack["tools"][0]["parameters"] == {"id": {"type": "string", "required": True}}
    assert conv.notes == ["GET /a/{id}: path variable {id} is not declared: read as a string"]


def test_defaults_the_pack_would_refuse_are_dropped() -> None:
    params = [
        {"name": "n", "in": "query", "schema": {"type": "integer", "minimum": 5, "default": 1}},
        {"name": "s", "in": "query", "schema": {"type": "string", "enum": ["a"], "default": "b"}},
        {
            "name": "r",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "default": "x"},
        },
    ]
    op = {"operationId": "op", "parameters": params, "responses": {}}
    [tool] = convert(minimal(paths={"/a": {"get": op}})).pack["tools"]
    assert tool["parameters"] == {
        "n": {"type": "integer", "minimum": 5},
        "s": {"type": "string", "enum": ["a"]},
        "r": {"type": "string", "required": True},
    }


def test_optional_non_json_body_is_left_out() -> None:
    op = {
        "operationId": "upload",
        "requestBody": {"content": {"application/octet-stream": {}}},
        "responses": {},
    }
    conv = convert(minimal(paths={"/a": {"post": op}}))
    assert "body" not in conv.pack["tools"][0]["rest"]
    assert conv.notes == ["POST /a: the optional application/octet-stream request body is left out"]


def test_server_variable_without_default() -> None:
    spec = minimal(servers=[{"url": "https://{region}.example.com", "variables": {"region": {}}}])
    with pytest.raises(ConfigError, match=r"server variable \{region\} has no default"):
        convert(spec)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"swagger": "2.0", "info": {}}', "Swagger 2.0 is not supported"),
        ("openapi: 2.5.0\n", "only 3.0 and 3.1 are read"),
        ("- a list\n", "an OpenAPI document is a mapping"),
        ("{not json", "not valid JSON or YAML"),
    ],
    ids=["swagger-2", "wrong-version", "not-a-mapping", "broken"],
)
def test_unusable_documents(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "spec.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_spec(path)


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("Swagger Petstore - OpenAPI 3.0", "swagger-petstore-openapi-3-0"),
        ("GitHub v3 REST API", "github-v3-rest-api"),
        ("???", "api"),
        ("A very long title with many many words in it", "a-very-long-title-with-many-many"),
    ],
)
def test_pack_names(title: str, name: str) -> None:
    assert pack_name_from(title) == name


def test_conversion_does_not_change_the_document() -> None:
    spec = yaml.safe_load(TRACKER.read_text())
    before = copy.deepcopy(spec)
    convert(spec)
    assert spec == before
