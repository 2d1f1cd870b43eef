"""The admin REST API end to end, in-process through ``Gateway.asgi`` on a SQLite file:
authentication and the admin check on every route, CRUD round trips, keys that work for MCP
until revoked, write-only secrets, roles, the audit trail and the OpenAPI document."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from jsonschema import Draft202012Validator

from catalyst_mcp.api.admin import admin_routes
from catalyst_mcp.api.router import Route
from catalyst_mcp.api.services import AdminServices
from catalyst_mcp.app import Gateway
from catalyst_mcp.security import apikeys
from catalyst_mcp.security.access import Access
from catalyst_mcp.security.secretstore import SecretStore
from catalyst_mcp.security.vault import ENV_ACTIVE, generate_key
from catalyst_mcp.settings import Settings
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.users import UserRepo
from tests.asgiclient import AsgiClient, Response
from tests.conftest import ROOT
from tests.fakes import FakeProvider, modern_headers, modern_request

API = "/api/v1"
ROLES = {"reader": {"rules": [{"effect": "allow", "kinds": ["tool"], "match": ["fake__echo"]}]}}
SAMPLE_PARAMS = {
    "name": "ghost",
    "prefix": "abcdefgh",
    "owner": "ghost",
    "scope": "crm",
    "id": "1-abcd",
}
SECRET_VALUE = "s3cr3t-Value-that-must-never-come-back"


def settings(tmp_path: Path, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
        "auth": {"enabled": True},
        "rbac": {"roles": ROLES},
        "packs": {"path": None},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return Settings.model_validate(data)


class Admin:
    """A started gateway with two users: ``root`` (admin) and ``bob`` (reader), a key each."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.client = AsgiClient(gateway.asgi)
        self.root = ""
        self.bob = ""

    async def bootstrap(self) -> None:
        self.root = await self.key_for("root", ("admin",))
        self.bob = await self.key_for("bob", ("reader",))

    async def key_for(self, user: str, roles: tuple[str, ...], **key: Any) -> str:
        db = self.gateway.db
        assert db is not None
        await UserRepo(db, known_roles={"admin", *ROLES}).create(user, roles=roles)
        return await self.new_key(user, **key)

    async def new_key(self, user: str, **key: Any) -> str:
        assert self.gateway.db is not None
        new = apikeys.generate()
        await KeyRepo(self.gateway.db).create(user, "boot", new.prefix, new.key_hash, **key)
        return new.token

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = "root", **kw: Any
    ) -> Response:
        headers = {}
        if token is not None:
            headers["authorization"] = f"Bearer {self.token(token)}"
        raw = b""
        if body is not None:
            headers["content-type"] = "application/json"
            raw = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.client.request(method, API + path, headers=headers, body=raw, **kw)

    def token(self, who: str) -> str:
        return {"root": self.root, "bob": self.bob}.get(who, who)

    async def mcp(self, token: str) -> Response:
        message = modern_request("tools/list")
        headers = {**modern_headers(message), "authorization": f"Bearer {token}"}
        return await self.client.post("/mcp", message, headers)

    async def audit(self, **filters: str) -> list[dict[str, Any]]:
        audit = self.gateway.access.audit
        assert audit is not None
        await audit.flush()
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        response = await self.call("GET", f"/audit?{query}")
        assert response.status == 200, response.body
        records: list[dict[str, Any]] = response.json()["records"]
        return records


@pytest_asyncio.fixture
async def admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Admin]:
    monkeypatch.setenv(ENV_ACTIVE, generate_key())
    gateway = Gateway(settings(tmp_path), [FakeProvider()])
    await gateway.start()
    try:
        api = Admin(gateway)
        await api.bootstrap()
        yield api
    finally:
        await gateway.stop()


def routes(gateway: Gateway) -> list[Route]:
    return gateway.api.router.routes


def admin_only(gateway: Gateway) -> list[Route]:
    return [route for route in routes(gateway) if route.admin]


def concrete(route: Route) -> str:
    return API + re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], route.path)


def error_of(response: Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"])
    error: dict[str, Any] = body["error"]
    return error


# ---- who may call it ---------------------------------------------------------------------------


async def test_the_route_table_covers_the_api(admin: Admin) -> None:
    table = {(r.method, r.path) for r in admin_only(admin.gateway)}
    assert table == {
        ("GET", "/users"),
        ("POST", "/users"),
        ("GET", "/users/{name}"),
        ("PATCH", "/users/{name}"),
        ("DELETE", "/users/{name}"),
        ("GET", "/keys"),
        ("POST", "/keys"),
        ("DELETE", "/keys/{prefix}"),
        ("GET", "/roles"),
        ("GET", "/roles/{name}"),
        ("PUT", "/roles/{name}"),
        ("DELETE", "/roles/{name}"),
        ("GET", "/secrets"),
        ("PUT", "/secrets/{owner}/{scope}/{name}"),
        ("DELETE", "/secrets/{owner}/{scope}/{name}"),
        ("GET", "/audit"),
        ("GET", "/audit/verify"),
        ("GET", "/rules"),
        ("GET", "/rules/{id}"),
        ("PUT", "/rules/{id}"),
        ("DELETE", "/rules/{id}"),
        ("POST", "/rules/test"),
        ("GET", "/approvals"),
        ("GET", "/approvals/{id}"),
        ("POST", "/approvals/{id}/approve"),
        ("POST", "/approvals/{id}/reject"),
        ("GET", "/servers/{name}"),
        ("POST", "/servers/{name}/start"),
        ("POST", "/servers/{name}/stop"),
        ("POST", "/servers/{name}/restart"),
        ("GET", "/servers/{name}/logs"),
        ("GET", "/pins"),
        ("GET", "/servers/{name}/tools/changes"),
        ("POST", "/servers/{name}/tools/approve"),
        ("GET", "/packs"),
        ("GET", "/packages"),
        ("GET", "/packages/catalog"),
        ("GET", "/packages/installs"),
        ("POST", "/packages/installs"),
        ("GET", "/packages/installs/{id}"),
    }
    # the document describes the tools API too: every caller may read it
    assert [r.admin for r in routes(admin.gateway) if r.path == "/openapi.json"] == [False]


async def test_every_route_without_credentials_is_401_with_a_challenge(admin: Admin) -> None:
    wrong = []
    for route in routes(admin.gateway):
        response = await admin.client.request(
            route.method, concrete(route), headers={"content-type": "application/json"}, body=b"{}"
        )
        challenge = response.headers.get("www-authenticate", "")
        if response.status != 401 or not challenge.startswith("Bearer"):
            wrong.append((route.method, route.path, response.status))
            continue
        assert error_of(response)["code"] == "unauthenticated"
        assert response.headers["cache-control"] == "no-store"
    assert not wrong, f"answered without credentials: {wrong}"


async def test_every_route_with_a_bad_key_is_401_invalid_token(admin: Admin) -> None:
    for route in routes(admin.gateway):
        response = await admin.call(route.method, concrete(route)[len(API) :], token="cat_bad")
        assert response.status == 401, (route.method, route.path)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_every_route_refuses_a_non_admin(admin: Admin) -> None:
    scoped = await admin.new_key("root", scopes=["mcp"])  # an admin, but the key lacks 'admin'
    for who, reason in [("bob", "'admin' role"), (scoped, "scopes do not include 'admin'")]:
        for route in admin_only(admin.gateway):
            response = await admin.call(route.method, concrete(route)[len(API) :], {}, token=who)
            assert response.status == 403, (who, route.method, route.path, response.body)
            error = error_of(response)
            assert error["code"] == "forbidden"
            assert reason in error["message"]


async def test_a_key_scoped_to_admin_is_enough(admin: Admin) -> None:
    scoped = await admin.new_key("root", scopes=["admin"])
    assert (await admin.call("GET", "/users", token=scoped)).status == 200


async def test_denials_are_audited(admin: Admin) -> None:
    await admin.call("DELETE", "/users/root", token="bob")
    records = await admin.audit(action="admin.users.delete", outcome="denied")
    assert [(r["actor"], r["target"]) for r in records] == [("bob", f"{API}/users/root")]
    assert "'admin' role" in records[0]["detail"]["reason"]


async def test_unknown_paths_and_methods(admin: Admin) -> None:
    missing = await admin.call("GET", "/nothing")
    assert (missing.status, error_of(missing)["code"]) == (404, "not_found")
    wrong = await admin.call("PUT", "/users")
    assert (wrong.status, wrong.headers["allow"]) == (405, "GET, POST")
    assert error_of(wrong)["code"] == "method_not_allowed"
    # the route table is public (the OpenAPI document): a non-admin is told the same
    assert (await admin.call("GET", "/nothing", token="bob")).status == 404
    assert (await admin.call("PUT", "/users", token="bob")).status == 405
    # and nobody without credentials does
    assert (await admin.call("GET", "/nothing", token=None)).status == 401
    assert (await admin.client.get("/api/other")).status == 401


async def test_without_auth_the_local_user_is_admin(tmp_path: Path) -> None:
    gateway = Gateway(settings(tmp_path, auth={"enabled": False}))
    await gateway.start()
    try:
        response = await AsgiClient(gateway.asgi).get(f"{API}/users")
        assert (response.status, response.json()) == (200, {"users": []})
    finally:
        await gateway.stop()


async def test_without_auth_anonymous_roles_decide(tmp_path: Path) -> None:
    gateway = Gateway(settings(tmp_path, auth={"enabled": False, "anonymous_roles": ["reader"]}))
    await gateway.start()
    try:
        response = await AsgiClient(gateway.asgi).get(f"{API}/users")
        assert response.status == 403
    finally:
        await gateway.stop()


async def test_storage_off_is_503(tmp_path: Path) -> None:
    gateway = Gateway(settings(tmp_path, auth={"enabled": False}, audit={"enabled": False}))
    assert gateway.db is None
    await gateway.start()
    try:
        for path in ("/users", "/audit"):
            response = await AsgiClient(gateway.asgi).get(API + path)
            assert response.status == 503
            error = error_of(response)
            assert error["code"] == "unavailable"
            assert error["message"].startswith("storage is off")
        # the document and the tools API need no storage
        for path in ("/openapi.json", "/tools"):
            assert (await AsgiClient(gateway.asgi).get(API + path)).status == 200
    finally:
        await gateway.stop()


# ---- users -------------------------------------------------------------------------------------


async def test_user_round_trip(admin: Admin) -> None:
    created = await admin.call(
        "POST", "/users", {"name": "ada", "display_name": "Ada", "roles": ["reader"]}
    )
    assert created.status == 201, created.body
    assert created.json()["roles"] == ["reader"]
    assert (await admin.call("POST", "/users", {"name": "ada"})).status == 409
    got = (await admin.call("GET", "/users/ada")).json()
    assert (got["name"], got["kind"], got["display_name"], got["disabled"]) == (
        "ada",
        "user",
        "Ada",
        False,
    )
    changed = await admin.call(
        "PATCH", "/users/ada", {"email": "ada@example.com", "disabled": True, "roles": []}
    )
    assert changed.status == 200, changed.body
    body = changed.json()
    assert (body["email"], body["disabled"], body["roles"], body["display_name"]) == (
        "ada@example.com",
        True,
        [],
        "Ada",
    )
    cleared = (await admin.call("PATCH", "/users/ada", {"display_name": None})).json()
    assert (cleared["display_name"], cleared["email"]) == (None, "ada@example.com")
    names = [u["name"] for u in (await admin.call("GET", "/users")).json()["users"]]
    assert names == ["ada", "bob", "root"]
    assert (await admin.call("DELETE", "/users/ada")).status == 204
    missing = await admin.call("GET", "/users/ada")
    assert (missing.status, error_of(missing)["message"]) == (404, "no user named 'ada'")
    assert (await admin.call("DELETE", "/users/ada")).status == 404
    assert (await admin.call("PATCH", "/users/ada", {"disabled": False})).status == 404


async def test_unknown_roles_are_422_on_the_field(admin: Admin) -> None:
    created = await admin.call("POST", "/users", {"name": "ada", "roles": ["ghost"]})
    assert created.status == 422
    assert error_of(created)["problems"] == [
        {"location": "body.roles", "message": "no role named 'ghost'"}
    ]
    assert (await admin.call("GET", "/users/ada")).status == 404
    patched = await admin.call("PATCH", "/users/bob", {"roles": ["ghost"]})
    assert patched.status == 422


@pytest.mark.parametrize("name", ["*", "anonymous"])
async def test_reserved_user_names_are_422(admin: Admin, name: str) -> None:
    """'*' owns the secrets shared by everyone (deleting a user of that name deleted them)."""
    created = await admin.call("POST", "/users", {"name": name})
    assert created.status == 422
    (problem,) = error_of(created)["problems"]
    assert problem["location"] == "body.name"
    assert "reserved" in problem["message"]
    key = await admin.call("POST", "/keys", {"user": name, "name": "k"})
    assert key.status == 422
    users = (await admin.call("GET", "/users")).json()["users"]
    assert name not in [u["name"] for u in users]


async def test_every_problem_is_listed(admin: Admin) -> None:
    response = await admin.call(
        "POST", "/users", {"name": "has space", "kind": "robot", "roles": [""], "extra": 1}
    )
    assert response.status == 422
    error = error_of(response)
    assert error["code"] == "invalid"
    locations = sorted(p["location"] for p in error["problems"])
    assert locations == ["body.extra", "body.kind", "body.name", "body.roles.0"]
    patch = await admin.call("PATCH", "/users/bob", {"disabled": None, "roles": None})
    assert sorted(p["location"] for p in error_of(patch)["problems"]) == [
        "body.disabled",
        "body.roles",
    ]


async def test_bodies_that_are_too_large_or_not_json(admin: Admin) -> None:
    large = await admin.call("POST", "/users", {"name": "x", "display_name": "y" * 300_000})
    assert (large.status, error_of(large)["code"]) == (413, "body_too_large")
    assert (await admin.call("POST", "/users", b"{nope")).status == 400
    plain = await admin.client.request(
        "POST",
        f"{API}/users",
        headers={"authorization": f"Bearer {admin.root}", "content-type": "text/plain"},
        body=b"{}",
    )
    assert (plain.status, error_of(plain)["code"]) == (415, "unsupported_media_type")


async def test_a_disabled_users_key_stops_at_once(admin: Admin) -> None:
    assert (await admin.mcp(admin.bob)).status == 200
    assert (await admin.call("PATCH", "/users/bob", {"disabled": True})).status == 200
    assert (await admin.mcp(admin.bob)).status == 401


async def test_an_admin_cannot_lock_themselves_out_with_their_key(admin: Admin) -> None:
    for method, path, body in [
        ("DELETE", "/users/root", None),
        ("PATCH", "/users/root", {"disabled": True}),
        ("PATCH", "/users/root", {"roles": ["reader"]}),
    ]:
        response = await admin.call(method, path, body)
        assert response.status == 409, (method, path)
    assert (await admin.call("GET", "/users/root")).json()["roles"] == ["admin"]


# ---- keys --------------------------------------------------------------------------------------


async def test_a_key_made_here_works_for_mcp_until_revoked(admin: Admin) -> None:
    created = await admin.call("POST", "/keys", {"user": "bob", "name": "laptop"})
    assert created.status == 201, created.body
    assert created.headers["cache-control"] == "no-store"
    key = created.json()
    token = key["token"]
    assert token.startswith(f"cat_{key['prefix']}_")
    assert (key["user"], key["name"], key["scopes"], key["revoked_at"]) == (
        "bob",
        "laptop",
        None,
        None,
    )
    works = await admin.mcp(token)
    assert works.status == 200
    assert [t["name"] for t in works.message()["result"]["tools"]] == ["fake__echo"]
    listed = await admin.call("GET", "/keys?user=bob")
    assert token not in listed.body.decode()
    assert key["prefix"] in [k["prefix"] for k in listed.json()["keys"]]
    assert all("token" not in k and "key_hash" not in k for k in listed.json()["keys"])
    revoked = await admin.call("DELETE", f"/keys/{key['prefix']}")
    assert revoked.status == 200
    assert revoked.json()["revoked_at"] is not None
    assert (await admin.mcp(token)).status == 401


async def test_key_fields_are_checked(admin: Admin) -> None:
    response = await admin.call(
        "POST",
        "/keys",
        {"user": "bob", "name": "", "scopes": ["everything"], "expires_at": "2001-01-01T00:00"},
    )
    assert response.status == 422
    locations = sorted(p["location"] for p in error_of(response)["problems"])
    assert locations == ["body.expires_at", "body.name", "body.scopes"]
    ghost = await admin.call("POST", "/keys", {"user": "ghost", "name": "k"})
    assert (ghost.status, error_of(ghost)["problems"][0]["location"]) == (422, "body.user")
    assert (await admin.call("GET", "/keys?user=ghost")).status == 404
    assert (await admin.call("DELETE", "/keys/abcdefgh")).status == 404
    assert (await admin.call("DELETE", "/keys/NOT-A-PREFIX")).status == 422


async def test_a_scoped_key_with_an_expiry(admin: Admin) -> None:
    created = await admin.call(
        "POST",
        "/keys",
        {
            "user": "root",
            "name": "ci",
            "scopes": ["tool:fake__*", "admin"],
            "expires_at": "2999-01-01T00:00:00+00:00",
        },
    )
    assert created.status == 201, created.body
    key = created.json()
    assert key["scopes"] == ["admin", "tool:fake__*"]
    assert key["expires_at"].startswith("2999-01-01T00:00:00")
    assert (await admin.call("GET", "/roles", token=key["token"])).status == 200


# ---- roles -------------------------------------------------------------------------------------


async def test_role_round_trip_changes_the_policy_at_once(admin: Admin) -> None:
    rules = [{"effect": "allow", "kinds": ["tool"], "match": ["fake__*"]}]
    put = await admin.call("PUT", "/roles/ops", {"description": "operators", "rules": rules})
    assert put.status == 200, put.body
    assert (put.json()["source"], put.json()["rules"]) == ("stored", rules)
    assert (await admin.call("PATCH", "/users/bob", {"roles": ["ops"]})).status == 200
    tools = (await admin.mcp(admin.bob)).message()["result"]["tools"]
    assert len(tools) > 1
    deny = [{"effect": "deny", "kinds": ["tool"], "match": ["*"]}]
    assert (await admin.call("PUT", "/roles/ops", {"rules": deny})).status == 200
    assert (await admin.mcp(admin.bob)).message()["result"]["tools"] == []
    got = (await admin.call("GET", "/roles/ops")).json()
    assert (got["description"], got["rules"]) == ("", deny)
    listed = {r["name"]: r["source"] for r in (await admin.call("GET", "/roles")).json()["roles"]}
    assert listed == {"admin": "builtin", "ops": "stored", "reader": "config"}
    held = await admin.call("DELETE", "/roles/ops")
    assert (held.status, error_of(held)["code"]) == (409, "conflict")
    assert "bob" in error_of(held)["message"]
    assert (await admin.call("DELETE", "/roles/ops?force=true")).status == 204
    assert (await admin.call("GET", "/roles/ops")).status == 404
    assert (await admin.call("GET", "/users/bob")).json()["roles"] == []


async def test_configured_and_builtin_roles_are_read_only(admin: Admin) -> None:
    reader = await admin.call("GET", "/roles/reader")
    assert (reader.status, reader.json()["source"]) == (200, "config")
    assert (await admin.call("DELETE", "/roles/reader")).status == 409
    assert (await admin.call("DELETE", "/roles/admin")).status == 409
    assert (await admin.call("DELETE", "/roles/ghost")).status == 404


async def test_invalid_roles_list_every_problem(admin: Admin) -> None:
    rules = [
        {"effect": "maybe", "match": ["*"]},
        {"effect": "allow", "match": ["[oops"], "kinds": ["spaceship"]},
    ]
    response = await admin.call("PUT", "/roles/ops", {"rules": rules})
    assert response.status == 422
    problems = error_of(response)["problems"]
    assert [p["location"] for p in problems] == [
        "body.rules.0.effect",
        "body.rules.1.kinds.0",
        "body.rules.1.match",
    ]
    assert "never closed" in problems[2]["message"]
    assert (await admin.call("GET", "/roles/ops")).status == 404
    long_name = await admin.call("PUT", "/roles/" + "x" * 65, {"rules": []})
    assert long_name.status == 422


# ---- secrets -----------------------------------------------------------------------------------


async def test_secrets_are_write_only(admin: Admin) -> None:
    put = await admin.call("PUT", "/secrets/bob/crm/api_token", {"value": SECRET_VALUE})
    assert put.status == 200, put.body
    assert SECRET_VALUE not in put.body.decode()
    assert set(put.json()) == {"owner", "scope", "name", "key_id", "created_at", "updated_at"}
    await admin.call("PUT", "/secrets/*/*/fallback", {"value": "other-value"})
    listed = await admin.call("GET", "/secrets?owner=bob")
    assert SECRET_VALUE not in listed.body.decode()
    assert [(s["owner"], s["scope"], s["name"]) for s in listed.json()["secrets"]] == [
        ("bob", "crm", "api_token")
    ]
    assert len((await admin.call("GET", "/secrets")).json()["secrets"]) == 2
    assert admin.gateway.db is not None
    store = SecretStore.from_environ(admin.gateway.db, os.environ)
    assert await store.resolve("bob", "crm", "api_token") == SECRET_VALUE
    records = await admin.audit(action="admin.secrets.put")
    assert [r["target"] for r in records] == ["bob/crm/api_token", "*/*/fallback"]
    assert SECRET_VALUE not in orjson.dumps(records).decode()
    assert (await admin.call("DELETE", "/secrets/bob/crm/api_token")).status == 204
    assert (await admin.call("DELETE", "/secrets/bob/crm/api_token")).status == 404


async def test_a_secret_never_shows_in_an_error(admin: Admin) -> None:
    response = await admin.call(
        "PUT", "/secrets/bob/crm/bad name", {"value": SECRET_VALUE, "extra": SECRET_VALUE}
    )
    assert response.status == 422
    assert SECRET_VALUE not in response.body.decode()
    assert sorted(p["location"] for p in error_of(response)["problems"]) == [
        "body.extra",
        "path.name",
    ]
    empty = await admin.call("PUT", "/secrets/bob/crm/x", {"value": ""})
    assert empty.status == 422


async def test_without_a_vault_key_secrets_are_503(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_ACTIVE)
    admin.gateway.api.services._secrets = None
    response = await admin.call("PUT", "/secrets/bob/crm/x", {"value": "v"})
    assert response.status == 503
    assert ENV_ACTIVE in error_of(response)["message"]
    assert (await admin.call("GET", "/secrets")).status == 503


# ---- audit -------------------------------------------------------------------------------------


async def test_changes_are_audited_with_their_outcome(admin: Admin) -> None:
    await admin.call("POST", "/users", {"name": "ada"})
    await admin.call("POST", "/users", {"name": "ada"})  # a conflict
    created = (await admin.call("POST", "/keys", {"user": "ada", "name": "k"})).json()
    await admin.call("DELETE", f"/keys/{created['prefix']}")
    await admin.call("PUT", "/roles/ops", {"rules": []})
    await admin.call("DELETE", "/users/ada")
    await admin.call("GET", "/users")  # a read: not recorded
    records = await admin.audit(actor="root")
    seen = [(r["action"], r["target"], r["outcome"]) for r in records]
    assert seen == [
        ("admin.users.create", "ada", "ok"),
        ("admin.users.create", "ada", "error"),
        ("admin.keys.create", created["prefix"], "ok"),
        ("admin.keys.revoke", created["prefix"], "ok"),
        ("admin.roles.put", "ops", "ok"),
        ("admin.users.delete", "ada", "ok"),
    ]
    assert "already exists" in records[1]["detail"]["reason"]
    assert created["token"] not in orjson.dumps(records).decode()


async def test_audit_search_pages_and_verifies(admin: Admin) -> None:
    for name in ("a1", "a2", "a3"):
        await admin.call("POST", "/users", {"name": name})
    first = await admin.audit(action="admin.users.create", limit="2")
    assert [r["target"] for r in first] == ["a1", "a2"]
    page = (await admin.call("GET", "/audit?action=admin.users.create&limit=2")).json()
    after = page["next_after_seq"]
    assert after == first[-1]["seq"]
    rest = (await admin.call("GET", f"/audit?action=admin.users.create&after_seq={after}")).json()
    assert ([r["target"] for r in rest["records"]], rest["next_after_seq"]) == (["a3"], None)
    assert len(await admin.audit(target="a*", outcome="ok")) == 3
    bad = await admin.call("GET", "/audit?limit=0&outcome=great&since=yesterday")
    assert sorted(p["location"] for p in error_of(bad)["problems"]) == [
        "query.limit",
        "query.outcome",
        "query.since",
    ]
    verified = (await admin.call("GET", "/audit/verify")).json()
    assert verified["ok"] is True
    assert verified["records"] >= 3
    assert len(verified["last_hash"]) == 64


async def test_an_unexpected_failure_is_a_plain_500(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: UserRepo) -> None:
        raise RuntimeError("password=hunter2")

    monkeypatch.setattr(UserRepo, "list", broken)
    response = await admin.call("GET", "/users")
    assert response.status == 500
    assert "hunter2" not in response.body.decode()
    assert error_of(response)["code"] == "internal"


# ---- the OpenAPI document ----------------------------------------------------------------------


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


async def test_the_openapi_document_describes_every_route(admin: Admin) -> None:
    response = await admin.call("GET", "/openapi.json")
    assert response.status == 200
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    assert {"title", "version"} <= set(document["info"])
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    operation_ids = []
    for route in routes(admin.gateway):
        path = API + route.path
        assert path in document["paths"], path
        operation = document["paths"][path][route.method.lower()]
        assert operation["security"] == [{"bearerAuth": []}]
        operation_ids.append(operation["operationId"])
        assert str(route.status) in operation["responses"]
        assert {"401", "403"} <= set(operation["responses"])
        declared = {(p["name"], p["in"]) for p in operation.get("parameters", [])}
        for name in route.param_names:
            assert (name, "path") in declared, (path, name)
        for parameter in operation.get("parameters", []):
            assert parameter["in"] in ("path", "query")
            if parameter["in"] == "path":
                assert parameter["required"] is True
            Draft202012Validator.check_schema(parameter["schema"])
        if route.body is not None:
            assert "application/json" in operation["requestBody"]["content"]
    assert len(operation_ids) == len(set(operation_ids))
    # nothing in the document that the table does not have
    documented = {(p, m) for p, item in document["paths"].items() for m in item}
    assert documented == {(API + r.path, r.method.lower()) for r in routes(admin.gateway)}
    for name, schema in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert "$defs" not in schema, name
    for ref in _refs(document):
        assert _resolve(document, ref) is not None, ref


async def test_openapi_schemas_accept_what_the_api_sends(admin: Admin) -> None:
    document = (await admin.call("GET", "/openapi.json")).json()
    created = (await admin.call("POST", "/users", {"name": "ada"})).json()
    # the component's $refs point into the document, so validate with the document as the root
    schema = {**document["components"]["schemas"]["User"], "components": document["components"]}
    Draft202012Validator(schema).validate(created)
    secret = document["components"]["schemas"]["SecretPut"]["properties"]["value"]
    assert secret.get("writeOnly") is True


def test_the_docs_list_every_route() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    table = admin_routes(AdminServices(Access(Settings()), None))
    missing = [
        f"{r.method} {r.path}"
        for r in table
        if f"{r.method} {r.path}" not in text and f"{r.method} {API}{r.path}" not in text
    ]
    assert not missing, f"docs/api.md does not list {missing}"
    assert f"GET {API}/openapi.json" in text
