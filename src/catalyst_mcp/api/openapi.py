"""The OpenAPI 3.1 document of a :class:`~catalyst_mcp.api.router.Router`, from its routes.

Nothing is written by hand per route: paths and methods come from the route table, path and
query parameters from the routes' path and query models, request and response bodies from their
pydantic models (whose JSON Schemas, Draft 2020-12 as OpenAPI 3.1 uses, land in
``components.schemas``). Every operation requires the ``bearerAuth`` scheme and lists the error
answers it can give, each an ``ErrorBody`` (:func:`error_components`, which the per-tool
document of :mod:`catalyst_mcp.api.toolspec` shares).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from catalyst_mcp.api.models import ErrorBody
from catalyst_mcp.api.router import Route, Router
from catalyst_mcp.security.rbac import Rule

__all__ = ["ERROR_RESPONSES", "REF", "SECURITY_SCHEMES", "error_components", "openapi_document"]

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
ERROR_RESPONSES = {
    "400": (
        "BadRequest",
        "The body is empty or not JSON; or a tool's arguments do not match its input schema "
        "(code invalid_arguments: every error is listed with its path).",
    ),
    "401": ("Unauthenticated", "No credentials, or credentials that are not valid."),
    "403": (
        "Forbidden",
        "An admin route, and the caller lacks the admin role or the key's scopes lack 'admin'; "
        "or RBAC or the key's scopes deny this tool, resource or prompt.",
    ),
    "404": ("NotFound", "No such object (or none the caller may see)."),
    "409": ("Conflict", "It already exists, is still in use, or would lock you out."),
    "413": ("TooLarge", "The body is too large."),
    "415": ("UnsupportedMediaType", "The body is not sent as application/json."),
    "422": ("Invalid", "The request is invalid: every problem is listed."),
    "429": ("RateLimited", "A rate limit is exhausted: retry after Retry-After seconds."),
    "502": ("BadGateway", "The upstream server failed the call or answered wrongly."),
    "503": (
        "Unavailable",
        "Storage or the secrets vault is off or unreachable, the upstream server is down, or "
        "the audit trail cannot take the call's record.",
    ),
    "504": ("GatewayTimeout", "The upstream server did not answer in time."),
}
_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]
OBJECT = {"type": "object"}
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (cat_...) or a JWT, as for the MCP endpoint.",
    }
}


def _error_responses() -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}
    responses: dict[str, Any] = {}
    for name, description in ERROR_RESPONSES.values():
        responses[name] = {"description": description, "content": content}
    responses["Unauthenticated"]["headers"] = {
        "WWW-Authenticate": {
            "description": "The Bearer challenge (RFC 6750).",
            "schema": {"type": "string"},
        }
    }
    responses["RateLimited"]["headers"] = {
        "Retry-After": {
            "description": "Seconds until the call may be made again.",
            "schema": {"type": "string"},
        }
    }
    return responses


def error_components() -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``ErrorBody`` schemas and the error responses (``#/components/responses/...``)."""
    _, definitions = models_json_schema([(ErrorBody, "serialization")], ref_template=REF)
    return definitions.get("$defs", {}), _error_responses()


def _schemas(routes: list[Route]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The component schemas, and a ``$ref`` per (model, mode) used as a body."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (ErrorBody, "serialization"),
        (Rule, "validation"),
    ]
    for route in routes:
        if route.body is not None:
            wanted.append((route.body, "validation"))
        if route.response is not None:
            wanted.append((route.response, "serialization"))
    unique = list(dict.fromkeys(wanted))
    refs, definitions = models_json_schema(unique, ref_template=REF)
    return definitions.get("$defs", {}), {
        f"{m.__name__}:{mode}": r for (m, mode), r in refs.items()
    }


def _parameters(
    model: type[BaseModel] | None, where: str, schemas: dict[str, Any]
) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        prop.pop("title", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if "description" in prop:
            parameter["description"] = prop.pop("description")
        parameters.append(parameter)
    return parameters


def _operation(route: Route, refs: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.action.removeprefix("admin.").replace(".", "_"),
        "summary": route.summary,
        "tags": [route.tag],
        "security": _SECURITY,
    }
    parameters = _parameters(route.path_model, "path", schemas)
    parameters += _parameters(route.query, "query", schemas)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[f"{route.body.__name__}:validation"]}},
        }
    elif route.json_object:
        operation["requestBody"] = {
            "required": False,
            "description": "The arguments by name (no body: none).",
            "content": {"application/json": {"schema": dict(route.json_schema or OBJECT)}},
        }
    success: dict[str, Any] = {"description": route.summary}
    if route.response is not None:
        schema = refs[f"{route.response.__name__}:serialization"]
        success["content"] = {"application/json": {"schema": schema}}
    elif route.status != 204:
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {str(route.status): success}
    codes = ["401", "403"]
    if route.path_model is not None:
        codes.append("404")
    if route.changes:
        codes.append("409")
    if route.body is not None or route.json_object:
        codes += ["400", "413", "415"]
    if route.body is not None or route.query is not None or route.path_model is not None:
        codes.append("422")
    codes.append("503")
    codes += route.errors
    for code in sorted(set(codes)):
        responses[code] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[code][0]}"}
    operation["responses"] = responses
    return operation


def openapi_document(
    router: Router, *, title: str, version: str, description: str = ""
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``router``."""
    schemas, refs = _schemas(router.routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in router.routes:
        item = paths.setdefault(router.full_path(route), {})
        item[route.method.lower()] = _operation(route, refs, schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "security": _SECURITY,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": _error_responses(),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
