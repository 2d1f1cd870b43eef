"""API keys: unique prefixes, the one-query lookup, listing, revocation and batched touches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from sqlalchemy import event

from catalyst_mcp.errors import Conflict, Missing, StorageError
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.keys import KeyCredential, KeyRecord, KeyRepo
from catalyst_mcp.storage.migrate import upgrade
from catalyst_mcp.storage.roles import RoleRepo
from catalyst_mcp.storage.users import UserRepo
from tests.storage.conftest import PG_URL, pg_database, pg_schema, wait_until_blocked

HASH = "ab" * 32
T0 = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.fixture
async def keys(database: Database) -> KeyRepo:
    roles = RoleRepo(database)
    await roles.create("reader")
    await roles.create("writer")
    users = UserRepo(database)
    await users.create("ada", roles=["writer", "reader"])
    await users.create("ci", kind="service")
    return KeyRepo(database)


async def test_create_returns_the_record_without_the_hash(keys: KeyRepo) -> None:
    made = await keys.create("ada", "laptop", "abcd2345", HASH, ["tools:read", "a"], T0)
    assert isinstance(made, KeyRecord)
    assert (made.user, made.name, made.prefix) == ("ada", "laptop", "abcd2345")
    assert made.scopes == frozenset({"a", "tools:read"})
    assert made.expires_at == T0
    assert made.revoked_at is None and made.last_used_at is None
    assert not hasattr(made, "key_hash")


async def test_a_taken_prefix_is_a_conflict(keys: KeyRepo) -> None:
    await keys.create("ada", "one", "abcd2345", HASH)
    with pytest.raises(Conflict, match="prefix 'abcd2345' already exists"):
        await keys.create("ci", "two", "abcd2345", HASH)


async def test_a_key_for_a_missing_user(keys: KeyRepo) -> None:
    with pytest.raises(Missing, match="no user named 'ghost'"):
        await keys.create("ghost", "x", "abcd2345", HASH)


async def test_fields_are_checked(keys: KeyRepo) -> None:
    with pytest.raises(StorageError, match="a key prefix must be 1 to 24"):
        await keys.create("ada", "x", "p" * 25, HASH)
    with pytest.raises(StorageError, match="a key hash must be 1 to 64"):
        await keys.create("ada", "x", "abcd2345", HASH + "0")


async def test_find_gives_what_authentication_needs(keys: KeyRepo) -> None:
    await keys.create("ada", "laptop", "abcd2345", HASH, ["tools:read"], T0)
    found = await keys.find("abcd2345")
    assert found == KeyCredential(
        prefix="abcd2345",
        key_hash=HASH,
        expires_at=T0,
        revoked_at=None,
        scopes=frozenset({"tools:read"}),
        user="ada",
        kind="user",
        disabled=False,
        roles=("reader", "writer"),
    )
    assert HASH not in repr(found)


async def test_find_without_scopes_or_roles(keys: KeyRepo) -> None:
    await keys.create("ci", "deploy", "cicd2345", HASH)
    found = await keys.find("cicd2345")
    assert found is not None
    assert (found.scopes, found.roles, found.kind, found.expires_at) == (None, (), "service", None)
    assert await keys.find("nokey234") is None


async def test_find_sees_a_disabled_owner(database: Database, keys: KeyRepo) -> None:
    await keys.create("ada", "laptop", "abcd2345", HASH)
    await UserRepo(database).update("ada", disabled=True)
    found = await keys.find("abcd2345")
    assert found is not None and found.disabled is True


async def test_find_is_one_query(database: Database, keys: KeyRepo) -> None:
    await keys.create("ada", "laptop", "abcd2345", HASH)
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert await keys.find("abcd2345") is not None
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == 1


async def test_list_all_or_one_users(keys: KeyRepo) -> None:
    await keys.create("ci", "deploy", "cicd2345", HASH)
    await keys.create("ada", "laptop", "abcd2345", HASH)
    await keys.create("ada", "phone", "abcd2346", HASH)
    assert [(k.user, k.name) for k in await keys.list()] == [
        ("ada", "laptop"),
        ("ada", "phone"),
        ("ci", "deploy"),
    ]
    assert [k.prefix for k in await keys.list("ci")] == ["cicd2345"]
    with pytest.raises(Missing, match="no user named 'ghost'"):
        await keys.list("ghost")


async def test_revoke_is_immediate_and_idempotent(keys: KeyRepo) -> None:
    await keys.create("ada", "laptop", "abcd2345", HASH)
    revoked = await keys.revoke("abcd2345")
    assert revoked.revoked_at is not None
    found = await keys.find("abcd2345")
    assert found is not None and found.revoked_at == revoked.revoked_at
    again = await keys.revoke("abcd2345")
    assert again.revoked_at == revoked.revoked_at
    with pytest.raises(Missing, match="no key with prefix 'nokey234'"):
        await keys.revoke("nokey234")


async def test_touch_records_last_use_in_one_batch(keys: KeyRepo) -> None:
    await keys.create("ada", "laptop", "abcd2345", HASH)
    await keys.create("ci", "deploy", "cicd2345", HASH)
    later = T0 + timedelta(minutes=5)
    await keys.touch({"abcd2345": T0, "cicd2345": later, "unknown1": T0})
    used = {k.prefix: k.last_used_at for k in await keys.list()}
    assert used == {"abcd2345": T0, "cicd2345": later}
    # an older time arriving late does not move it back; a newer one does
    await keys.touch({"abcd2345": later, "cicd2345": T0})
    used = {k.prefix: k.last_used_at for k in await keys.list()}
    assert used == {"abcd2345": later, "cicd2345": later}
    await keys.touch({})


async def test_times_are_utc_aware_and_naive_ones_refused(keys: KeyRepo) -> None:
    with pytest.raises(StorageError, match="expires_at must be a timezone-aware time"):
        await keys.create("ada", "x", "abcd2345", HASH, expires_at=T0.replace(tzinfo=None))
    other_zone = T0.astimezone(timezone(timedelta(hours=2)))
    made = await keys.create("ada", "x", "abcd2345", HASH, expires_at=other_zone)
    assert made.expires_at == T0 and made.expires_at.tzinfo is UTC
    found = await keys.find("abcd2345")
    assert found is not None and found.expires_at == T0 and found.expires_at.tzinfo is UTC
    with pytest.raises(StorageError, match="a last-used time must be"):
        await keys.touch({"abcd2345": T0.replace(tzinfo=None)})


@pytest.mark.postgres
async def test_touch_and_deleting_the_owner_never_deadlock() -> None:
    """Both lock the keys by id. Before, touch() updated them in prefix order (key 2 first)
    and the deletion's ON DELETE CASCADE deleted them in id order: with key 2 held by a third
    transaction, touch waited for it, the cascade took key 1 and waited for key 2 too; once
    key 2 was free touch took it and waited for key 1: a deadlock, one of them failed."""
    async with pg_schema() as schema:
        setup = pg_database(schema)
        touching = pg_database(schema, f"touch-{schema}")
        deleting = pg_database(schema, f"delete-{schema}")
        holder = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
        try:
            await upgrade(setup)
            await UserRepo(setup).create("bob")
            first = await KeyRepo(setup).create("bob", "first", "zzzzzzzz", HASH)
            second = await KeyRepo(setup).create("bob", "second", "aaaaaaaa", HASH)
            assert first.id < second.id  # prefix order is the reverse of id order
            await holder.execute(f"SET search_path TO {schema}")
            held = holder.transaction()
            await held.start()
            await holder.execute(f"SELECT id FROM api_keys WHERE id = {second.id} FOR UPDATE")
            touch = asyncio.create_task(KeyRepo(touching).touch({"zzzzzzzz": T0, "aaaaaaaa": T0}))
            assert await wait_until_blocked(f"touch-{schema}", touch)
            delete = asyncio.create_task(UserRepo(deleting).delete("bob"))
            assert await wait_until_blocked(f"delete-{schema}", delete)
            await held.commit()
            await asyncio.wait_for(asyncio.gather(touch, delete), 10)
            assert await KeyRepo(setup).list() == []
        finally:
            await holder.close()
            for db in (setup, touching, deleting):
                await db.close()
