"""Roles: create, upsert, list, and deletion refused while users hold them."""

from __future__ import annotations

import pytest

from catalyst_mcp.errors import Conflict, Missing, StorageError
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.roles import RoleRecord, RoleRepo
from catalyst_mcp.storage.users import UserRepo

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
