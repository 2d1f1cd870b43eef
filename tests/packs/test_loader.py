"""Loading packs: complete validation, file:line:col problems, .example skipped, isolation."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalyst_mcp.packs.loader import load_pack, load_packs
from tests.conftest import ROOT
from tests.packs.conftest import people_pack, write_pack

BROKEN = """\
pack: broken
connections:
  db: {type: sql, url: "sqlite:///x.db"}
tools:
  - name: t
    description: a tool
    parameters:
      limit: {type: integer, maximum: lots}
    sql:
      connection: dbb
      statement: SELECT :limit, :other
    colour: red
"""


def test_the_bundled_example_is_valid() -> None:
    result = load_packs([ROOT / "knowledge-packs"])
    assert result.problems == []
    assert [p.pack.pack for p in result.packs] == ["crm"]


def test_schema_problems_are_located_by_line_and_column(tmp_path: Path) -> None:
    file = write_pack(tmp_path, "broken.yaml", BROKEN)
    problems = [str(p) for p in load_packs([tmp_path]).problems]
    assert f"{file}:8:30: tools.0.parameters.limit.maximum: " in problems[0]
    assert f"{file}:12:5: tools.0.colour: unknown key" in problems[1]
    assert len(problems) == 2


def test_whole_pack_problems_are_all_reported(tmp_path: Path) -> None:
    file = write_pack(
        tmp_path, "p.yaml", BROKEN.replace("lots", "5").replace("    colour: red\n", "")
    )
    problems = [str(p) for p in load_packs([tmp_path]).problems]
    assert problems == [
        f"{file}:10:7: tools.0.sql.connection: unknown connection 'dbb' (db)",
        f"{file}:11:7: tools.0.sql.statement: :other is not a declared parameter",
    ]


def test_a_broken_pack_never_stops_the_others(tmp_path: Path, sqlite_db: Path) -> None:
    write_pack(tmp_path, "a-broken.yaml", BROKEN)
    write_pack(tmp_path, "b-good.yaml", people_pack(f"sqlite:///{sqlite_db}"))
    write_pack(tmp_path, "c-syntax.yaml", "pack: [unclosed\n")
    result = load_packs([tmp_path])
    assert [p.pack.pack for p in result.packs] == ["people"]
    files = {Path(p.file).name for p in result.problems}
    assert files == {"a-broken.yaml", "c-syntax.yaml"}


def test_example_files_and_other_files_are_skipped(tmp_path: Path, sqlite_db: Path) -> None:
    write_pack(tmp_path, "people.yaml.example", people_pack(f"sqlite:///{sqlite_db}"))
    write_pack(tmp_path, "README.md", "# not a pack")
    result = load_packs([tmp_path])
    assert result.packs == [] and result.problems == []


def test_two_packs_with_one_name_are_reported(tmp_path: Path, sqlite_db: Path) -> None:
    write_pack(tmp_path, "a.yaml", people_pack(f"sqlite:///{sqlite_db}"))
    write_pack(tmp_path, "b.yaml", people_pack(f"sqlite:///{sqlite_db}"))
    result = load_packs([tmp_path])
    assert len(result.packs) == 1
    assert "pack 'people' is already in" in str(result.problems[0])


def test_pack_dir_and_env_references_expand(tmp_path: Path) -> None:
    data = people_pack("sqlite:///${pack_dir}/${env:DB_NAME}")
    loaded = load_pack(write_pack(tmp_path, "p.yaml", data), environ={"DB_NAME": "x.db"})
    assert loaded.pack.connections["db"].url == f"sqlite:///{tmp_path.resolve()}/x.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///${env:NOPE}", "environment variable NOPE is not set"),
        ("postgresql://u:${secret:PG}@h/db", "reserved for the secrets store"),
        ("sqlite:///${home}/x.db", "unknown reference ${home}"),
        ("mysql://h/db", "database 'mysql' is not supported yet"),
    ],
    ids=["unset-env", "secret", "unknown", "unsupported"],
)
def test_bad_connection_urls(tmp_path: Path, url: str, message: str) -> None:
    file = write_pack(tmp_path, "p.yaml", people_pack(url))
    problems = [str(p) for p in load_packs([tmp_path], environ={}).problems]
    assert len(problems) == 1
    assert problems[0].startswith(f"{file}:5:")
    assert message in problems[0]


def test_pack_names_and_prompt_placeholders_are_checked(tmp_path: Path) -> None:
    data = {
        "pack": "bad__name",
        "prompts": [{"name": "p", "messages": [{"role": "user", "text": "hi {who}"}]}],
    }
    write_pack(tmp_path, "p.yaml", data)
    problems = [p.message for p in load_packs([tmp_path]).problems]
    assert any("pack name 'bad__name'" in m for m in problems)
    data["pack"] = "good"
    write_pack(tmp_path, "p.yaml", data)
    problems = [p.message for p in load_packs([tmp_path]).problems]
    assert problems == ["prompts.0.messages.0.text: {who} is not an argument"]
