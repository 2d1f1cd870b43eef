"""A small REST router over raw ASGI: path templates, methods, JSON bodies, pydantic models.

A :class:`Route` names its method, a path template (``/users/{name}``: a ``{param}`` stands for
one whole, non-empty path segment), its handler, and the pydantic models of its query string,
request body and response. :meth:`Router.find` picks the route for a request (or says 404, or
405 with the methods the path does allow); :meth:`Router.parse` reads and checks what the
request carries, listing every problem at once:

* the query string against ``Route.query`` (unknown or repeated parameters are problems too);
* the body, for a route with ``Route.body``: ``Content-Type: application/json`` (else 415), at
  most ``max_body`` bytes (else 413), JSON (else 400), then the model (else 422); for a route
  with ``Route.json_object`` (a tool's arguments), any JSON object, an empty body being ``{}``.

Errors are :class:`ApiError` (a :class:`~catalyst_mcp.errors.CatalystError` with an HTTP status
and a stable code) and go out as ``{"error": {"code", "message"[, "problems"]}}``;
:func:`api_error` maps the rest of the hierarchy to statuses in one place. A client never sees a
stack trace: anything unexpected becomes a plain 500.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

import orjson
from pydantic import BaseModel, ValidationError

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import (
    INVALID_PARAMS,
    RESOURCE_NOT_FOUND,
    AccessError,
    CatalystError,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidArguments,
    InvalidParams,
    Missing,
    NotFound,
    RateLimited,
    StorageError,
    Unauthenticated,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from catalyst_mcp.transports.asgi import (
    BodyTooLarge,
    Receive,
    Scope,
    read_body,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "ApiError",
    "ApiRequest",
    "Handler",
    "Problem",
    "Route",
    "Router",
    "api_error",
    "problems_of",
]

log = logging.getLogger("catalyst.api")

DEFAULT_MAX_BODY = 256 * 1024
M = TypeVar("M", bound=BaseModel)
Handler = Callable[["ApiRequest"], Awaitable[BaseModel | Mapping[str, Any] | None]]

CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}
_PARAM = re.compile(r"^\{([a-z_][a-z0-9_]*)\}$")
_Template = tuple[tuple[str | None, str], ...]  # per segment: (literal, "") or (None, param)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request: where (``body.rules.0.effect``, ``query.limit``,
    ``path.name``) and what."""

    location: str
    message: str
    path: str | None = None
    """For a tool's arguments: the JSON Pointer (RFC 6901) into the body."""
    keyword: str | None = None
    """For a tool's arguments: the JSON Schema keyword that failed (``type``, ``required``)."""

    def to_json(self) -> dict[str, str]:
        found = {"location": self.location, "message": self.message}
        if self.path is not None:
            found["path"] = self.path
        if self.keyword is not None:
            found["keyword"] = self.keyword
        return found


class ApiError(CatalystError):
    """An HTTP error answer: ``status``, a stable ``error_code`` and a message written for the
    client (never a cause, a statement or a secret), with every problem for a 422."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        problems: Sequence[Problem] = (),
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = code or CODES.get(status, "error")
        self.problems = list(problems)
        self.headers = list(headers)

    @classmethod
    def invalid(cls, problems: Sequence[Problem]) -> ApiError:
        """A 422 listing ``problems``."""
        return cls(422, _count(problems), problems=problems)

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.error_code, "message": self.message}
        if self.problems:
            error["problems"] = [p.to_json() for p in self.problems]
        return {"error": error}


def api_error(exc: BaseException) -> ApiError:
    """The HTTP answer for ``exc``: the one place that decides what a client may see."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ConfigError):
        return ApiError.invalid([Problem("body", p.message) for p in exc.problems])
    if isinstance(exc, Missing):
        return ApiError(404, exc.message)
    if isinstance(exc, Conflict):
        return ApiError(409, exc.message)
    if isinstance(exc, StorageError):
        return ApiError(503, exc.message)
    if isinstance(exc, Unauthenticated):
        return ApiError(401, exc.message)
    if isinstance(exc, Forbidden):
        return ApiError(403, exc.message)
    if isinstance(exc, RateLimited):
        wait = str(max(1, math.ceil(exc.retry_after))).encode()
        return ApiError(429, exc.message, headers=[(b"retry-after", wait)])
    if isinstance(exc, AccessError):
        return ApiError(403, exc.message)
    if isinstance(exc, InvalidArguments):
        return ApiError(400, exc.message, code="invalid_arguments", problems=_arguments(exc))
    if isinstance(exc, NotFound):
        return ApiError(404, exc.message)
    if isinstance(exc, InvalidParams):
        return ApiError(400, exc.message)
    if isinstance(exc, UpstreamError):
        return _upstream_error(exc)
    if isinstance(exc, CatalystError):  # its message is written for clients
        log.error("admin API request failed: %s", exc.message)
        return ApiError(500, exc.message)
    log.error("admin API request failed", exc_info=exc)
    return ApiError(500, "internal error (logged by the gateway)")


def _arguments(exc: InvalidArguments) -> list[Problem]:
    errors = exc.data.get("errors") if isinstance(exc.data, dict) else None
    problems = []
    for error in errors if isinstance(errors, list) else ():
        path = str(error.get("path", ""))
        location = "body" + path.replace("/", ".") if path else "body"
        keyword = error.get("keyword")
        problems.append(
            Problem(
                location, str(error.get("message", "")), path, str(keyword) if keyword else None
            )
        )
    return problems


def _upstream_error(exc: UpstreamError) -> ApiError:
    """An upstream that is down is 503, one that does not answer in time 504, and one that
    answers wrongly 502; its refusal of the arguments (-32602) is the caller's 400, and of an
    unknown resource (-32002) a 404."""
    if isinstance(exc, UpstreamRejected):
        message = f"{exc.server}: {exc.message}"
        if exc.code == INVALID_PARAMS:
            return ApiError(400, message)
        if exc.code == RESOURCE_NOT_FOUND:
            return ApiError(404, message)
        return ApiError(502, message)
    if isinstance(exc, UpstreamUnavailable):
        return ApiError(503, exc.message)
    if isinstance(exc, UpstreamTimeout):
        return ApiError(504, exc.message)
    return ApiError(502, exc.message)


def _count(problems: Sequence[Problem]) -> str:
    if len(problems) == 1:
        return f"invalid request: {problems[0].location}: {problems[0].message}"
    return f"invalid request: {len(problems)} problems"


def problems_of(exc: ValidationError, where: str) -> list[Problem]:
    """Every error of ``exc`` located under ``where``; input values are never repeated (one
    may be a secret)."""
    found = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join([where, *(str(part) for part in error["loc"])])
        found.append(Problem(location, str(error["msg"])))
    return found


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: ``method`` on ``path`` (relative to the router's prefix)."""

    method: str
    path: str
    handler: Handler
    action: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path_model: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    changes: bool = False
    admin: bool = True
    """Only administrators may call it (the admin API); else any caller, whom the MCP
    pipeline authorizes object by object (the REST API for tools)."""
    json_object: bool = False
    """The body is any JSON object (a tool's arguments; empty: ``{}``), in ``ApiRequest.data``."""
    json_schema: Mapping[str, Any] | None = None
    """What the OpenAPI document says of a ``json_object`` body (default: any object)."""
    errors: tuple[str, ...] = ()
    """Error statuses it may answer besides those its models imply (for the OpenAPI document)."""
    needs_storage: bool = True  # False: served with storage off too (no database needed)

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.strip("/").split("/"))

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(m.group(1) for s in self.segments if (m := _PARAM.match(s)))


@dataclass(slots=True)
class ApiRequest:
    """A request matched to a route, as its handler sees it."""

    route: Route
    identity: Identity
    params: dict[str, str]
    headers: dict[bytes, bytes]
    path: BaseModel | None = None
    query: BaseModel | None = None
    body: BaseModel | None = None
    data: dict[str, Any] | None = None
    """The JSON object of a ``json_object`` route."""
    scheme: str = "http"
    target: str = ""
    """What the request acts on, as the audit trail records it (handlers may name it better)."""

    def path_as(self, model: type[M]) -> M:
        if not isinstance(self.path, model):
            raise TypeError(f"{self.route.action} has no {model.__name__} path")
        return self.path

    def query_as(self, model: type[M]) -> M:
        if not isinstance(self.query, model):
            raise TypeError(f"{self.route.action} has no {model.__name__} query")
        return self.query

    def body_as(self, model: type[M]) -> M:
        if not isinstance(self.body, model):
            raise TypeError(f"{self.route.action} has no {model.__name__} body")
        return self.body


class Router:
    """The routes under ``prefix`` (``/api/v1``)."""

    def __init__(
        self, prefix: str, routes: Sequence[Route], *, max_body: int = DEFAULT_MAX_BODY
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self.routes = list(routes)
        self.max_body = max_body
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            declared = set(route.path_model.model_fields) if route.path_model else set()
            if declared != set(route.param_names):
                raise ValueError(f"{route.method} {route.path}: path_model does not fit the path")
            key = (route.method, "/".join("{}" if _PARAM.match(s) else s for s in route.segments))
            if key in seen:
                raise ValueError(f"two routes for {route.method} {route.path}")
            seen.add(key)
        # by number of segments, each segment a literal or (None) a parameter: built once
        self._by_length: dict[int, list[tuple[Route, _Template]]] = {}
        for route in self.routes:
            template = tuple(
                (None, found.group(1)) if (found := _PARAM.match(part)) else (part, "")
                for part in route.segments
            )
            self._by_length.setdefault(len(template), []).append((route, template))

    def full_path(self, route: Route) -> str:
        return self.prefix + route.path

    def find(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method`` on ``raw_path`` (still percent-encoded, so an encoded
        ``/`` stays inside its segment) and its path parameters; ApiError 404 or 405."""
        segments = self._segments(raw_path)
        if segments is None:
            raise ApiError(404, "no such endpoint")
        allowed: list[str] = []
        best: tuple[int, Route, dict[str, str]] | None = None
        for route, template in self._by_length.get(len(segments), ()):
            params = _match(template, segments)
            if params is None:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            rank = len(params)  # a literal segment beats a parameter: /audit/verify
            if best is None or rank < best[0]:
                best = (rank, route, params)
        if best is not None:
            return best[1], best[2]
        if allowed:
            methods = ", ".join(sorted(set(allowed)))
            raise ApiError(
                405,
                f"{method} is not allowed here (allowed: {methods})",
                headers=[(b"allow", methods.encode("ascii"))],
            )
        raise ApiError(404, "no such endpoint")

    def _segments(self, raw_path: str) -> list[str] | None:
        if raw_path != self.prefix and not raw_path.startswith(self.prefix + "/"):
            return None
        rest = raw_path[len(self.prefix) :].strip("/")
        return rest.split("/") if rest else []

    async def parse(self, request: ApiRequest, scope: Scope, receive: Receive) -> None:
        """Fill ``request.query`` and ``request.body`` from the request; ApiError if they are
        missing, too large or invalid (422 lists every problem, of the query and the body)."""
        route = request.route
        problems: list[Problem] = []
        if route.path_model is not None:
            request.path, problems = _validate(route.path_model, request.params, "path")
        if route.query is not None:
            values, repeated = _query(scope)
            problems += repeated
            request.query, found = _validate(route.query, values, "query")
            problems += found
        elif scope.get("query_string"):
            problems.append(Problem("query", "this endpoint takes no query parameters"))
        if route.body is not None:
            data = await self._json(request.headers, receive)
            request.body, found = _validate(route.body, data, "body")
            problems += found
        elif route.json_object:
            if problems:  # the path or query is wrong: the body is not worth reading
                raise ApiError.invalid(problems)
            data = await self._json(request.headers, receive, empty={})
            if not isinstance(data, dict):
                raise ApiError(400, "the body must be a JSON object (the arguments by name)")
            request.data = data
        if problems:
            raise ApiError.invalid(problems)

    async def _json(
        self, headers: Mapping[bytes, bytes], receive: Receive, *, empty: Any = None
    ) -> Any:
        """The JSON body; ``empty``, when given, stands for a body with nothing in it."""
        declared = headers.get(b"content-length")
        if empty is not None and declared in (None, b"0") and b"content-type" not in headers:
            raw = await self._read(receive, declared)
            if not raw.strip():
                return empty
            raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if kind != b"application/json":
            raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
        raw = await self._read(receive, declared)
        if not raw.strip():
            if empty is not None:
                return empty
            raise ApiError(400, "the body is empty: send a JSON object")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "the body is not valid JSON") from None

    async def _read(self, receive: Receive, declared: bytes | None) -> bytes:
        try:
            return await read_body(receive, self.max_body, declared)
        except BodyTooLarge:
            raise ApiError(413, f"the body is larger than {self.max_body} bytes") from None


def _match(template: _Template, segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for (literal, name), raw in zip(template, segments, strict=True):
        if literal is not None:
            if literal != raw:
                return None
            continue
        value = unquote(raw) if "%" in raw else raw
        if not value:
            return None
        params[name] = value
    return params


def _query(scope: Scope) -> tuple[dict[str, str], list[Problem]]:
    """The query string as a mapping, and a problem for each parameter given twice."""
    raw = scope.get("query_string", b"").decode("latin-1")
    values: dict[str, str] = {}
    problems = []
    for name, value in parse_qsl(raw, keep_blank_values=True):
        if name in values:
            problems.append(Problem(f"query.{name}", "given more than once"))
        values[name] = value
    return values, problems


def _validate(model: type[M], data: Any, where: str) -> tuple[M | None, list[Problem]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, problems_of(exc, where)
