"""``catalyst packs new`` (starter packs that validate as written) and ``catalyst packs schema``
(the pack format as a JSON Schema editors can use)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from catalyst_mcp.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from catalyst_mcp.packs.json_schema import DRAFT, pack_json_schema
from catalyst_mcp.packs.scaffold import SAMPLE_SQL
from tests.cli.helpers import run
from tests.conftest import ROOT

CRM = ROOT / "knowledge-packs" / "crm.yaml"


# ---- new -------------------------------------------------------------------------------------


def test_new_sql_pack_validates_and_tests_pass(tmp_path: Path) -> None:
    folder = tmp_path / "packs"
    result = run("packs", "new", "shop", "--dir", str(folder))
    assert result.exit_code == EXIT_OK
    file = folder / "shop.yaml"
    assert result.stdout.splitlines()[0] == f"wrote {file} (sql pack 'shop'). Next:"
    assert f"sqlite3 {folder}/shop.db" in result.stdout
    assert run("packs", "validate", str(file)).exit_code == EXIT_OK
    with sqlite3.connect(folder / "shop.db") as db:
        db.executescript(SAMPLE_SQL)
    db.close()
    result = run("packs", "test", str(file))
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.endswith("3 passed, 0 failed (1 pack(s))\n")


def test_new_rest_pack_validates(tmp_path: Path) -> None:
    result = run("packs", "new", "my-api", "--kind", "rest", "--dir", str(tmp_path))
    assert result.exit_code == EXIT_OK
    assert "export MY_API_TOKEN=..." in result.stdout
    validated = run("packs", "validate", str(tmp_path / "my-api.yaml"), env={"MY_API_TOKEN": ""})
    assert validated.exit_code == EXIT_OK, validated.output


def test_new_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run("packs", "new", "shop", "--dir", str(tmp_path)).exit_code == EXIT_OK
    (tmp_path / "shop.yaml").write_text("mine")
    result = run("packs", "new", "shop", "--dir", str(tmp_path), "--kind", "rest")
    assert result.exit_code == EXIT_FAILED
    assert "already exists; use --force" in result.stderr
    assert (tmp_path / "shop.yaml").read_text() == "mine"
    result = run("packs", "new", "shop", "--dir", str(tmp_path), "--kind", "rest", "--force")
    assert result.exit_code == EXIT_OK
    assert "type: rest" in (tmp_path / "shop.yaml").read_text()


def test_new_defaults_to_the_configured_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "catalyst.yaml"
    cfg.write_text(f"packs:\n  path: {tmp_path / 'mine'}\n")
    result = run("packs", "new", "crm2", "--config", str(cfg))
    assert result.exit_code == EXIT_OK
    assert (tmp_path / "mine" / "crm2.yaml").is_file()


@pytest.mark.parametrize("name", ["bad name", "a__b", "_x", "x-", "a.b"])
def test_new_refuses_bad_names(tmp_path: Path, name: str) -> None:
    result = run("packs", "new", name, "--dir", str(tmp_path))
    assert result.exit_code == EXIT_USAGE
    assert "letters and digits joined by single '-' or '_'" in result.stderr


# ---- schema ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    result = run("packs", "schema")
    assert result.exit_code == EXIT_OK
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(validator: Draft202012Validator, data: Any) -> list[str]:
    """The most relevant error (jsonschema's own choice), as ``path: keyword``; [] if valid."""
    error = best_match(validator.iter_errors(data))
    return [] if error is None else [f"{error.json_path}: {error.validator}"]


def test_schema_header(validator: Draft202012Validator) -> None:
    schema = validator.schema
    assert schema["$schema"] == DRAFT
    assert schema["$id"].startswith("urn:catalyst-mcp:pack-schema:")
    assert schema["title"] == "Catalyst knowledge pack"
    auth = schema["$defs"]["RestAuth"]["properties"]
    assert "in" in auth  # the alias, as a pack file writes it
    assert "in_" not in auth
    assert "title" not in auth["type"]  # no "Type" titles made from field names


def test_schema_accepts_the_bundled_pack(validator: Draft202012Validator) -> None:
    assert errors(validator, yaml.safe_load(CRM.read_text())) == []


def test_schema_accepts_generated_packs(validator: Draft202012Validator, tmp_path: Path) -> None:
    for kind in ("sql", "rest"):
        run("packs", "new", f"p{kind}", "--kind", kind, "--dir", str(tmp_path))
        data = yaml.safe_load((tmp_path / f"p{kind}.yaml").read_text())
        assert errors(validator, data) == [], kind


def valid_pack() -> dict[str, Any]:
    return yaml.safe_load(CRM.read_text())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.update(extra=1), ["$: additionalProperties"]),
        (lambda p: p.update(pack="bad name"), ["$.pack: pattern"]),
        (lambda p: p["tools"][0].update(name="a__b"), ["$.tools[0].name: not"]),
        (lambda p: p["tools"][0].pop("sql"), ["$.tools[0]: oneOf"]),
        (
            lambda p: p["tools"][0].update(rest={"connection": "db"}),
            ["$.tools[0]: oneOf"],
        ),
        (lambda p: p["tools"][0]["sql"].update(max_rows=0), ["$.tools[0].sql.max_rows: minimum"]),
        (
            lambda p: p["tools"][0]["parameters"].update({"bad-name": {"type": "string"}}),
            ["$.tools[0].parameters: pattern"],
        ),
        (
            lambda p: p["connections"].update(api={"type": "rest"}),
            ["$.connections.api: required"],
        ),
        (
            lambda p: p["connections"].update(
                api={"type": "rest", "base_url": "https://x", "auth": {"type": "bearer"}}
            ),
            ["$.connections.api.auth: anyOf"],
        ),
        (
            lambda p: p["resources"][0].update(sql={"connection": "db", "statement": "x"}),
            ["$.resources[0]: oneOf"],
        ),
        (
            lambda p: p.update(tests=[{"name": "t", "tool": "x", "prompt": "y"}]),
            ["$.tests[0]: oneOf"],
        ),
    ],
    ids=[
        "unknown-key",
        "pack-name",
        "double-underscore",
        "no-action",
        "two-actions",
        "max-rows",
        "param-name",
        "rest-without-base-url",
        "bearer-without-token",
        "two-resource-sources",
        "test-with-two-targets",
    ],
)
def test_schema_rejects_wrong_packs(
    validator: Draft202012Validator, change: Any, expected: list[str]
) -> None:
    data = valid_pack()
    change(data)
    assert errors(validator, data) == expected


def test_schema_says_what_an_auth_type_needs(validator: Draft202012Validator) -> None:
    auth = {"type": "basic", "username": "u"}
    schema = {"$ref": "#/$defs/RestAuth", "$defs": validator.schema["$defs"]}
    [error] = list(Draft202012Validator(schema).iter_errors(auth))
    assert error.message == "'password' is a required property"


def test_schema_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "pack.schema.json"
    out.write_text("old")
    result = run("packs", "schema", "-o", str(out))
    assert result.exit_code == EXIT_OK
    assert json.loads(out.read_text()) == pack_json_schema()
    assert f"# yaml-language-server: $schema={out}" in result.stderr
