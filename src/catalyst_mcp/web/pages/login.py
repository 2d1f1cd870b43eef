"""Signing in and out: with an API key (or any bearer token the gateway accepts), or with the
gateway's OpenID Connect provider (:mod:`catalyst_mcp.web.oidc`).

A credential is checked exactly as the REST API checks it (``Access.authenticate``) before it
becomes the session; a refused one is audited as ``ui.login`` (``unauthenticated``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from catalyst_mcp.context import ANONYMOUS
from catalyst_mcp.errors import Unauthenticated
from catalyst_mcp.web.oidc import FLOW_COOKIE, FLOW_SECONDS, Flow, OidcClient, OidcError, read_flow
from catalyst_mcp.web.routing import PageError, PageRequest, PageRoute, Reply, go, redirect
from catalyst_mcp.web.session import Session, cookie_header, fits_cookie

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["routes", "safe_next"]


def safe_next(value: str | None) -> str:
    """A page of the dashboard to go to after signing in (anything else: the overview)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 32 for c in value):
        return "/"
    return value


class LoginPages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.access = dashboard.access
        self.render = dashboard.renderer
        ui = dashboard.settings.ui
        self.oidc: OidcClient | None = None
        if dashboard.oidc and dashboard.oidc_issuer and ui.oidc_client_id:
            self.oidc = OidcClient(
                dashboard.oidc_issuer,
                ui.oidc_client_id,
                client_secret=ui.oidc_client_secret,
                scopes=ui.oidc_scopes,
                resource=dashboard.settings.auth.resource_url,
            )

    async def form(self, request: PageRequest) -> Reply:
        if not self.access.required or request.session.credential is not None:
            return redirect(request.base + safe_next(request.query.get("next")))
        return self.render.page(
            request,
            "login.html",
            next=safe_next(request.query.get("next")),
            ended=request.query.get("ended"),
            failed=request.query.get("failed"),
            oidc=self.oidc is not None,
        )

    async def sign_in(self, request: PageRequest) -> Reply:
        if not self.access.required:
            raise PageError(409, "auth is off: you are already the local user")
        form = await request.form()
        credential = form.text("credential")
        if credential is None:
            raise PageError(422, "paste an API key (cat_...) or a bearer token")
        if not credential.isascii() or not fits_cookie(credential):
            raise PageError(422, "that is not an API key or a token this gateway could accept")
        try:
            await self.access.authenticate(b"Bearer " + credential.encode("ascii"))
        except Unauthenticated as exc:
            await self.access.record_refusal(ANONYMOUS, "ui.login", request.base + "/login", exc)
            raise PageError(401, f"sign-in refused: {exc.message}") from None
        reply = go(request, request.base + safe_next(form.get("next")))
        reply.headers.append(self._session(Session.signed_in(credential), request))
        return reply

    async def sign_out(self, request: PageRequest) -> Reply:
        reply = go(request, request.base + ("/login" if self.access.required else "/"))
        reply.headers.append(cookie_header("", request.base, secure=request.secure, max_age=0))
        return reply

    def _session(self, session: Session, request: PageRequest) -> tuple[bytes, bytes]:
        return cookie_header(
            session.cookie,
            request.base,
            secure=request.secure,
            max_age=self.dashboard.settings.ui.session_max_age_seconds,
        )

    # ---- OpenID Connect ------------------------------------------------------------------

    def _callback_path(self, request: PageRequest) -> str:
        return request.base + "/login/callback"

    def redirect_uri(self, request: PageRequest) -> str:
        public = self.dashboard.settings.ui.public_url
        if public is not None:
            return public.rstrip("/") + self._callback_path(request)
        host = request.headers.get(b"host", b"127.0.0.1").decode("latin-1")
        scheme = "https" if request.secure else "http"
        return f"{scheme}://{host}{self._callback_path(request)}"

    async def oidc_start(self, request: PageRequest) -> Reply:
        if self.oidc is None:
            raise PageError(404, "sign-in with an identity provider is not configured")
        flow = Flow.new(safe_next(request.query.get("next")))
        try:
            location = await self.oidc.authorization_url(flow, self.redirect_uri(request))
        except OidcError as exc:
            return self._failed(request, exc.message)
        reply = redirect(location)
        reply.headers.append(self._flow_cookie(flow.cookie_value(), request, FLOW_SECONDS))
        return reply

    async def oidc_callback(self, request: PageRequest) -> Reply:
        if self.oidc is None:
            raise PageError(404, "sign-in with an identity provider is not configured")
        flow = read_flow(request.headers)
        query = request.query
        if flow is None:
            return self._failed(request, "the sign-in took too long or was not started here")
        if "error" in query:
            detail = query.get("error_description") or query["error"]
            return self._failed(request, f"the provider refused: {detail[:300]}")
        code, state = query.get("code"), query.get("state")
        if not code or state != flow.state:
            return self._failed(request, "the provider's answer does not match this sign-in")
        try:
            token = await self.oidc.exchange(code, flow, self.redirect_uri(request))
        except OidcError as exc:
            return self._failed(request, exc.message)
        if not token.isascii() or not fits_cookie(token):
            return self._failed(request, "the provider's access token is too large for a cookie")
        try:
            await self.access.authenticate(b"Bearer " + token.encode("ascii"))
        except Unauthenticated as exc:
            await self.access.record_refusal(
                ANONYMOUS, "ui.login", self._callback_path(request), exc
            )
            return self._failed(request, f"the gateway refused the provider's token: {exc.message}")
        # The provider's redirect was a cross-site navigation: a SameSite=Strict cookie set now
        # is sent from the next same-site navigation on, so go on with a refresh from here.
        target = request.base + safe_next(flow.next)
        reply = self.render.fragment(request, "bounce.html", target=target)
        reply.headers.append(self._session(Session.signed_in(token), request))
        reply.headers.append(self._flow_cookie("", request, 0))
        return reply

    def _failed(self, request: PageRequest, message: str) -> Reply:
        reply = redirect(request.base + "/login?failed=" + quote(message, safe=""))
        reply.headers.append(self._flow_cookie("", request, 0))
        return reply

    def _flow_cookie(self, value: str, request: PageRequest, max_age: int) -> tuple[bytes, bytes]:
        parts = [
            f"{FLOW_COOKIE}={value}",
            f"Path={self._callback_path(request)}",
            "HttpOnly",
            "SameSite=Lax",
            f"Max-Age={max_age}",
        ]
        if request.secure:
            parts.append("Secure")
        return b"set-cookie", "; ".join(parts).encode("latin-1")


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = LoginPages(dashboard)
    return [
        PageRoute("GET", "/login", pages.form, public=True),
        PageRoute("POST", "/login", pages.sign_in, public=True),
        PageRoute("POST", "/logout", pages.sign_out, public=True),
        PageRoute("GET", "/login/oidc", pages.oidc_start, public=True),
        PageRoute("GET", "/login/callback", pages.oidc_callback, public=True),
    ]
