"""The admin API's router on its own: matching, 404/405, query and body parsing, error mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from catalyst_mcp.api.router import ApiError, ApiRequest, Problem, Route, Router, api_error
from catalyst_mcp.context import Identity
from catalyst_mcp.errors import (
    AuditUnavailable,
    CatalystError,
    ConfigError,
    ConfigProblem,
    Conflict,
    Forbidden,
    InvalidArguments,
    InvalidParams,
    Missing,
    NotFound,
    RateLimited,
    ResourceNotFound,
    StorageError,
    Unauthenticated,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from catalyst_mcp.transports.asgi import ClientGone


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemPath(Strict):
    item: str = Field(min_length=2)


class Listing(Strict):
    limit: int = Field(10, ge=1, le=100)
    tag: str | None = None


class Body(Strict):
    name: str = Field(min_length=1, max_length=10)
    count: int
    password: SecretStr | None = None


async def nothing(request: ApiRequest) -> None:
    return None


def route(method: str, path: str, **extra: Any) -> Route:
    return Route(method, path, nothing, action=f"t.{method.lower()}", summary="", tag="t", **extra)


ROUTES = [
    route("GET", "/items", query=Listing),
    route("POST", "/items", body=Body),
    route("GET", "/items/{item}", path_model=ItemPath),
    route("DELETE", "/items/{item}", path_model=ItemPath),
    route("GET", "/items/special"),
    route("POST", "/items/{item}/call", path_model=ItemPath, json_object=True),
]


@pytest.fixture
def router() -> Router:
    return Router("/api/v1", ROUTES, max_body=1024)


def receiver(*chunks: bytes, gone: bool = False) -> Any:
    queue = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    if gone:
        queue = [{"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def request_for(
    router: Router, method: str, path: str, headers: Mapping[bytes, bytes] | None = None
) -> ApiRequest:
    found, params = router.find(method, path)
    return ApiRequest(found, Identity(), params, dict(headers or {}))


JSON = {b"content-type": b"application/json"}


# ---- matching ----------------------------------------------------------------------------------


def test_static_and_parameter_segments(router: Router) -> None:
    found, params = router.find("GET", "/api/v1/items/abc")
    assert (found.path, params) == ("/items/{item}", {"item": "abc"})
    found, params = router.find("GET", "/api/v1/items")
    assert (found.path, params) == ("/items", {})


def test_a_literal_segment_beats_a_parameter(router: Router) -> None:
    assert router.find("GET", "/api/v1/items/special")[0].path == "/items/special"
    assert router.find("DELETE", "/api/v1/items/special")[1] == {"item": "special"}


def test_parameters_are_percent_decoded_within_their_segment(router: Router) -> None:
    assert router.find("GET", "/api/v1/items/a%2Fb%20c")[1] == {"item": "a/b c"}


def test_a_trailing_slash_is_the_same_path(router: Router) -> None:
    assert router.find("GET", "/api/v1/items/")[0].path == "/items"


@pytest.mark.parametrize(
    "path", ["/api/v1", "/api/v1/nothing", "/api/v1/items/a/b", "/api/v2/items", "/api/v1items"]
)
def test_unknown_paths_are_404(router: Router, path: str) -> None:
    with pytest.raises(ApiError) as caught:
        router.find("GET", path)
    assert (caught.value.status, caught.value.error_code) == (404, "not_found")


def test_a_wrong_method_is_405_with_allow(router: Router) -> None:
    with pytest.raises(ApiError) as caught:
        router.find("PUT", "/api/v1/items/abc")
    error = caught.value
    assert (error.status, error.error_code) == (405, "method_not_allowed")
    assert error.headers == [(b"allow", b"DELETE, GET")]
    with pytest.raises(ApiError) as caught:
        router.find("PATCH", "/api/v1/items")
    assert caught.value.headers == [(b"allow", b"GET, POST")]


def test_duplicate_routes_are_refused() -> None:
    same = route("GET", "/a/{item}", path_model=ItemPath)
    with pytest.raises(ValueError, match="two routes"):
        Router("/x", [same, same])


def test_a_path_model_must_fit_the_template() -> None:
    with pytest.raises(ValueError, match="path_model"):
        Router("/x", [route("GET", "/a/{other}", path_model=ItemPath)])
    with pytest.raises(ValueError, match="path_model"):
        Router("/x", [route("GET", "/a/{item}")])


def test_route_parameter_names() -> None:
    assert route("GET", "/a/{one}/b/{two}").param_names == ("one", "two")


# ---- parsing -----------------------------------------------------------------------------------


async def test_path_and_query_are_validated(router: Router) -> None:
    request = request_for(router, "GET", "/api/v1/items/abc")
    await router.parse(request, {"query_string": b""}, receiver())
    assert request.path_as(ItemPath).item == "abc"
    listing = request_for(router, "GET", "/api/v1/items")
    await router.parse(listing, {"query_string": b"limit=5&tag=a%20b"}, receiver())
    assert listing.query_as(Listing) == Listing(limit=5, tag="a b")


async def test_query_problems_are_all_listed(router: Router) -> None:
    request = request_for(router, "GET", "/api/v1/items")
    with pytest.raises(ApiError) as caught:
        await router.parse(request, {"query_string": b"limit=0&tag=a&tag=b&typo=1"}, receiver())
    error = caught.value
    assert error.status == 422
    locations = [p.location for p in error.problems]
    assert locations == ["query.tag", "query.limit", "query.typo"]
    assert error.message == "invalid request: 3 problems"


async def test_a_route_without_a_query_model_refuses_a_query(router: Router) -> None:
    request = request_for(router, "GET", "/api/v1/items/abc")
    with pytest.raises(ApiError) as caught:
        await router.parse(request, {"query_string": b"x=1"}, receiver())
    assert [p.location for p in caught.value.problems] == ["query"]


async def test_path_problems_are_422(router: Router) -> None:
    request = request_for(router, "GET", "/api/v1/items/a")
    with pytest.raises(ApiError) as caught:
        await router.parse(request, {}, receiver())
    assert caught.value.status == 422
    assert caught.value.problems[0].location == "path.item"


async def test_a_json_body_in_several_chunks(router: Router) -> None:
    request = request_for(router, "POST", "/api/v1/items", JSON)
    await router.parse(request, {}, receiver(b'{"name": "a",', b' "count": 2}'))
    assert request.body_as(Body) == Body(name="a", count=2)
    with pytest.raises(TypeError):
        request.query_as(Listing)


async def test_every_body_problem_is_listed_and_no_value_repeated(router: Router) -> None:
    request = request_for(router, "POST", "/api/v1/items", JSON)
    body = orjson.dumps({"name": "x" * 11, "count": "many", "password": 5, "extra": "hunter2"})
    with pytest.raises(ApiError) as caught:
        await router.parse(request, {}, receiver(body))
    error = caught.value
    assert error.status == 422
    assert {p.location for p in error.problems} == {
        "body.name",
        "body.count",
        "body.password",
        "body.extra",
    }
    assert b"hunter2" not in orjson.dumps(error.to_json())
    assert error.to_json()["error"]["code"] == "invalid"


@pytest.mark.parametrize(
    ("headers", "chunks", "status"),
    [
        ({}, [b"{}"], 415),
        ({b"content-type": b"text/plain"}, [b"{}"], 415),
        (JSON, [b""], 400),
        (JSON, [b"{not json"], 400),
        (JSON, [b"[1, 2]"], 422),
        (JSON, [b"x" * 1025], 413),
        (JSON, [b"x" * 600, b"x" * 600], 413),
        ({**JSON, b"content-length": b"5000"}, [b"{}"], 413),
    ],
    ids=["no-type", "text", "empty", "not-json", "not-object", "large", "large-chunks", "declared"],
)
async def test_bad_bodies(
    router: Router, headers: dict[bytes, bytes], chunks: list[bytes], status: int
) -> None:
    request = request_for(router, "POST", "/api/v1/items", headers)
    with pytest.raises(ApiError) as caught:
        await router.parse(request, {}, receiver(*chunks))
    assert caught.value.status == status


async def test_json_with_a_charset_is_json(router: Router) -> None:
    request = request_for(
        router, "POST", "/api/v1/items", {b"content-type": b"application/json; charset=utf-8"}
    )
    await router.parse(request, {}, receiver(b'{"name": "a", "count": 1}'))
    assert request.body_as(Body).count == 1


async def test_a_client_gone_before_its_body_arrived(router: Router) -> None:
    request = request_for(router, "POST", "/api/v1/items", JSON)
    with pytest.raises(ClientGone):
        await router.parse(request, {}, receiver(gone=True))


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (Missing("no user named 'x'"), 404, "not_found"),
        (Conflict("exists"), 409, "conflict"),
        (StorageError("cannot connect to db"), 503, "unavailable"),
        (Unauthenticated("who are you"), 401, "unauthenticated"),
        (Forbidden("Forbidden: no"), 403, "forbidden"),
        (CatalystError("a failure for clients"), 500, "internal"),
        (NotFound("Unknown tool: x"), 404, "not_found"),
        (ResourceNotFound("Resource not found: x"), 404, "not_found"),
        (InvalidParams("Invalid cursor"), 400, "bad_request"),
        (AuditUnavailable("the audit trail cannot be written"), 503, "unavailable"),
        (UpstreamUnavailable("crm", "crm is unavailable (failed)"), 503, "unavailable"),
        (UpstreamTimeout("crm", "crm did not answer within 30s"), 504, "gateway_timeout"),
        (UpstreamProtocolError("crm", "crm answered nonsense"), 502, "bad_gateway"),
    ],
)
def test_errors_map_to_statuses(error: Exception, status: int, code: str) -> None:
    answer = api_error(error)
    assert (answer.status, answer.error_code) == (status, code)
    assert answer.to_json() == {"error": {"code": code, "message": str(error)}}


def test_a_config_error_lists_each_problem() -> None:
    error = ConfigError([ConfigProblem("roles", None, "one"), ConfigProblem("roles", None, "two")])
    answer = api_error(error)
    assert answer.status == 422
    assert answer.problems == [Problem("body", "one"), Problem("body", "two")]


def test_an_unexpected_error_shows_nothing_of_itself() -> None:
    answer = api_error(RuntimeError("password=hunter2 at line 3"))
    assert answer.status == 500
    assert "hunter2" not in orjson.dumps(answer.to_json()).decode()


@pytest.mark.parametrize(
    ("code", "status"),
    [(-32602, 400), (-32002, 404), (-32603, 502), (-32601, 502), (42, 502)],
)
def test_an_upstream_refusal_maps_by_its_code(code: int, status: int) -> None:
    answer = api_error(UpstreamRejected("crm", {"code": code, "message": "no"}))
    assert (answer.status, answer.message) == (status, "crm: no")


def test_rate_limited_is_429_with_retry_after_in_whole_seconds() -> None:
    for wait, header in [(0.2, b"1"), (1.0, b"1"), (2.5, b"3"), (0.0, b"1")]:
        answer = api_error(RateLimited("slow down", wait))
        assert (answer.status, answer.error_code) == (429, "rate_limited")
        assert answer.headers == [(b"retry-after", header)]


def test_invalid_arguments_list_each_error_with_its_path() -> None:
    errors = [
        {"path": "/a/0", "message": "'x' is not of type 'integer'", "keyword": "type"},
        {"path": "", "message": "'b' is a required property", "keyword": "required"},
    ]
    answer = api_error(InvalidArguments("the arguments do not match", data={"errors": errors}))
    assert (answer.status, answer.error_code) == (400, "invalid_arguments")
    assert answer.to_json()["error"]["problems"] == [
        {
            "location": "body.a.0",
            "message": errors[0]["message"],
            "path": "/a/0",
            "keyword": "type",
        },
        {"location": "body", "message": errors[1]["message"], "path": "", "keyword": "required"},
    ]


# ---- a body of arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "chunks", "found"),
    [
        (JSON, [b'{"a": [1, {"b": null}]}'], {"a": [1, {"b": None}]}),
        (JSON, [b""], {}),
        (JSON, [b"  "], {}),
        ({}, [b""], {}),
        ({b"content-length": b"0"}, [b""], {}),
    ],
    ids=["object", "json-empty", "json-blank", "no-body", "length-0"],
)
async def test_an_arguments_body(
    router: Router, headers: dict[bytes, bytes], chunks: list[bytes], found: dict[str, Any]
) -> None:
    request = request_for(router, "POST", "/api/v1/items/ab/call", headers)
    await router.parse(request, {}, receiver(*chunks))
    assert request.data == found


@pytest.mark.parametrize(
    ("headers", "chunks", "status"),
    [
        ({}, [b"{}"], 415),
        ({b"content-type": b"text/plain"}, [b"{}"], 415),
        (JSON, [b"[1]"], 400),
        (JSON, [b'"text"'], 400),
        (JSON, [b"{nope"], 400),
        (JSON, [b"x" * 1025], 413),
    ],
    ids=["no-type", "text", "array", "string", "not-json", "large"],
)
async def test_a_bad_arguments_body(
    router: Router, headers: dict[bytes, bytes], chunks: list[bytes], status: int
) -> None:
    request = request_for(router, "POST", "/api/v1/items/ab/call", headers)
    with pytest.raises(ApiError) as caught:
        await router.parse(request, {}, receiver(*chunks))
    assert caught.value.status == status


async def test_a_bad_path_is_told_before_the_body_is_read(router: Router) -> None:
    request = request_for(router, "POST", "/api/v1/items/a/call", JSON)
    with pytest.raises(ApiError) as caught:
        await router.parse(request, {}, receiver(gone=True))  # reading it would raise ClientGone
    assert (caught.value.status, caught.value.problems[0].location) == (422, "path.item")
