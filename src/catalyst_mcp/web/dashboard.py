"""The dashboard as the gateway serves it at ``ui.path``: who may see what, and how it answers.

Every request, in this order::

    static file? ───────────────────────── served (cached), no session needed
    session cookie (web/session.py) ──────── a nonce for a first visit
    changes something (POST)? ───────────── same origin and X-CSRF-Token, else 403
    signed in? ──────────────────────────── the credential checked as the API checks it;
                                            none or no longer valid: to the sign-in page
                                            (auth off: the local anonymous user)
    the page's handler ──────────────────── reads and changes through the REST API in
                                            process (web/apiclient.py), renders a template

Every answer carries a strict Content-Security-Policy (scripts, styles and requests from this
origin only: no inline script, no eval), ``X-Frame-Options: DENY``, ``nosniff`` and
``Cache-Control: no-store`` (pages may hold a new API key).
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote

from catalyst_mcp.errors import Unauthenticated
from catalyst_mcp.transports.asgi import Receive, Scope, Send, send_bytes
from catalyst_mcp.web.apiclient import ApiClient
from catalyst_mcp.web.metricsview import MetricsWindow
from catalyst_mcp.web.pages import (
    approvals,
    audit,
    changes,
    login,
    overview,
    packages,
    packs,
    rules,
    servers,
    tools,
    users,
    workflows,
)
from catalyst_mcp.web.pages import secrets as secret_pages
from catalyst_mcp.web.render import Renderer
from catalyst_mcp.web.routing import (
    PageError,
    PageRequest,
    PageRoute,
    PageRouter,
    Reply,
    hx_redirect,
    redirect,
)
from catalyst_mcp.web.session import CSRF_HEADER, Session, cookie_header, read_session, same_origin

if TYPE_CHECKING:
    from catalyst_mcp.app import Gateway
    from catalyst_mcp.context import Identity

__all__ = ["CSP", "Dashboard"]

log = logging.getLogger("catalyst.web")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
NO_STORE = (b"cache-control", b"no-store")
STATIC_TYPES = {
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".txt": b"text/plain; charset=utf-8",
    ".svg": b"image/svg+xml",
}
SAFE_METHODS = frozenset({"GET", "HEAD"})
# A first visit that came from another site: SameSite=Strict kept the cookie back, so look
# again from this site (a meta refresh is allowed by the CSP) before deciding who this is.
BOUNCE = (
    b'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0">'
    b"<title>Catalyst</title>"
)


class Dashboard:
    """The pages of one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.base = self.settings.ui.path
        self.access = gateway.access
        self.api = gateway.api
        jwt = self.settings.auth.jwt
        self.oidc_issuer = jwt.oidc_issuer if jwt is not None else None
        self.oidc = bool(
            self.settings.auth.enabled and self.oidc_issuer and self.settings.ui.oidc_client_id
        )
        self.renderer = Renderer(auth_on=self.access.required, oidc=self.oidc)
        metrics = gateway.telemetry.metrics
        self.metrics = MetricsWindow(metrics.registry if metrics is not None else None)
        routes: list[PageRoute] = [
            *login.routes(self),
            *overview.routes(self),
            *servers.routes(self),
            *tools.routes(self),
            *packs.routes(self),
            *users.routes(self),
            *secret_pages.routes(self),
            *audit.routes(self),
            *packages.routes(self),
            *approvals.routes(self),
            *changes.routes(self),
            *workflows.routes(self),
            *rules.routes(self),
        ]
        self.router = PageRouter(routes)
        self.static = _static_files()

    def url(self, path: str = "/") -> str:
        return self.base + path

    def serves(self, path: str) -> bool:
        """Whether ``path`` is the dashboard's."""
        return path == self.base or path.startswith(self.base + "/")

    def start(self) -> None:
        """Begin the metrics readings of the overview (in the running loop)."""
        self.metrics.start()

    async def stop(self) -> None:
        await self.metrics.stop()

    # ---- ASGI --------------------------------------------------------------------------------

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]
    ) -> None:
        raw = scope.get("raw_path")
        full = raw.decode("latin-1").partition("?")[0] if raw else quote(scope["path"])
        sub = full[len(self.base) :] or "/"
        method = scope["method"]
        if sub == "/" and not full.endswith("/") and method in SAFE_METHODS:
            await self._send(send, redirect(self.base + "/"), None, scope)
            return
        if sub.startswith("/static/"):
            await self._send_static(send, sub[len("/static/") :], method)
            return
        session = read_session(headers)
        reply, session_to_set = await self._answer(scope, receive, headers, session, method, sub)
        await self._send(send, reply, session_to_set, scope)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[bytes, bytes],
        session: Session,
        method: str,
        sub: str,
    ) -> tuple[Reply, Session | None]:
        """The answer, and the session whose cookie it sets when that cookie is new."""
        htmx = headers.get(b"hx-request") == b"true"
        try:
            route, params = self.router.find(method, sub)
        except PageError as exc:
            return self._error(exc, htmx, session), session
        if session.new and method in SAFE_METHODS and _cross_site_navigation(headers):
            return Reply(BOUNCE, headers=[NO_STORE]), None
        if method not in SAFE_METHODS:
            refusal = None
            if not same_origin(headers):
                refusal = PageError(403, "refused: not sent from this site")
            elif not session.csrf_ok(headers.get(CSRF_HEADER)):
                refusal = PageError(403, "refused: the CSRF token is missing or wrong; reload")
            if refusal is not None:
                return self._error(refusal, htmx, session), session
        credential = session.credential
        identity: Identity | None = None
        ended: str | None = None
        if credential is not None:
            try:
                identity = await self.access.authenticate(b"Bearer " + credential.encode())
            except Unauthenticated as exc:
                ended = exc.message
                session = Session.anonymous()  # the cookie is replaced: signed out
                credential = None
        if identity is None:
            if self.access.required and not route.public:
                return self._to_login(sub, scope, htmx, ended), None
            identity = self.access.anonymous
        request = PageRequest(
            method=method,
            path=sub,
            params=params,
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
            headers=headers,
            identity=identity,
            admin=self.api.refusal(identity) is None,
            api=ApiClient(self.api, credential),
            session=session,
            base=self.base,
            receive=receive,
            htmx=htmx,
            secure=self.secure(scope),
        )
        try:
            reply = await route.handler(request)
        except PageError as exc:
            return self._error(exc, htmx, session, request), session
        return reply, session  # (after a session ended, its replacement is new: it is set)

    def _to_login(self, sub: str, scope: Scope, htmx: bool, reason: str | None) -> Reply:
        query = scope.get("query_string", b"").decode("latin-1")
        target = sub + (f"?{query}" if query else "")
        location = self.url("/login") + "?next=" + quote(target, safe="")
        if reason is not None:
            location += "&ended=" + quote(reason, safe="")
        reply = hx_redirect(location) if htmx else redirect(location)
        if reason is not None:  # forget the credential that no longer works
            reply.headers.append(cookie_header("", self.base, secure=False, max_age=0))
        return reply

    def _error(
        self,
        exc: PageError,
        htmx: bool,
        session: Session,
        request: PageRequest | None = None,
    ) -> Reply:
        """An error page; for htmx, the message put into the page's message area."""
        if htmx:
            body = self.renderer.text("flash.html", error=exc.message, status=exc.status)
            return Reply(
                body.encode(),
                exc.status,
                headers=[
                    (b"hx-retarget", b"#flash"),
                    (b"hx-reswap", b"innerHTML"),
                    (b"hx-reselect", b"#flash-content"),
                ],
            )
        if request is not None:
            return self.renderer.page(
                request, "error.html", status=exc.status, message=exc.message, code=exc.status
            )
        body = self.renderer.text(
            "error.html",
            base=self.base,
            path="",
            csrf_headers="{}",
            nav=[],
            identity=self.access.anonymous,
            admin=False,
            auth_on=self.access.required,
            signed_in=session.credential is not None,
            query={},
            message=exc.message,
            code=exc.status,
        )
        return Reply(body.encode(), exc.status)

    async def _send(self, send: Send, reply: Reply, session: Session | None, scope: Scope) -> None:
        headers = [*SECURITY_HEADERS, *reply.headers]
        if not any(name == b"cache-control" for name, _ in reply.headers):
            headers.append(NO_STORE)
        if (
            session is not None
            and session.new
            and not any(name == b"set-cookie" for name, _ in reply.headers)
        ):
            headers.append(
                cookie_header(
                    session.cookie,
                    self.base,
                    secure=self.secure(scope),
                    max_age=self.settings.ui.session_max_age_seconds,
                )
            )
        body = b"" if scope["method"] == "HEAD" else reply.body
        await send_bytes(send, reply.status, body, reply.content_type, headers)

    def secure(self, scope: Scope) -> bool:
        """Whether cookies get ``Secure``: the request came over https (or a proxy says so)."""
        if scope.get("scheme") == "https":
            return True
        forwarded = dict(scope.get("headers", ())).get(b"x-forwarded-proto", b"")
        return bool(forwarded.split(b",")[0].strip().lower() == b"https")

    async def _send_static(self, send: Send, name: str, method: str) -> None:
        found = self.static.get(name)
        if found is None or method not in SAFE_METHODS:
            await send_bytes(
                send, 404, b"not found", b"text/plain; charset=utf-8", [*SECURITY_HEADERS]
            )
            return
        body, kind = found
        headers = [*SECURITY_HEADERS, (b"cache-control", b"public, max-age=3600")]
        await send_bytes(send, 200, b"" if method == "HEAD" else body, kind, headers)


def _static_files() -> dict[str, tuple[bytes, bytes]]:
    """Every file of ``web/static``, read once (a few dozen KiB)."""
    folder = resources.files("catalyst_mcp.web").joinpath("static")
    found: dict[str, tuple[bytes, bytes]] = {}
    for entry in folder.iterdir():
        name = entry.name
        suffix = name[name.rfind(".") :] if "." in name else ""
        if entry.is_file() and suffix in STATIC_TYPES:
            found[name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return found


def _cross_site_navigation(headers: dict[bytes, bytes]) -> bool:
    return (
        headers.get(b"sec-fetch-site") == b"cross-site"
        and headers.get(b"sec-fetch-mode") == b"navigate"
    )
