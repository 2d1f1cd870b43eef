"""Signing in with the gateway's OpenID Connect provider (a fake one on loopback): the code
flow with PKCE, the checks on the way back, and the token as the gateway's JWT verifier sees
it."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio

from catalyst_mcp.web.oidc import FLOW_COOKIE, Flow, pkce_challenge, read_flow
from catalyst_mcp.web.session import COOKIE
from tests.api.conftest import settings, start_tools_api
from tests.asgiclient import Response
from tests.web.conftest import HOST, Dashboard, text_of
from tests.web.fakeoidc import AUDIENCE, CLIENT_ID, FakeOidc

pytestmark = pytest.mark.network


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def follow_provider(url: str) -> str:
    """What the browser does at the provider: GET the authorization URL, read the redirect."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(url, timeout=10)
    except urllib.error.HTTPError as exc:  # a 302 is "an error" without redirects
        location = exc.headers["Location"]
        exc.close()
        return str(location)
    raise AssertionError("the provider did not redirect")


def cookie_of(response: Response, name: str) -> str | None:
    for key, value in response.raw_headers:
        if key == b"set-cookie" and value.decode().startswith(name + "="):
            return value.decode().split(";")[0].partition("=")[2]
    return None


async def oidc_gateway(tmp_path: Path, provider: FakeOidc, **ui: Any) -> Dashboard:
    return Dashboard(
        await start_tools_api(
            settings(
                tmp_path,
                auth={"jwt": {"oidc_issuer": provider.issuer, "audience": [AUDIENCE]}},
                ui={"oidc_client_id": CLIENT_ID, **ui},
            )
        )
    )


@pytest_asyncio.fixture
async def provider() -> AsyncIterator[FakeOidc]:
    with FakeOidc() as fake:
        yield fake


async def sign_in(dashboard: Dashboard, *, tamper: Any = None) -> tuple[Response, str | None]:
    """The whole flow; ``tamper(location, flow_cookie)`` may change the way back."""
    browser = dashboard.browser()
    page = text_of(await browser.get("/ui/login?next=%2Ftools"))
    assert "Sign in with your identity provider" in page
    start = await browser.get("/ui/login/oidc?next=%2Ftools")
    assert start.status == 303
    flow = cookie_of(start, FLOW_COOKIE)
    assert flow is not None
    location = await asyncio.to_thread(follow_provider, start.headers["location"])
    if tamper is not None:
        location, flow = tamper(location, flow)
    back = urlsplit(location)
    assert back.path == "/ui/login/callback"
    response = await browser.client.get(
        f"{back.path}?{back.query}", {"host": HOST, "cookie": f"{FLOW_COOKIE}={flow}"}
    )
    return response, cookie_of(response, COOKIE)


async def test_the_code_flow_with_pkce_signs_in(tmp_path: Path, provider: FakeOidc) -> None:
    dashboard = await oidc_gateway(tmp_path, provider)
    try:
        response, session = await sign_in(dashboard)
        assert response.status == 200, response.headers
        assert 'content="0;url=/ui/tools"' in text_of(response)
        assert session is not None and session.startswith("b.ey")
        cleared = cookie_of(response, FLOW_COOKIE)
        assert cleared == ""  # the flow cookie is deleted
        asked = provider.authorize_requests[-1]
        assert asked["client_id"] == CLIENT_ID
        assert asked["redirect_uri"] == f"http://{HOST}/ui/login/callback"
        assert asked["scope"] == "openid profile"
        exchanged = provider.token_requests[-1]
        assert pkce_challenge(exchanged["code_verifier"]) == asked["code_challenge"]
        home = await dashboard.browser().client.get(
            "/ui/tools", {"host": HOST, "cookie": f"{COOKIE}={session}"}
        )
        assert home.status == 200
        assert "olivia" in text_of(home)
    finally:
        await dashboard.gateway.stop()


async def test_a_state_that_does_not_match_is_refused(tmp_path: Path, provider: FakeOidc) -> None:
    dashboard = await oidc_gateway(tmp_path, provider)
    try:

        def other_state(location: str, flow: str) -> tuple[str, str]:
            return location.replace("state=", "state=x"), flow

        response, session = await sign_in(dashboard, tamper=other_state)
        assert response.status == 303
        assert (
            "does+not+match" in response.headers["location"]
            or "does%20not%20match" in (response.headers["location"])
        )
        assert session is None
    finally:
        await dashboard.gateway.stop()


async def test_a_verifier_that_does_not_match_is_refused_by_the_provider(
    tmp_path: Path, provider: FakeOidc
) -> None:
    dashboard = await oidc_gateway(tmp_path, provider)
    try:

        def other_verifier(location: str, flow: str) -> tuple[str, str]:
            found = read_flow({b"cookie": f"{FLOW_COOKIE}={flow}".encode()})
            assert found is not None
            return location, Flow(found.state, "x" * 64, found.next).cookie_value()

        response, session = await sign_in(dashboard, tamper=other_verifier)
        assert response.status == 303
        assert "PKCE" in parse_qs(urlsplit(response.headers["location"]).query)["failed"][0]
        assert session is None
    finally:
        await dashboard.gateway.stop()


async def test_a_confidential_client_authenticates_at_the_token_endpoint(
    tmp_path: Path,
) -> None:
    with FakeOidc(client_secret="s3cret") as provider:
        dashboard = await oidc_gateway(tmp_path, provider, oidc_client_secret="s3cret")
        try:
            response, session = await sign_in(dashboard)
            assert response.status == 200 and session is not None
        finally:
            await dashboard.gateway.stop()
    with FakeOidc(client_secret="s3cret") as provider:
        dashboard = await oidc_gateway(tmp_path / "b", provider, oidc_client_secret="wrong")
        try:
            response, session = await sign_in(dashboard)
            failed = parse_qs(urlsplit(response.headers["location"]).query)["failed"][0]
            assert "invalid_client" in failed and "wrong" not in failed
            assert session is None
        finally:
            await dashboard.gateway.stop()


async def test_a_token_the_gateway_does_not_accept_is_refused(
    tmp_path: Path, provider: FakeOidc
) -> None:
    provider.audience = "someone-else"
    dashboard = await oidc_gateway(tmp_path, provider)
    try:
        response, session = await sign_in(dashboard)
        failed = parse_qs(urlsplit(response.headers["location"]).query)["failed"][0]
        assert failed.startswith("the gateway refused the provider's token")
        assert session is None
        records = await dashboard.api.audit(action="ui.login")
        assert [r["outcome"] for r in records] == ["unauthenticated"]
    finally:
        await dashboard.gateway.stop()


async def test_without_a_client_id_there_is_no_provider_sign_in(
    tmp_path: Path, provider: FakeOidc
) -> None:
    dashboard = Dashboard(
        await start_tools_api(
            settings(tmp_path, auth={"jwt": {"oidc_issuer": provider.issuer, "audience": ["a"]}})
        )
    )
    try:
        browser = dashboard.browser()
        assert "identity provider" not in text_of(await browser.get("/ui/login"))
        assert (await browser.get("/ui/login/oidc")).status == 404
        assert (await browser.get("/ui/login/callback?code=x&state=y")).status == 404
    finally:
        await dashboard.gateway.stop()
