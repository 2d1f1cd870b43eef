"""The dashboard's tests: the REST API tests' gateway (auth on, SQLite, servers ``fake`` and
``other``, callers ``root`` (admin), ``bob`` (role ``reader``) and ``carol`` (no roles)), and
a browser-like client that keeps the session cookie and sends the page's CSRF token back."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import pytest_asyncio

from catalyst_mcp.security.vault import generate_key
from catalyst_mcp.web.session import COOKIE
from tests.api.conftest import ToolsApi, settings, start_tools_api
from tests.asgiclient import AsgiClient, Response

HOST = "127.0.0.1:8765"
ORIGIN = f"http://{HOST}"
_CSRF = re.compile(r'hx-headers="([^"]*)"')


class Browser:
    """What a browser does for the dashboard: keep its cookie, send the CSRF token the last
    page carried, and say where a request comes from (``Origin``, ``Sec-Fetch-Site``)."""

    def __init__(self, client: AsgiClient) -> None:
        self.client = client
        self.cookie: str | None = None
        self.csrf: str | None = None
        self.last: Response | None = None

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"host": HOST}
        if self.cookie is not None:
            headers["cookie"] = f"{COOKIE}={self.cookie}"
        headers.update(extra or {})
        return headers

    def _keep(self, response: Response) -> Response:
        for name, value in response.raw_headers:
            if name == b"set-cookie":
                text = value.decode()
                pair = text.split(";")[0]
                key, _, cookie = pair.partition("=")
                if key == COOKIE:
                    self.cookie = None if "Max-Age=0" in text else cookie
        found = _CSRF.search(response.body.decode("utf-8", "replace"))
        if found is not None and response.content_type == "text/html":
            token = re.search(r'"X-CSRF-Token":"([^"]+)"', html.unescape(found.group(1)))
            self.csrf = token.group(1) if token else None
        self.last = response
        return response

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self._keep(await self.client.get(path, self._headers(headers)))

    async def post(
        self,
        path: str,
        form: dict[str, Any] | list[tuple[str, str]] | None = None,
        *,
        csrf: str | None = "page",
        headers: dict[str, str] | None = None,
    ) -> Response:
        """POST a form as htmx does (``csrf``: the page's token, another value, or None)."""
        sent = {
            "origin": ORIGIN,
            "sec-fetch-site": "same-origin",
            "hx-request": "true",
            "content-type": "application/x-www-form-urlencoded",
        }
        token = self.csrf if csrf == "page" else csrf
        if token is not None:
            sent["x-csrf-token"] = token
        sent.update(headers or {})
        body = urlencode(form or {}, doseq=True).encode()
        response = await self.client.request("POST", path, headers=self._headers(sent), body=body)
        return self._keep(response)

    async def sign_in(self, token: str) -> Response:
        await self.get("/ui/login")
        response = await self.post("/ui/login", {"credential": token, "next": "/"})
        assert response.status == 200, response.body
        assert response.headers.get("hx-redirect") == "/ui/", response.headers
        return await self.get("/ui/")  # as htmx does: the page, with the session's CSRF token


class Dashboard:
    """The gateway and a browser for each of its users."""

    def __init__(self, api: ToolsApi) -> None:
        self.api = api
        self.gateway = api.gateway

    async def flush(self) -> None:
        """Let the audit writer commit what it holds."""
        audit = self.gateway.access.audit
        assert audit is not None
        await audit.flush()

    def browser(self) -> Browser:
        return Browser(AsgiClient(self.gateway.asgi))

    async def signed_in(self, user: str) -> Browser:
        browser = self.browser()
        await browser.sign_in(self.api.tokens[user])
        return browser


@pytest_asyncio.fixture
async def dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Dashboard]:
    monkeypatch.setenv("CATALYST_SECRET_KEY", generate_key())  # the secrets vault's key
    api = await start_tools_api(settings(tmp_path))
    try:
        yield Dashboard(api)
    finally:
        await api.gateway.stop()


def text_of(response: Response) -> str:
    return response.body.decode("utf-8")
