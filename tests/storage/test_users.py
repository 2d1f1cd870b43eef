"""Users: unique names, roles that must exist, updates, and deletion that cascades."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC

import pytest
from sqlalchemy import text

from catalyst_mcp.errors import Conflict, Missing, StorageError
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.roles import RoleRepo
from catalyst_mcp.storage.secrets import SecretRepo
from catalyst_mcp.storage.users import KEEP, UserRecord, UserRepo


@pytest.fixture
async def users(database: Database) -> UserRepo:
    roles = RoleRepo(database)
    await roles.create("admin", "everything", [{"allow": "*"}])
    await roles.create("reader", "read only", [])
    return UserRepo(database)


async def test_create_and_get(users: UserRepo) -> None:
    made = await users.create(
        "ada", display_name="Ada L.", email="ada@example.com", roles=["reader", "admin"]
    )
    assert isinstance(made, UserRecord)
    assert (made.name, made.kind, made.display_name, made.email) == (
        "ada",
        "user",
        "Ada L.",
        "ada@example.com",
    )
    assert made.roles == ("admin", "reader")
    assert made.disabled is False
    assert made.created_at.tzinfo is UTC
    assert await users.get("ada") == made


async def test_a_taken_name_is_a_conflict(users: UserRepo) -> None:
    await users.create("ada")
    with pytest.raises(Conflict, match="a user named 'ada' already exists"):
        await users.create("ada", kind="service")
    assert [u.name for u in await users.list()] == ["ada"]


async def test_unknown_roles_are_named_and_nothing_is_created(users: UserRepo) -> None:
    with pytest.raises(Missing, match="no roles named 'ghost', 'wraith'"):
        await users.create("ada", roles=["reader", "wraith", "ghost"])
    with pytest.raises(Missing, match="no user named 'ada'"):
        await users.get("ada")


async def test_kind_and_name_are_checked(users: UserRepo) -> None:
    with pytest.raises(StorageError, match="'user' or 'service'"):
        await users.create("bot", kind="robot")
    with pytest.raises(StorageError, match="1 to 128 characters"):
        await users.create("x" * 129)
    with pytest.raises(StorageError, match="1 to 128 characters"):
        await users.create("")


async def test_list_is_sorted_with_each_users_roles(users: UserRepo) -> None:
    await users.create("zed", kind="service", roles=["reader"])
    await users.create("ada", roles=["admin", "reader"])
    await users.create("bob")
    listed = await users.list()
    assert [(u.name, u.kind, u.roles) for u in listed] == [
        ("ada", "user", ("admin", "reader")),
        ("bob", "user", ()),
        ("zed", "service", ("reader",)),
    ]


async def test_update_changes_only_what_is_given(users: UserRepo) -> None:
    made = await users.create("ada", display_name="Ada", email="ada@example.com")
    changed = await users.update("ada", disabled=True)
    assert (changed.display_name, changed.email, changed.disabled) == (
        "Ada",
        "ada@example.com",
        True,
    )
    assert changed.updated_at >= made.updated_at
    changed = await users.update("ada", email=None, display_name=KEEP)
    assert (changed.display_name, changed.email, changed.disabled) == ("Ada", None, True)
    assert await users.get("ada") == changed
    with pytest.raises(Missing):
        await users.update("nobody", disabled=True)


async def test_set_roles_replaces_them(users: UserRepo) -> None:
    await users.create("ada", roles=["reader"])
    assert (await users.set_roles("ada", ["admin", "reader"])).roles == ("admin", "reader")
    assert (await users.set_roles("ada", [])).roles == ()
    with pytest.raises(Missing, match="no role named 'ghost'"):
        await users.set_roles("ada", ["admin", "ghost"])
    assert (await users.get("ada")).roles == ()  # unchanged by the failed call
    with pytest.raises(Missing, match="no user named 'bob'"):
        await users.set_roles("bob", ["admin"])


async def test_delete_cascades_to_keys_grants_and_owned_secrets(
    database: Database, users: UserRepo
) -> None:
    keys, secrets, roles = KeyRepo(database), SecretRepo(database), RoleRepo(database)
    await users.create("ada", roles=["admin"])
    await users.create("bob", roles=["admin"])
    await keys.create("ada", "laptop", "adakey01", "a" * 64)
    await keys.create("bob", "ci", "bobkey01", "b" * 64)
    await secrets.put("ada", "github", "token", "k1", b"n" * 12, b"sealed")
    await secrets.put("*", "github", "token", "k1", b"n" * 12, b"shared")
    await users.delete("ada")
    with pytest.raises(Missing):
        await users.get("ada")
    assert await keys.find("adakey01") is None
    assert [k.prefix for k in await keys.list()] == ["bobkey01"]
    assert await roles.holders("admin") == ["bob"]
    assert [(s.owner, s.name) for s in await secrets.list()] == [("*", "token")]
    # a new user of the same name starts with nothing
    again = await users.create("ada")
    assert again.roles == ()
    assert await keys.list("ada") == []


async def test_concurrent_writers_all_succeed(users: UserRepo) -> None:
    """On SQLite, read-then-write transactions take the write lock first (no "locked")."""
    names = [f"u{n:02}" for n in range(12)]
    await asyncio.gather(*(users.create(name, roles=["reader"]) for name in names))
    await asyncio.gather(*(users.update(name, disabled=True) for name in names))
    await asyncio.gather(*(users.set_roles(name, ["admin"]) for name in names))
    listed = await users.list()
    assert [(u.name, u.disabled, u.roles) for u in listed] == [(n, True, ("admin",)) for n in names]


async def test_delete_of_a_missing_user(users: UserRepo) -> None:
    with pytest.raises(Missing, match="no user named 'nobody'"):
        await users.delete("nobody")


@pytest.mark.parametrize("name", ["*", "anonymous"])
async def test_reserved_names_are_refused(users: UserRepo, name: str) -> None:
    reserved = f"the user name {re.escape(repr(name))} is reserved: '\\*' stands for everyone"
    with pytest.raises(StorageError, match=reserved):
        await users.create(name)
    assert await users.list() == []


async def test_deleting_a_user_named_star_keeps_the_shared_secrets(
    database: Database, users: UserRepo
) -> None:
    """A user named '*' from before the name was reserved: its deletion must not take the
    secrets shared by everyone (owner '*') with it."""
    secrets = SecretRepo(database)
    await secrets.put("*", "github", "token", "k1", b"n" * 12, b"shared")
    await secrets.put("*", "*", "api_key", "k1", b"n" * 12, b"shared")
    async with database.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (name, kind, disabled, created_at, updated_at) VALUES "
                "('*', 'user', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    await users.delete("*")
    with pytest.raises(Missing):
        await users.get("*")
    assert [(s.owner, s.scope, s.name) for s in await secrets.list()] == [
        ("*", "*", "api_key"),
        ("*", "github", "token"),
    ]
