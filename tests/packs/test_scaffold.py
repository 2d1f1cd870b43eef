"""Starter packs are valid as written; the SQL one's tests pass against the sample database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from catalyst_mcp.packs.loader import load_pack
from catalyst_mcp.packs.scaffold import SAMPLE_SQL, env_prefix, next_steps, pack_text
from catalyst_mcp.packs.schema import RestConnection
from catalyst_mcp.packs.testing import run_pack


def write(folder: Path, name: str, kind: str) -> Path:
    file = folder / f"{name}.yaml"
    text = pack_text(name, "sql" if kind == "sql" else "rest", str(file), str(folder / "x.db"))
    file.write_text(text, encoding="utf-8")
    return file


async def test_sql_starter_is_valid_and_its_tests_pass(tmp_path: Path) -> None:
    file = write(tmp_path, "my_shop", "sql")
    loaded = load_pack(file, {})  # no environment variable is needed
    pack = loaded.pack
    assert pack.pack == "my_shop"
    assert [t.name for t in pack.tools] == ["find_items", "get_item"]
    assert [r.uri or r.uri_template for r in pack.resources] == [
        "my-shop://schema",
        "my-shop://items/{id}",
    ]
    assert len(pack.tests) == 3
    with sqlite3.connect(tmp_path / "my_shop.db") as db:
        db.executescript(SAMPLE_SQL)
    db.close()
    run = await run_pack(loaded)
    assert [(r.name, r.reasons) for r in run.results] == [(t.name, ()) for t in pack.tests]


def test_sql_starter_shows_how_to_create_the_database(tmp_path: Path) -> None:
    text = write(tmp_path, "shop", "sql").read_text()
    assert "#   sqlite3 " in text
    assert "#   CREATE TABLE items" in text
    assert 'url: "sqlite:///${pack_dir}/shop.db"' in text


def test_rest_starter_is_valid_without_any_variable(tmp_path: Path) -> None:
    file = write(tmp_path, "my-api", "rest")
    pack = load_pack(file, {}).pack
    assert [t.name for t in pack.tools] == ["search_items", "get_item", "create_item"]
    conn = pack.connections["api"]
    assert conn.type == "rest"
    assert conn.allow_private_network is False
    text = file.read_text()
    assert '#   token: "${env:MY_API_TOKEN}"' in text  # auth shown, commented out
    assert "allow_private_network" in text
    assert "Link-local and cloud-metadata addresses are refused always" in text


def test_rest_starter_with_its_auth_uncommented(tmp_path: Path) -> None:
    file = write(tmp_path, "api", "rest")
    text = (
        file.read_text()
        .replace("    # auth:\n", "    auth:\n")
        .replace(
            '    #   type: bearer\n    #   token: "${env:API_TOKEN}"\n',
            '      type: bearer\n      token: "${env:API_TOKEN}"\n',
        )
    )
    file.write_text(text)
    conn = load_pack(file, {"API_TOKEN": "t"}).pack.connections["api"]
    assert isinstance(conn, RestConnection)
    assert conn.auth is not None
    assert conn.auth.token == "t"


@pytest.mark.parametrize(
    ("name", "prefix"), [("crm", "CRM"), ("my-api", "MY_API"), ("3d", "PACK_3D")]
)
def test_env_prefix(name: str, prefix: str) -> None:
    assert env_prefix(name) == prefix


def test_next_steps() -> None:
    steps = next_steps("shop", "sql", "p/shop.yaml", "p/shop.db")
    assert steps[1].startswith('   sqlite3 p/shop.db "CREATE TABLE items')
    assert "catalyst packs test p/shop.yaml" in steps[3]
    steps = next_steps("gh", "rest", "p/gh.yaml", "p/gh.db")
    assert "export GH_TOKEN=..." in steps[0]
