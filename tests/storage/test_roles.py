"""Roles: create, upsert, list, and deletion refused while users hold them."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from catalyst_mcp.errors import Conflict, Missing, StorageError
from catalyst_mcp.storage import users as users_module
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from catalyst_mcp.storage.roles import RoleRecord, RoleRepo
from catalyst_mcp.storage.users import UserRepo
from tests.storage.conftest import PG_URL, pg_database, pg_schema, wait_until_blocked

RULES = [{"allow": ["tools/call"], "servers": ["github"]}, {"deny": "*", "tools": ["*__delete"]}]


@pytest.fixture
def roles(database: Database) -> RoleRepo:
    return RoleRepo(database)


async def test_create_and_get_keep_the_rules(roles: RoleRepo) -> None:
    made = await roles.create("dev", "developers", RULES)
    assert isinstance(made, RoleRecord)
    assert (made.name, made.description, made.rules) == ("dev", "developers", tuple(RULES))
    assert await roles.get("dev") == made


async def test_a_taken_name_is_a_conflict(roles: RoleRepo) -> None:
    await roles.create("dev")
    with pytest.raises(Conflict, match="a role named 'dev' already exists"):
        await roles.create("dev", "again")
    assert (await roles.get("dev")).description == ""


async def test_put_creates_then_replaces(roles: RoleRepo) -> None:
    first = await roles.put("dev", "v1", RULES)
    assert first.rules == tuple(RULES)
    second = await roles.put("dev", "v2", [])
    assert (second.description, second.rules) == ("v2", ())
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert await roles.list() == [second]


async def test_list_is_sorted(roles: RoleRepo) -> None:
    for name in ("ops", "admin", "dev"):
        await roles.create(name)
    assert [r.name for r in await roles.list()] == ["admin", "dev", "ops"]


async def test_names_are_checked(roles: RoleRepo) -> None:
    with pytest.raises(StorageError, match="1 to 64 characters"):
        await roles.create("r" * 65)
    with pytest.raises(StorageError, match="1 to 64 characters"):
        await roles.put("")


async def test_missing_roles(roles: RoleRepo) -> None:
    with pytest.raises(Missing, match="no role named 'ghost'"):
        await roles.get("ghost")
    with pytest.raises(Missing, match="no role named 'ghost'"):
        await roles.delete("ghost")


async def test_delete_is_refused_while_users_hold_it_unless_forced(
    database: Database, roles: RoleRepo
) -> None:
    users = UserRepo(database)
    await roles.create("dev")
    await roles.create("ops")
    await users.create("bob", roles=["dev", "ops"])
    await users.create("ada", roles=["dev"])
    with pytest.raises(Conflict, match="role 'dev' is held by ada, bob: take it from them"):
        await roles.delete("dev")
    assert await roles.holders("dev") == ["ada", "bob"]
    await roles.delete("dev", force=True)
    assert [r.name for r in await roles.list()] == ["ops"]
    assert (await users.get("bob")).roles == ("ops",)
    assert (await users.get("ada")).roles == ()


async def test_delete_names_at_most_five_holders(database: Database, roles: RoleRepo) -> None:
    users = UserRepo(database)
    await roles.create("dev")
    for n in range(7):
        await users.create(f"u{n}", roles=["dev"])
    with pytest.raises(Conflict, match=r"held by u0, u1, u2, u3, u4, \.\.\.:"):
        await roles.delete("dev")


async def test_an_unheld_role_is_deleted(roles: RoleRepo) -> None:
    await roles.create("dev")
    await roles.delete("dev")
    assert await roles.list() == []


async def test_deleting_a_stored_role_whose_name_stays_valid_keeps_the_grants(
    database: Database,
) -> None:
    """A stored override of the built-in admin or of a role of the settings file: without it
    the name still means a role, so the users holding it keep it (force or not)."""
    known = {"admin", "analyst"}
    roles, users = RoleRepo(database, known_roles=known), UserRepo(database, known_roles=known)
    await users.create("ops", roles=["admin"])
    await users.create("ann", roles=["analyst"])
    await roles.put("admin", "audited admin", [{"allow": "tool", "match": "*"}])
    await roles.put("analyst", "tweaked", [])
    await roles.delete("analyst")  # no Conflict: the grant does not dangle
    await roles.delete("admin", force=True)
    assert await roles.list() == []
    assert (await users.get("ops")).roles == ("admin",)
    assert (await users.get("ann")).roles == ("analyst",)


async def test_the_built_in_admin_is_known_by_default(database: Database) -> None:
    roles, users = RoleRepo(database), UserRepo(database)
    await users.create("ops", roles=["admin"])
    await roles.put("admin", "override")
    await roles.delete("admin", force=True)
    assert (await users.get("ops")).roles == ("admin",)


# ---- PostgreSQL (read committed): a role deleted while it is being granted --------------------


@pytest.mark.postgres
async def test_a_role_deleted_while_it_is_granted_waits_and_sees_the_grant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The grant checked the role exists; a deletion starting then waits for the grant's
    transaction (the role is locked for share) and finds a holder, instead of deleting the
    role under a grant that then names nothing (and a later role of that name)."""
    async with pg_schema() as schema:
        granting, deleting = pg_database(schema), pg_database(schema, f"delete-{schema}")
        try:
            await upgrade(granting)
            await RoleRepo(granting).create("ops", rules=[{"allow": "tool", "match": "*"}])
            await UserRepo(granting).create("carol")
            real = users_module._check_roles
            deletion: list[asyncio.Task[None]] = []

            async def racing(session: Any, wanted: Any, known: Any) -> None:
                await real(session, wanted, known)
                task = asyncio.create_task(RoleRepo(deleting).delete("ops"))
                deletion.append(task)
                assert await wait_until_blocked(f"delete-{schema}", task)

            monkeypatch.setattr(users_module, "_check_roles", racing)
            assert (await UserRepo(granting).set_roles("carol", ["ops"])).roles == ("ops",)
            with pytest.raises(Conflict, match="role 'ops' is held by carol"):
                await deletion[0]
            assert [r.name for r in await RoleRepo(granting).list()] == ["ops"]
        finally:
            await granting.close()
            await deleting.close()


@pytest.mark.postgres
async def test_a_role_granted_while_it_is_deleted_is_missing() -> None:
    async with pg_schema() as schema:
        db = pg_database(schema, f"grant-{schema}")
        other = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
        try:
            await upgrade(db)
            await RoleRepo(db).create("ops")
            await UserRepo(db).create("carol")
            await other.execute(f"SET search_path TO {schema}")
            deleting = other.transaction()
            await deleting.start()
            await other.execute("SELECT name FROM roles WHERE name = 'ops' FOR UPDATE")
            task = asyncio.create_task(UserRepo(db).set_roles("carol", ["ops"]))
            assert await wait_until_blocked(f"grant-{schema}", task)
            await other.execute("DELETE FROM roles WHERE name = 'ops'")
            await deleting.commit()
            with pytest.raises(Missing, match="no role named 'ops'"):
                await task
            assert (await UserRepo(db).get("carol")).roles == ()
        finally:
            await other.close()
            await db.close()
