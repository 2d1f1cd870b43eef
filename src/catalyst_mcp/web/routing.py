"""The dashboard's requests and answers: page routes, what a handler sees, what it returns.

A :class:`PageRoute` is a method and a path template under the dashboard's path (``/servers/
{name}``: a ``{param}`` is one whole, percent-decoded path segment). A handler gets a
:class:`PageRequest` (the caller, their API client, the query, the form) and returns a
:class:`Reply`; it raises :class:`PageError` for an answer the dashboard renders as an error
page (or, for htmx, as a message in place).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from catalyst_mcp.errors import CatalystError
from catalyst_mcp.transports.asgi import BodyTooLarge, Receive, read_body

if TYPE_CHECKING:
    from catalyst_mcp.context import Identity
    from catalyst_mcp.web.apiclient import ApiAnswer, ApiClient
    from catalyst_mcp.web.session import Session

__all__ = [
    "MAX_FORM_BYTES",
    "Form",
    "PageError",
    "PageHandler",
    "PageRequest",
    "PageRoute",
    "PageRouter",
    "Reply",
    "go",
    "hx_redirect",
    "need",
    "redirect",
]

MAX_FORM_BYTES = 256 * 1024
_PARAM = re.compile(r"^\{([a-z_]+)\}$")


class PageError(CatalystError):
    """An answer other than the page: ``status`` and a message for the person reading it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @classmethod
    def of(cls, answer: ApiAnswer) -> PageError:
        """The API's refusal or failure, in its own words (each problem of a 422 named)."""
        problems = [f"{p.get('location')}: {p.get('message')}" for p in answer.problems]
        if len(problems) > 1 or (problems and problems[0] not in answer.message):
            return cls(answer.status, answer.message + " (" + "; ".join(problems) + ")")
        return cls(answer.status, answer.message)


@dataclass(slots=True)
class Reply:
    """An HTTP answer: HTML unless ``content_type`` says otherwise."""

    body: bytes
    status: int = 200
    content_type: bytes = b"text/html; charset=utf-8"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class Form:
    """A submitted form (``application/x-www-form-urlencoded``): the last value of a name,
    or all of them."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)
        self.values = dict(pairs)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def text(self, name: str) -> str | None:
        """The value with surrounding spaces removed; None when empty or not sent."""
        value = self.values.get(name, "").strip()
        return value or None


@dataclass(slots=True)
class PageRequest:
    """One request to a page, as its handler sees it."""

    method: str
    path: str
    """The path under the dashboard's path (``/servers/x``)."""
    params: dict[str, str]
    query: dict[str, str]
    headers: Mapping[bytes, bytes]
    identity: Identity
    admin: bool
    api: ApiClient
    session: Session
    base: str
    """The dashboard's path (``/ui``): links are ``base + ...``."""
    receive: Receive
    htmx: bool = False
    """Sent by htmx (``HX-Request``): answer the fragment it swaps in."""
    secure: bool = False
    """It came over https (directly or through a proxy): cookies get ``Secure``."""
    _form: Form | None = None

    async def form(self) -> Form:
        """The submitted form (PageError 413 past MAX_FORM_BYTES, 415 for another type)."""
        if self._form is None:
            kind = self.headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            try:
                raw = await read_body(
                    self.receive, MAX_FORM_BYTES, self.headers.get(b"content-length")
                )
            except BodyTooLarge:
                raise PageError(413, f"the form is larger than {MAX_FORM_BYTES} bytes") from None
            if raw and kind != b"application/x-www-form-urlencoded":
                raise PageError(415, "send the form as application/x-www-form-urlencoded")
            text = raw.decode("utf-8", "replace")
            self._form = Form(parse_qsl(text, keep_blank_values=True))
        return self._form


def need(answer: ApiAnswer) -> Any:
    """The API's answer when it succeeded; its refusal or failure as a PageError."""
    if not answer.ok:
        raise PageError.of(answer)
    return answer.data


def redirect(location: str) -> Reply:
    """See Other: the browser loads ``location``."""
    return Reply(b"", 303, headers=[(b"location", location.encode("latin-1"))])


def hx_redirect(location: str) -> Reply:
    """For htmx, which follows ``HX-Redirect`` with a whole page load."""
    return Reply(b"", 200, headers=[(b"hx-redirect", location.encode("latin-1"))])


def go(request: PageRequest, location: str) -> Reply:
    """Load ``location`` next, the way the request's sender understands."""
    return hx_redirect(location) if request.htmx else redirect(location)


PageHandler = Callable[[PageRequest], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class PageRoute:
    method: str
    path: str
    handler: PageHandler
    public: bool = False
    """Served without signing in (the sign-in pages themselves)."""


class PageRouter:
    """The dashboard's routes, found by method and path (under the dashboard's path)."""

    def __init__(self, routes: Sequence[PageRoute]) -> None:
        self.routes = list(routes)
        self._templates = [
            (route, tuple(route.path.strip("/").split("/")) if route.path != "/" else ())
            for route in self.routes
        ]

    def find(self, method: str, raw_path: str) -> tuple[PageRoute, dict[str, str]]:
        """The route and its parameters; PageError 404, or 405 when only the method differs."""
        parts = tuple(raw_path.strip("/").split("/")) if raw_path.strip("/") else ()
        other_method = False
        for route, template in self._templates:
            params = _match(template, parts)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, params
            other_method = True
        if other_method:
            raise PageError(405, f"{method} is not allowed here")
        raise PageError(404, "there is no such page")


def _match(template: tuple[str, ...], parts: tuple[str, ...]) -> dict[str, str] | None:
    if len(template) != len(parts):
        return None
    params: dict[str, Any] = {}
    for pattern, raw in zip(template, parts, strict=True):
        found = _PARAM.match(pattern)
        if found is None:
            if pattern != raw:
                return None
            continue
        value = unquote(raw)
        if not value:
            return None
        params[found.group(1)] = value
    return params
