"""The hash chain: its documented form, tamper detection, the head, the migration."""

from __future__ import annotations

import io
import json
import math
import random
import struct
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, select

from catalyst_mcp.errors import StorageError
from catalyst_mcp.observability import auditchain
from catalyst_mcp.observability.audit import AuditLog, export, search, verify
from catalyst_mcp.observability.auditchain import GENESIS, canonical_json, jsonable
from catalyst_mcp.storage.audit_model import AuditChain
from catalyst_mcp.storage.base import Base
from catalyst_mcp.storage.db import Database
from tests.observability.conftest import (
    documented_json,
    event_,
    execute,
    expected_hash,
    write,
)


async def test_records_form_one_chain_anyone_can_recompute(db: Database) -> None:
    await write(db, 7, batch_size=3)
    stream = io.StringIO()
    assert await export(db, stream) == 7
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, 8))
    assert lines[0]["prev_hash"] == GENESIS
    for before, line in zip([None, *lines], lines, strict=False):
        if before is not None:
            assert line["prev_hash"] == before["hash"]
        assert line["hash"] == expected_hash(line)
    assert lines[2]["at"].endswith("+00:00")
    assert lines[2]["latency_ms"] == 1.0
    assert lines[3]["latency_ms"] == 1.333  # rounded to microseconds
    report = await verify(db)
    assert report.ok
    assert report.records == 7
    assert report.last_hash == lines[-1]["hash"]
    async with db.engine.connect() as conn:
        head = (await conn.execute(select(AuditChain))).one()
    assert (head.id, head.last_seq, head.last_hash) == (1, 7, lines[-1]["hash"])


TRICKY: list[dict[str, Any]] = [
    {"actor": "ålice", "target": "tgt-é—😀", "latency_ms": 1e16},
    {
        "latency_ms": 123456.789,
        "detail": {
            "ключ": "値",
            "z": '\x01\x1f\u2028/\x7f"\\\n',
            "floats": [1e-7, 1.5e-7, 1e16, 5e-324, 1.5e300, -0.0, 0.00001, 123456.789, 2.0],
            "ints": [2**63 - 1, -(2**63)],
            "é": {"😀": 1, "\uffff": 2, "Z": 3},
        },
    },
    {"actor": "x" * 300 + "é", "target": "é" * 600, "detail": {"nul": "a\x00b"}},
]


async def test_an_export_recomputes_the_documented_way(db: Database) -> None:
    """Non-ASCII text, control characters, exponent floats: an export parsed with the json
    module and rehashed as the documentation says (tests/observability/conftest.py, written
    without orjson or auditchain) gives every stored hash."""
    async with AuditLog(db) as log:
        for n, fields in enumerate(TRICKY, 1):
            log.record(event_(n, **fields))
    stream = io.StringIO()
    assert await export(db, stream) == len(TRICKY)
    text = stream.getvalue()
    assert "ålice" in text  # UTF-8, not \u escapes
    assert '"latency_ms":1e+16' in text
    assert "1e-7,1.5e-7,1e+16,5e-324,1.5e+300,-0.0,0.00001,123456.789,2.0" in text
    # one record per "\n" (not str.splitlines: U+2028 is written as is)
    lines = [json.loads(line) for line in text.removesuffix("\n").split("\n")]
    assert [line["v"] for line in lines] == [auditchain.FORMAT] * len(TRICKY) == [1, 1, 1]
    for line in lines:
        assert line["hash"] == expected_hash(line)
    assert lines[1]["latency_ms"] == 123456.789
    assert lines[1]["detail"]["floats"][6] == 0.00001
    assert lines[1]["detail"]["é"] == {"😀": 1, "\uffff": 2, "Z": 3}
    assert lines[2]["target"] == "é" * 512
    # the version is hashed: the same line claiming another form does not match
    assert expected_hash({**lines[0], "v": 2}) != lines[0]["hash"]
    assert (await verify(db)).ok


def test_the_documented_form_is_the_canonical_form() -> None:
    """The test helper's independent encoder agrees with canonical_json on random data."""
    rng = random.Random(20260101)
    for _ in range(20000):
        bits = rng.getrandbits(64).to_bytes(8, "little")
        value = struct.unpack("<d", bits)[0]
        if not math.isfinite(value):
            continue
        scaled = rng.uniform(-1, 1) * 10 ** rng.randint(-25, 25)
        for number in (value, scaled):
            assert documented_json(number).encode() == canonical_json(number), number
    keys = {
        chr(rng.randrange(1, 0xD800)) + chr(rng.randrange(0xE000, 0x110000)) for _ in range(500)
    }
    every_char = "".join(map(chr, range(0x100))) + "\u2028\u2029\ufeff\uffff😀"
    value = {key: [every_char, rng.random(), rng.randrange(-(2**63), 2**63)] for key in keys}
    assert documented_json(value).encode() == canonical_json(value)


async def test_an_empty_trail_verifies(db: Database) -> None:
    report = await verify(db)
    assert (report.ok, report.records, report.last_hash) == (True, 0, GENESIS)


TAMPERING = {
    "edited target": (
        ["UPDATE audit_records SET target = 'other' WHERE seq = 3"],
        3,
        2,
        "edited",
    ),
    "edited detail": (
        ["""UPDATE audit_records SET detail = '{"n": 4}' WHERE seq = 4"""],
        4,
        3,
        "edited",
    ),
    "edited outcome and hash": (
        ["UPDATE audit_records SET outcome = 'denied', hash = repeat('a', 64) WHERE seq = 2"],
        2,
        1,
        "edited",
    ),
    "deleted in the middle": (["DELETE FROM audit_records WHERE seq = 3"], 3, 2, "missing"),
    "deleted the first": (["DELETE FROM audit_records WHERE seq = 1"], 1, 0, "missing"),
    "deleted the last": (["DELETE FROM audit_records WHERE seq = 6"], 6, 5, "deleted from the end"),
    "reordered": (
        [
            "UPDATE audit_records SET seq = -1 WHERE seq = 2",
            "UPDATE audit_records SET seq = 2 WHERE seq = 3",
            "UPDATE audit_records SET seq = 3 WHERE seq = -1",
        ],
        2,
        1,
        "prev_hash",
    ),
    "deleted and renumbered": (
        [
            "DELETE FROM audit_records WHERE seq = 4",
            "UPDATE audit_records SET seq = 4 WHERE seq = 5",
            "UPDATE audit_records SET seq = 5 WHERE seq = 6",
            "UPDATE audit_chain SET last_seq = 5",
        ],
        4,
        3,
        "prev_hash",
    ),
    "head hash edited": (["UPDATE audit_chain SET last_hash = repeat('b', 64)"], 6, 6, "head"),
    "head behind": (["UPDATE audit_chain SET last_seq = 4"], 5, 6, "head names record 4"),
    "head deleted": (["DELETE FROM audit_chain"], 6, 6, "head"),
}


@pytest.mark.parametrize(
    ("statements", "bad", "good", "why"), TAMPERING.values(), ids=list(TAMPERING)
)
async def test_tampering_is_detected(
    db: Database, statements: list[str], bad: int, good: int, why: str
) -> None:
    await write(db, 6)
    if db.dialect == "sqlite":
        statements = [s.replace("repeat('a', 64)", f"'{'a' * 64}'") for s in statements]
        statements = [s.replace("repeat('b', 64)", f"'{'b' * 64}'") for s in statements]
    await execute(db, *statements)
    report = await verify(db)
    assert not report.ok
    assert report.first_bad_seq == bad
    assert why in (report.reason or "")
    assert report.records == good


async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(db: Database) -> None:
    await write(db, 4)
    stream = io.StringIO()
    await export(db, stream)
    second = json.loads(stream.getvalue().splitlines()[1])
    forged = expected_hash({**second, "outcome": "denied"})
    await execute(
        db, f"UPDATE audit_records SET outcome = 'denied', hash = '{forged}' WHERE seq = 2"
    )
    report = await verify(db)
    assert (report.ok, report.first_bad_seq, report.records) == (False, 3, 2)
    assert "prev_hash" in (report.reason or "")


async def test_verify_reads_in_batches(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auditchain, "VERIFY_BATCH", 7)
    await write(db, 50, batch_size=9)
    assert (await verify(db)).records == 50
    await execute(db, "UPDATE audit_records SET actor = 'mallory' WHERE seq = 36")
    report = await verify(db)
    assert (report.ok, report.first_bad_seq, report.records) == (False, 36, 35)


async def test_a_missing_head_is_rebuilt_from_the_last_record(db: Database) -> None:
    await write(db, 3)
    await execute(db, "DELETE FROM audit_chain")
    await write(db, 2)
    report = await verify(db)
    assert (report.ok, report.records) == (True, 5)


async def test_a_database_without_the_tables_is_a_storage_error(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(StorageError, match="cannot verify the audit trail"):
            await verify(db)
        with pytest.raises(StorageError, match="cannot search"):
            await search(db)
    finally:
        await db.close()


async def test_the_migration_matches_the_model_and_creates_the_head(db: Database) -> None:
    def differences(conn: Connection) -> list[Any]:
        found = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        return [diff for diff in found if "audit_" in repr(diff)]

    async with db.engine.connect() as conn:
        assert await conn.run_sync(differences) == []
        head = (await conn.execute(select(AuditChain))).one()
    assert (head.id, head.last_seq, head.last_hash) == (1, 0, GENESIS)


def test_jsonable_makes_values_survive_a_round_trip() -> None:
    value = {1: (1, 2.5), "nan": float("nan"), "big": 2**70, "nul": "a\x00b", "x": object}
    clean = jsonable(value)
    assert clean["1"] == [1, 2.5]
    assert clean["nan"] == "nan"
    assert clean["big"] == str(2**70)
    assert clean["nul"] == "a\ufffdb"
    assert clean["x"] == "<class 'object'>"
    assert jsonable("\ud800x") == "?x"
