"""The secret store: sealed values resolved most-specific-first, and key rotation that runs
while gateways keep serving (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from catalyst_mcp.errors import ConfigError, Missing, StorageError
from catalyst_mcp.security.secretstore import ANY, RotateReport, SecretStore, check_secret_name
from catalyst_mcp.security.vault import (
    ENV_ACTIVE,
    ENV_PREVIOUS,
    KeyRing,
    SecretUnreadable,
    Vault,
    generate_key,
)
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from catalyst_mcp.storage.secrets import SealedSecret
from tests.storage.conftest import BACKENDS, open_database

OLD, NEW, OTHER = generate_key(), generate_key(), generate_key()
CANARY = "canary-7f3a9c-do-not-print"


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database (as in tests/storage), closed afterwards."""
    async with open_database(request.param, tmp_path) as db:
        await upgrade(db)
        yield db


def store_with(db: Database, active: str, *previous: str) -> SecretStore:
    env = {ENV_ACTIVE: active}
    if previous:
        env[ENV_PREVIOUS] = ",".join(previous)
    return SecretStore.from_environ(db, env)


def key_id(key: str) -> str:
    return key.partition(":")[0]


@pytest.fixture
def store(database: Database) -> SecretStore:
    return store_with(database, OLD)


# ---- put, resolve, list, delete -----------------------------------------------------------------


async def test_put_then_resolve(store: SecretStore) -> None:
    record = await store.put("ada", "github", "token", CANARY)
    assert (record.owner, record.scope, record.name, record.key_id) == (
        "ada",
        "github",
        "token",
        key_id(OLD),
    )
    assert await store.resolve("ada", "github", "token") == CANARY
    assert await store.resolve("ada", "github", "other") is None
    assert await store.resolve("bob", "github", "token") is None
    sealed = await store.repo.get("ada", "github", "token")
    assert CANARY.encode() not in sealed.ciphertext


LEVELS = [("ada", "github"), ("ada", ANY), (ANY, "github"), (ANY, ANY)]


@pytest.mark.parametrize("present", range(len(LEVELS)), ids=["own", "own-any", "shared", "any"])
async def test_resolve_takes_the_most_specific(store: SecretStore, present: int) -> None:
    for owner, scope in LEVELS[present:]:
        await store.put(owner, scope, "token", f"{owner}/{scope}")
    owner, scope = LEVELS[present]
    assert await store.resolve("ada", "github", "token") == f"{owner}/{scope}"
    assert await store.resolve("bob", "gitlab", "token") == "*/*"


async def test_put_replaces_and_list_shows_metadata_only(store: SecretStore) -> None:
    first = await store.put(ANY, ANY, "api.key-1_x", "one")
    second = await store.put(ANY, ANY, "api.key-1_x", CANARY)
    assert second.id == first.id
    assert await store.resolve("ada", "crm", "api.key-1_x") == CANARY
    await store.put("ada", "crm", "token", "two")
    assert [(r.owner, r.scope, r.name) for r in await store.list()] == [
        (ANY, ANY, "api.key-1_x"),
        ("ada", "crm", "token"),
    ]
    assert [r.name for r in await store.list(owner="ada")] == ["token"]
    assert [r.name for r in await store.list(scope="crm")] == ["token"]
    assert CANARY not in repr(await store.list())


async def test_delete(store: SecretStore) -> None:
    await store.put("ada", ANY, "token", "x")
    await store.delete("ada", ANY, "token")
    assert await store.resolve("ada", "github", "token") is None
    with pytest.raises(Missing, match="no secret 'token'"):
        await store.delete("ada", ANY, "token")


@pytest.mark.parametrize("name", ["", "a b", "ä", "x/y", "a" * 129, "$HOME"])
async def test_bad_names_are_refused(store: SecretStore, name: str) -> None:
    with pytest.raises(StorageError, match="letters, digits"):
        await store.put("ada", ANY, name, "x")
    assert await store.list() == []


def test_good_names() -> None:
    for name in ["a", "A.b-c_9", "x" * 128]:
        assert check_secret_name(name) == name


# ---- without a key ------------------------------------------------------------------------------


async def test_without_a_key_every_use_says_how_to_make_one(database: Database) -> None:
    store = SecretStore.from_environ(database, {ENV_PREVIOUS: OLD})
    calls = [
        store.put("ada", ANY, "token", "x"),
        store.resolve("ada", ANY, "token"),
        store.delete("ada", ANY, "token"),
        store.list(),
        store.rotate(),
    ]
    for call in calls:
        with pytest.raises(ConfigError) as caught:
            await call
        message = str(caught.value)
        assert "CATALYST_SECRET_KEY is not set" in message
        assert "catalyst secrets generate-key" in message


async def test_an_invalid_key_is_a_config_error(database: Database) -> None:
    with pytest.raises(ConfigError, match="CATALYST_SECRET_KEY"):
        SecretStore.from_environ(database, {ENV_ACTIVE: "not-a-key"})


async def test_repr_shows_key_ids_only(database: Database) -> None:
    store = store_with(database, NEW, OLD)
    text = repr(store)
    assert key_id(NEW) in text and key_id(OLD) in text
    assert NEW.partition(":")[2] not in text and OLD.partition(":")[2] not in text


# ---- moved and altered values ----------------------------------------------------------------


async def _move(store: SecretStore, source: tuple[str, str, str], to: tuple[str, str, str]) -> None:
    """Copy a stored ciphertext, byte for byte, to another owner/scope/name."""
    row = await store.repo.get(*source)
    await store.repo.put(*to, row.key_id, row.nonce, row.ciphertext)


@pytest.mark.parametrize(
    "to",
    [("bob", "github", "token"), ("ada", "gitlab", "token"), ("ada", "github", "password")],
    ids=["owner", "scope", "name"],
)
async def test_a_moved_ciphertext_does_not_open(
    store: SecretStore, to: tuple[str, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await store.put("ada", "github", "token", CANARY)
    await _move(store, ("ada", "github", "token"), to)
    with pytest.raises(SecretUnreadable, match="another owner, scope or name") as caught:
        await store.resolve(*to)
    assert CANARY not in str(caught.value)
    assert CANARY not in caplog.text


async def test_an_altered_ciphertext_does_not_open(store: SecretStore) -> None:
    await store.put("ada", ANY, "token", CANARY)
    row = await store.repo.get("ada", ANY, "token")
    altered = bytes([row.ciphertext[0] ^ 1]) + row.ciphertext[1:]
    await store.repo.put("ada", ANY, "token", row.key_id, row.nonce, altered)
    with pytest.raises(SecretUnreadable, match="altered"):
        await store.resolve("ada", ANY, "token")


# ---- rotation -----------------------------------------------------------------------------------


async def test_rotate_reseals_everything_in_batches(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    old = store_with(database, OLD)
    values = {f"s{i:03}": f"{CANARY}-{i}" for i in range(23)}
    for name, value in values.items():
        await old.put("ada", ANY, name, value)
    new = store_with(database, NEW, OLD)
    await new.put("ada", ANY, "fresh", "already new")  # sealed with the new key already
    seen: list[tuple[int, int]] = []
    report = await new.rotate(lambda done, total: seen.append((done, total)), batch=5)
    assert report == RotateReport(key_id(NEW), 23, 1, ())
    assert report.ok
    assert seen == [(n, 24) for n in range(1, 25)]
    assert {r.key_id for r in await new.list()} == {key_id(NEW)}
    only_new = store_with(database, NEW)  # the old key can now be dropped
    for name, value in values.items():
        assert await only_new.resolve("ada", "crm", name) == value
    again = await only_new.rotate()
    assert (again.resealed, again.already_current, again.failed) == (0, 24, ())
    assert CANARY not in caplog.text
    assert "23 resealed, 1 already current, 0 failed" in caplog.text


async def test_rotate_reports_unreadable_values_and_goes_on(database: Database) -> None:
    old = store_with(database, OLD)
    await old.put("ada", ANY, "a-good", "1")
    await old.put("ada", ANY, "moved", CANARY)
    await _move(old, ("ada", ANY, "moved"), ("bob", ANY, "moved"))  # bob's copy cannot open
    await store_with(database, OTHER).put(ANY, "crm", "lost-key", "2")  # key not configured
    await old.put("ada", ANY, "z-good", "3")
    report = await store_with(database, NEW, OLD).rotate()
    assert (report.resealed, report.already_current, report.ok) == (3, 0, False)
    failed = {(f.owner, f.scope, f.name): f.reason for f in report.failed}
    assert set(failed) == {("bob", ANY, "moved"), (ANY, "crm", "lost-key")}
    assert "another owner, scope or name" in failed["bob", ANY, "moved"]
    assert f"key {key_id(OTHER)!r}, which is not configured" in failed[ANY, "crm", "lost-key"]
    assert CANARY not in repr(report)
    after = store_with(database, NEW)
    assert [await after.resolve("ada", ANY, n) for n in ("a-good", "moved", "z-good")] == [
        "1",
        CANARY,
        "3",
    ]


async def test_a_value_changed_during_rotation_wins(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store_with(database, OLD).put("ada", ANY, "token", "old value")
    await store_with(database, OLD).put("ada", ANY, "gone", "deleted meanwhile")
    rotating = store_with(database, NEW, OLD)
    serving = store_with(database, NEW, OLD)  # another gateway, writing as it serves
    replace = rotating.repo.replace_sealed

    async def interfere(current: SealedSecret, new_key: str, nonce: bytes, data: bytes) -> bool:
        if current.name == "token":
            await serving.put("ada", ANY, "token", "new value")
        else:
            await serving.delete("ada", ANY, "gone")
        return await replace(current, new_key, nonce, data)

    monkeypatch.setattr(rotating.repo, "replace_sealed", interfere)
    report = await rotating.rotate()
    assert (report.resealed, report.already_current, report.failed) == (0, 1, ())
    assert await serving.resolve("ada", ANY, "token") == "new value"
    assert [r.name for r in await serving.list()] == ["token"]


async def test_a_value_stored_under_the_old_key_during_rotation_wins(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway (or an operator's shell) not yet given the new key stores a value while the
    rotation runs: sealed with the old key again, the row must still not be overwritten with
    the value the rotation read before it."""
    not_switched = store_with(database, OLD)
    await not_switched.put("alice", ANY, "token", "V1-revoked")
    rotating = store_with(database, NEW, OLD)
    replace = rotating.repo.replace_sealed

    async def racing(current: SealedSecret, new_key: str, nonce: bytes, data: bytes) -> bool:
        # between the rotation's read and its compare-and-swap, the value is replaced
        await not_switched.put("alice", ANY, "token", "V2-current")
        monkeypatch.setattr(rotating.repo, "replace_sealed", replace)
        return await replace(current, new_key, nonce, data)

    monkeypatch.setattr(rotating.repo, "replace_sealed", racing)
    report = await rotating.rotate()
    assert (report.resealed, report.already_current, report.failed) == (1, 0, ())
    assert await rotating.resolve("alice", "x", "token") == "V2-current"
    assert {r.key_id for r in await rotating.list()} == {key_id(NEW)}  # resealed on retry


async def test_resolve_during_rotation_returns_the_right_values(database: Database) -> None:
    """A gateway with both keys keeps reading (and writing) while another process rotates."""
    old = store_with(database, OLD)
    expected = {f"k{i:03}": f"value-{i}" for i in range(60)}
    for name, value in expected.items():
        await old.put("svc", ANY, name, value)
    serving = store_with(database, NEW, OLD)
    rotating = store_with(database, NEW, OLD)
    rotation_done = asyncio.Event()
    checked = 0

    async def serve() -> None:
        nonlocal checked
        names = list(expected)
        while not rotation_done.is_set() or checked < len(names):
            name = names[checked % len(names)]
            if checked % 7 == 0:  # a user changes a value meanwhile
                expected[name] = f"changed-{checked}"
                await serving.put("svc", ANY, name, expected[name])
            assert await serving.resolve("svc", "crm", name) == expected[name]
            checked += 1
            await asyncio.sleep(0)

    async def rotate() -> RotateReport:
        try:
            return await rotating.rotate(batch=4)
        finally:
            rotation_done.set()

    report, _ = await asyncio.gather(rotate(), serve())
    assert report.ok
    assert report.resealed + report.already_current == 60
    assert {r.key_id for r in await serving.list()} == {key_id(NEW)}
    after = SecretStore(database, Vault(KeyRing.from_environ({ENV_ACTIVE: NEW})))
    for name, value in expected.items():
        assert await after.resolve("svc", "any", name) == value
