"""The access pipeline end to end, in-process through ``Gateway.asgi``: authentication (API
keys, HS256 JWTs, 401 challenges, Protected Resource Metadata), RBAC on lists and calls, key
scopes, rate limits, session ownership and the audit trail."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
import pytest_asyncio

from catalyst_mcp.app import Gateway
from catalyst_mcp.observability.auditsearch import search
from catalyst_mcp.security import apikeys
from catalyst_mcp.settings import Settings
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.users import UserRepo
from tests.asgiclient import AsgiClient, Response
from tests.fakes import (
    JSON_HEADERS,
    FakeProvider,
    initialize_request,
    legacy_request,
    modern_headers,
    modern_request,
    tool,
)

SECRET = "an-hs256-secret-of-at-least-32-bytes!!"
RESOURCE = "http://testserver/mcp"
ROLES = {
    "analyst": {
        "rules": [
            {"effect": "allow", "kinds": ["tool"], "match": ["fake__echo", "fake__read_*"]},
            {"effect": "deny", "kinds": ["tool"], "match": ["fake__read_secret"]},
        ]
    },
    "nobody": {"rules": []},
}


def settings(tmp_path: Path, **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/catalyst.db"},
        "auth": {
            "enabled": True,
            "resource_url": RESOURCE,
            "authorization_servers": ["https://idp.example.com"],
            "jwt": {"hs256_secret": SECRET},
        },
        "rbac": {"roles": ROLES},
        "packs": {"path": None},
    }
    for section, values in extra.items():
        data[section] = {**data.get(section, {}), **values}
    return Settings.model_validate(data)


def provider() -> FakeProvider:
    return FakeProvider(
        tools=[tool("echo"), tool("read_notes"), tool("read_secret"), tool("delete_all")]
    )


@pytest_asyncio.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(settings(tmp_path), [provider()])
    await gw.start()
    yield gw
    await gw.stop()


async def key_for(gw: Gateway, user: str, roles: tuple[str, ...], **key: Any) -> str:
    assert gw.db is not None
    await UserRepo(gw.db, known_roles={"admin", *ROLES}).create(user, roles=roles)
    new = apikeys.generate()
    await KeyRepo(gw.db).create(user, "test", new.prefix, new.key_hash, **key)
    return new.token


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def call(
    client: AsgiClient, method: str, params: dict[str, Any] | None, token: str | None
) -> Response:
    message = modern_request(method, params)
    headers = modern_headers(message)
    if token is not None:
        headers.update(bearer(token))
    return await client.post("/mcp", message, headers)


def names(response: Response) -> list[str]:
    return [t["name"] for t in response.message()["result"]["tools"]]


# ---- authentication ---------------------------------------------------------------------------


async def test_no_credentials_is_401_with_a_challenge_naming_the_metadata(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    response = await call(client, "tools/list", None, None)
    assert response.status == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'resource_metadata="http://testserver/.well-known/oauth-protected-resource/mcp"' in (
        challenge
    )
    assert "error=" not in challenge  # no credentials: no error code (RFC 6750 3.1)
    assert "authentication required" in response.json()["error"]["message"]


async def test_a_bad_token_is_invalid_token(gateway: Gateway) -> None:
    response = await call(AsgiClient(gateway.asgi), "tools/list", None, "cat_garbage")
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]
)
async def test_protected_resource_metadata_is_public(gateway: Gateway, path: str) -> None:
    response = await AsgiClient(gateway.asgi).get(path)
    assert response.status == 200
    document = response.json()
    assert document["resource"] == RESOURCE
    assert document["authorization_servers"] == ["https://idp.example.com"]
    assert document["bearer_methods_supported"] == ["header"]


async def test_every_mcp_path_needs_credentials(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    assert (await client.get("/sse")).status == 401
    assert (await client.post("/messages?session_id=x", {}, JSON_HEADERS)).status == 401
    assert (await client.post("/mcp", initialize_request(), JSON_HEADERS)).status == 401
    assert (await client.get("/health")).status == 200  # probes stay open


async def test_an_api_key_authenticates_and_a_revoked_one_stops_at_once(gateway: Gateway) -> None:
    token = await key_for(gateway, "alice", ("admin",))
    client = AsgiClient(gateway.asgi)
    assert (await call(client, "tools/list", None, token)).status == 200
    assert gateway.db is not None
    prefix = apikeys.parse(token)
    assert prefix is not None
    await KeyRepo(gateway.db).revoke(prefix[0])
    assert gateway.access.keys is not None
    gateway.access.keys.forget(prefix[0])
    refused = await call(client, "tools/list", None, token)
    assert refused.status == 401
    assert "revoked" in refused.json()["error"]["message"]


async def test_an_hs256_token_for_this_resource_authenticates(gateway: Gateway) -> None:
    now = int(time.time())
    claims = {"sub": "carol", "aud": RESOURCE, "exp": now + 60, "roles": ["analyst"]}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    response = await call(AsgiClient(gateway.asgi), "tools/list", None, token)
    assert response.status == 200
    assert names(response) == ["fake__echo", "fake__read_notes"]
    other = jwt.encode({**claims, "aud": "https://other.example/mcp"}, SECRET, algorithm="HS256")
    refused = await call(AsgiClient(gateway.asgi), "tools/list", None, other)
    assert refused.status == 401
    assert "audience" in refused.json()["error"]["message"]


# ---- authorization ----------------------------------------------------------------------------


async def test_lists_show_only_what_the_roles_allow(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    analyst = await key_for(gateway, "ann", ("analyst",))
    admin = await key_for(gateway, "root", ("admin",))
    nobody = await key_for(gateway, "nemo", ())
    assert names(await call(client, "tools/list", None, analyst)) == [
        "fake__echo",
        "fake__read_notes",
    ]
    assert len(names(await call(client, "tools/list", None, admin))) == 4
    assert names(await call(client, "tools/list", None, nobody)) == []


async def test_a_denied_call_is_a_clear_protocol_error_and_is_audited(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    analyst = await key_for(gateway, "ann", ("analyst",))
    ok = await call(client, "tools/call", {"name": "fake__echo", "arguments": {}}, analyst)
    assert "result" in ok.message()
    denied = await call(client, "tools/call", {"name": "fake__read_secret"}, analyst)
    error = denied.message()["error"]
    assert error["code"] == -32003
    assert error["message"] == (
        "Forbidden: role 'analyst' denies tool 'fake__read_secret' (rule 2)"
    )
    assert gateway.access.audit is not None and gateway.db is not None
    await gateway.access.audit.flush()
    records = await search(gateway.db, actor="ann")
    outcomes = {(r["target"], r["outcome"]) for r in records}
    assert ("fake__echo", "ok") in outcomes
    assert ("fake__read_secret", "denied") in outcomes


async def test_key_scopes_narrow_what_the_roles_allow(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    token = await key_for(gateway, "bot", ("admin",), scopes=["tool:fake__echo"])
    assert names(await call(client, "tools/list", None, token)) == ["fake__echo"]
    refused = await call(client, "tools/call", {"name": "fake__delete_all"}, token)
    assert refused.message()["error"]["code"] == -32003
    assert "scopes" in refused.message()["error"]["message"]


async def test_a_legacy_session_belongs_to_whoever_opened_it(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    alice = await key_for(gateway, "alice", ("admin",))
    mallory = await key_for(gateway, "mallory", ("admin",))
    opened = await client.post("/mcp", initialize_request(), {**JSON_HEADERS, **bearer(alice)})
    session = opened.headers["mcp-session-id"]
    own = {**JSON_HEADERS, **bearer(alice), "mcp-session-id": session}
    assert (await client.post("/mcp", legacy_request("tools/list"), own)).status == 200
    other = {**JSON_HEADERS, **bearer(mallory), "mcp-session-id": session}
    assert (await client.post("/mcp", legacy_request("tools/list"), other)).status == 404
    assert (await client.request("DELETE", "/mcp", headers=other)).status == 404
    assert (await client.post("/mcp", legacy_request("tools/list"), own)).status == 200


# ---- rate limits ------------------------------------------------------------------------------


async def test_a_rate_limited_call_says_when_to_retry(tmp_path: Path) -> None:
    limits = {"per_user": {"rate_per_second": 0.5, "burst": 2}}
    gw = Gateway(settings(tmp_path, rate_limits=limits), [provider()])
    await gw.start()
    try:
        client = AsgiClient(gw.asgi)
        token = await key_for(gw, "alice", ("admin",))
        params = {"name": "fake__echo", "arguments": {}}
        for _ in range(2):
            assert "result" in (await call(client, "tools/call", params, token)).message()
        error = (await call(client, "tools/call", params, token)).message()["error"]
        assert error["code"] == -32029
        assert error["message"].startswith("rate limit for user 'alice' exceeded")
        assert 0 < error["data"]["retryAfterSeconds"] <= 2
        # another user has a bucket of their own
        bob = await key_for(gw, "bob", ("admin",))
        assert "result" in (await call(client, "tools/call", params, bob)).message()
    finally:
        await gw.stop()


# ---- single-user mode -------------------------------------------------------------------------


async def test_without_auth_the_local_user_is_an_admin_and_calls_are_audited(
    tmp_path: Path,
) -> None:
    data = {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
        "packs": {"path": None},
    }
    gw = Gateway(Settings.model_validate(data), [provider()])
    await gw.start()
    try:
        client = AsgiClient(gw.asgi)
        assert len(names(await call(client, "tools/list", None, None))) == 4
        canary = "canary-3f9a1c"
        params = {"name": "fake__echo", "arguments": {"text": canary}}
        assert "result" in (await call(client, "tools/call", params, None)).message()
        assert gw.access.audit is not None and gw.db is not None
        await gw.access.audit.flush()
        (record,) = await search(gw.db, action="tools/call")
        assert record["actor"] == "anonymous" and record["outcome"] == "ok"
        assert canary not in str(record)  # arguments are digests, never values
        assert set(record["detail"]["arguments"]) == {"text"}
    finally:
        await gw.stop()


# ---- every way to reach an object is checked ----------------------------------------------------


async def test_completion_of_a_denied_prompt_is_refused_and_audited(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    analyst = await key_for(gateway, "ann", ("analyst",))
    params = {
        "ref": {"type": "ref/prompt", "name": "fake__hello"},
        "argument": {"name": "who", "value": "a"},
    }
    error = (await call(client, "completion/complete", params, analyst)).message()["error"]
    assert error["code"] == -32003
    assert "prompt 'fake__hello'" in error["message"]
    assert gateway.access.audit is not None and gateway.db is not None
    await gateway.access.audit.flush()
    (record,) = await search(gateway.db, action="completion/complete")
    assert (record["target"], record["outcome"]) == ("fake__hello", "denied")


async def test_subscriptions_to_a_denied_resource_are_refused(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    analyst = await key_for(gateway, "ann", ("analyst",))
    uri = "catalyst://fake/mem://a"
    # legacy: resources/subscribe is a clear refusal
    opened = await client.post("/mcp", initialize_request(), {**JSON_HEADERS, **bearer(analyst)})
    own = {**JSON_HEADERS, **bearer(analyst), "mcp-session-id": opened.headers["mcp-session-id"]}
    answer = await client.post("/mcp", legacy_request("resources/subscribe", {"uri": uri}), own)
    assert answer.message()["error"]["code"] == -32003
    # modern: the listen stream acknowledges only what the caller may follow
    message = modern_request(
        "subscriptions/listen", {"notifications": {"resourceSubscriptions": [uri]}}
    )
    headers = {**modern_headers(message), **bearer(analyst)}
    async with client.stream("POST", "/mcp", headers=headers, body=orjson.dumps(message)) as sse:
        first = await sse.next_message()
    assert first["params"]["notifications"].get("resourceSubscriptions") == []
    provider = gateway.registry.provider("fake")
    assert isinstance(provider, FakeProvider) and provider.subscribed == []


async def test_each_legacy_request_is_authorized_as_its_own_sender(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    broad = await key_for(gateway, "alice", ("admin",))
    assert gateway.db is not None
    narrow = apikeys.generate()
    await KeyRepo(gateway.db).create(
        "alice", "n", narrow.prefix, narrow.key_hash, ["tool:fake__echo"]
    )
    opened = await client.post("/mcp", initialize_request(), {**JSON_HEADERS, **bearer(broad)})
    session = opened.headers["mcp-session-id"]
    riding = {**JSON_HEADERS, **bearer(narrow.token), "mcp-session-id": session}
    call_all = legacy_request("tools/call", {"name": "fake__delete_all", "arguments": {}})
    assert (await client.post("/mcp", call_all, riding)).message()["error"]["code"] == -32003
    # a token of the same name, authenticated another way, does not get the session at all
    token = jwt.encode(
        {"sub": "alice", "aud": RESOURCE, "exp": int(time.time()) + 60, "roles": ["admin"]},
        SECRET,
        algorithm="HS256",
    )
    other = {**JSON_HEADERS, **bearer(token), "mcp-session-id": session}
    assert (await client.post("/mcp", call_all, other)).status == 404


async def test_reserved_subjects_and_huge_names_are_refused(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    star = jwt.encode({"sub": "*", "aud": RESOURCE, "exp": int(time.time()) + 60}, SECRET)
    refused = await call(client, "tools/list", None, star)
    assert refused.status == 401 and "reserved" in refused.json()["error"]["message"]
    token = await key_for(gateway, "root", ("admin",))
    huge = await call(client, "tools/call", {"name": "fake__" + "x" * 5000}, token)
    assert "at most 2048 characters" in huge.message()["error"]["message"]


async def test_ready_shows_only_the_status_unless_an_admin_asks(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    assert (await client.get("/ready")).json() == {"status": "ready"}
    nobody = await key_for(gateway, "nemo", ())
    assert (await client.get("/ready", headers=bearer(nobody))).json() == {"status": "ready"}
    admin = await key_for(gateway, "root", ("admin",))
    assert "servers" in (await client.get("/ready", headers=bearer(admin))).json()


def test_metadata_needs_the_resource_url() -> None:
    with pytest.raises(ValueError, match=r"auth\.resource_url is required"):
        Settings.model_validate(
            {"auth": {"enabled": True, "authorization_servers": ["https://idp.example.com"]}}
        )


def test_rate_limit_buckets_of_different_users_never_collide(tmp_path: Path) -> None:
    from catalyst_mcp.security.access import Access

    limits = {"per_tool": {"rate_per_second": 1, "burst": 1}}
    access = Access(settings(tmp_path, rate_limits=limits))
    assert access._checks("a", "b:c", "s")[0].key != access._checks("a:b", "c", "s")[0].key
