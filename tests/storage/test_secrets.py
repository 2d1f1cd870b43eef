"""Sealed secrets: upsert, the most specific candidate, metadata-only lists, and resealing."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from catalyst_mcp.errors import Missing, StorageError
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.secrets import ANY, SealedSecret, SecretRecord, SecretRepo

NONCE = b"\x01" * 12


@pytest.fixture
def secrets(database: Database) -> SecretRepo:
    return SecretRepo(database)


async def test_put_then_get_the_sealed_bytes(secrets: SecretRepo) -> None:
    stored = await secrets.put("ada", "github", "token", "k1", NONCE, b"\x00sealed\xff")
    assert isinstance(stored, SecretRecord)
    assert (stored.owner, stored.scope, stored.name, stored.key_id) == (
        "ada",
        "github",
        "token",
        "k1",
    )
    got = await secrets.get("ada", "github", "token")
    assert isinstance(got, SealedSecret)
    assert (got.id, got.nonce, got.ciphertext) == (stored.id, NONCE, b"\x00sealed\xff")
    assert "sealed" not in repr(got)


async def test_put_replaces_the_value_in_place(secrets: SecretRepo) -> None:
    first = await secrets.put("ada", "github", "token", "k1", NONCE, b"one")
    second = await secrets.put("ada", "github", "token", "k2", b"\x02" * 12, b"two")
    assert second.id == first.id
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    got = await secrets.get("ada", "github", "token")
    assert (got.key_id, got.nonce, got.ciphertext) == ("k2", b"\x02" * 12, b"two")
    assert len(await secrets.list()) == 1


async def test_get_and_delete_of_a_missing_secret(secrets: SecretRepo) -> None:
    with pytest.raises(Missing, match="no secret 'token' for owner 'ada' and scope 'github'"):
        await secrets.get("ada", "github", "token")
    with pytest.raises(Missing, match="no secret 'token'"):
        await secrets.delete("ada", "github", "token")


async def test_delete_removes_exactly_one(secrets: SecretRepo) -> None:
    await secrets.put("ada", "github", "token", "k1", NONCE, b"a")
    await secrets.put("ada", ANY, "token", "k1", NONCE, b"b")
    await secrets.delete("ada", "github", "token")
    assert [(s.owner, s.scope) for s in await secrets.list()] == [("ada", ANY)]


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ([("ada", "github"), ("ada", ANY), (ANY, "github"), (ANY, ANY)], ("ada", "github")),
        ([("ada", ANY), (ANY, "github"), (ANY, ANY)], ("ada", ANY)),
        ([(ANY, "github"), (ANY, ANY)], (ANY, "github")),
        ([(ANY, ANY)], (ANY, ANY)),
        ([("bob", "github"), ("ada", "gitlab")], None),
        ([], None),
    ],
    ids=["own-scoped", "own-any", "shared-scoped", "shared-any", "others-only", "none"],
)
async def test_candidates_take_the_most_specific(
    secrets: SecretRepo, stored: list[tuple[str, str]], expected: tuple[str, str] | None
) -> None:
    for owner, scope in reversed(stored):  # insertion order must not matter
        await secrets.put(owner, scope, "token", "k1", NONCE, f"{owner}/{scope}".encode())
    await secrets.put("ada", "github", "other-name", "k1", NONCE, b"x")
    found = await secrets.candidates("ada", "github", "token")
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (found.owner, found.scope) == expected
        assert found.ciphertext == f"{expected[0]}/{expected[1]}".encode()


async def test_list_filters_and_never_carries_values(secrets: SecretRepo) -> None:
    await secrets.put("bob", "github", "token", "k1", NONCE, b"a")
    await secrets.put("ada", "github", "token", "k1", NONCE, b"b")
    await secrets.put("ada", ANY, "email", "k1", NONCE, b"c")
    await secrets.put(ANY, "github", "token", "k1", NONCE, b"d")
    everything = await secrets.list()
    assert [(s.owner, s.scope, s.name) for s in everything] == [
        (ANY, "github", "token"),
        ("ada", ANY, "email"),
        ("ada", "github", "token"),
        ("bob", "github", "token"),
    ]
    assert all(not hasattr(s, "ciphertext") and not hasattr(s, "nonce") for s in everything)
    assert [s.scope for s in await secrets.list(owner="ada")] == [ANY, "github"]
    assert [s.owner for s in await secrets.list(scope="github")] == [ANY, "ada", "bob"]
    assert [s.name for s in await secrets.list(owner="ada", scope="github")] == ["token"]


async def test_names_are_checked(secrets: SecretRepo) -> None:
    with pytest.raises(StorageError, match="a secret's name must be 1 to 128"):
        await secrets.put("ada", "github", "n" * 129, "k1", NONCE, b"x")
    with pytest.raises(StorageError, match="a key id must be 1 to 64"):
        await secrets.put("ada", "github", "token", "", NONCE, b"x")


async def test_iter_sealed_walks_everything_in_batches(secrets: SecretRepo) -> None:
    for n in range(7):
        await secrets.put("ada", "s", f"n{n}", "old" if n % 2 else "new", NONCE, bytes([n]))
    every = [s async for s in secrets.iter_sealed(batch=3)]
    assert [s.name for s in every] == [f"n{n}" for n in range(7)]
    old = [s async for s in secrets.iter_sealed(batch=2, skip_key_id="new")]
    assert [s.name for s in old] == ["n1", "n3", "n5"]
    assert [s async for s in secrets.iter_sealed(batch=7, skip_key_id="none")] == every
    with pytest.raises(ValueError, match="at least 1"):
        _ = [s async for s in secrets.iter_sealed(batch=0)]


async def test_replace_sealed_is_a_compare_and_swap(secrets: SecretRepo) -> None:
    stored = await secrets.put("ada", "github", "token", "old", NONCE, b"v-old")
    read = await secrets.get("ada", "github", "token")
    assert await secrets.replace_sealed(read, "new", b"\x02" * 12, b"v-new")
    got = await secrets.get("ada", "github", "token")
    assert (got.key_id, got.nonce, got.ciphertext) == ("new", b"\x02" * 12, b"v-new")
    assert got.updated_at == stored.updated_at  # the value itself did not change
    # a second rotation that read the row before the first one swapped loses
    assert not await secrets.replace_sealed(read, "new", b"\x03" * 12, b"stale")
    assert (await secrets.get("ada", "github", "token")).ciphertext == b"v-new"
    gone = dataclasses.replace(got, id=got.id + 1000)
    assert not await secrets.replace_sealed(gone, "newer", NONCE, b"x")


async def test_concurrent_rotations_swap_once(secrets: SecretRepo) -> None:
    await secrets.put("ada", "github", "token", "old", NONCE, b"v-old")
    read = await secrets.get("ada", "github", "token")
    results = await asyncio.gather(
        *(
            secrets.replace_sealed(read, "new", bytes([n + 2]) * 12, f"r{n}".encode())
            for n in range(4)
        )
    )
    assert sorted(results) == [False, False, False, True]
    winner = results.index(True)
    assert (await secrets.get("ada", "github", "token")).ciphertext == f"r{winner}".encode()


async def test_a_new_value_beats_a_rotation_in_flight(secrets: SecretRepo) -> None:
    await secrets.put("ada", "github", "token", "old", NONCE, b"v-old")
    read = await secrets.get("ada", "github", "token")
    await secrets.put("ada", "github", "token", "new", b"\x02" * 12, b"v-user")
    assert not await secrets.replace_sealed(read, "new", b"\x03" * 12, b"v-resealed")
    assert (await secrets.get("ada", "github", "token")).ciphertext == b"v-user"


async def test_a_new_value_under_the_old_key_beats_a_rotation_in_flight(
    secrets: SecretRepo,
) -> None:
    """A gateway not yet given the new key stores a value during the rotation: still sealed
    with the old key, so only the nonce tells the rotation that the row changed."""
    await secrets.put("ada", "github", "token", "old", NONCE, b"v-revoked")
    read = await secrets.get("ada", "github", "token")
    await secrets.put("ada", "github", "token", "old", b"\x02" * 12, b"v-current")
    assert not await secrets.replace_sealed(read, "new", b"\x03" * 12, b"v-revoked-resealed")
    got = await secrets.get("ada", "github", "token")
    assert (got.key_id, got.nonce, got.ciphertext) == ("old", b"\x02" * 12, b"v-current")
