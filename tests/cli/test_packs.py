"""``catalyst packs list`` and ``catalyst packs validate``."""

from __future__ import annotations

import json
from pathlib import Path

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_OK, EXIT_USAGE
from tests.cli.helpers import run
from tests.conftest import ROOT

PACKS = ROOT / "knowledge-packs"
BROKEN = (
    "pack: broken\ntools:\n"
    "  - {name: t, description: d, sql: {connection: nope, statement: SELECT 1}}\n"
)


def config(tmp_path: Path, packs: Path) -> Path:
    path = tmp_path / "catalyst.yaml"
    path.write_text(f"packs:\n  path: {packs}\n", encoding="utf-8")
    return path


def test_validate_the_bundled_packs() -> None:
    result = run("packs", "validate", str(PACKS))
    assert result.exit_code == EXIT_OK
    assert (
        result.stdout == f"{PACKS}/crm.yaml: valid, pack 'crm' (6 tools, 3 resources, 1 prompts)\n"
    )


def test_validate_reports_file_line_col_and_exits_3(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")
    result = run("packs", "validate", str(broken), str(PACKS / "crm.yaml"))
    assert result.exit_code == EXIT_CONFIG
    assert f"{broken}:3:37: tools.0.sql.connection: unknown connection 'nope'" in result.stdout
    assert "valid, pack 'crm'" in result.stdout


def test_validate_defaults_to_the_configured_folder(tmp_path: Path) -> None:
    result = run("packs", "validate", "--config", str(config(tmp_path, PACKS)))
    assert result.exit_code == EXIT_OK
    assert "pack 'crm'" in result.stdout


def test_without_a_configured_folder_it_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.yaml"
    path.write_text("servers: {}\n", encoding="utf-8")
    result = run("packs", "list", "--config", str(path))
    assert result.exit_code == EXIT_USAGE
    assert "packs.path" in result.stderr


def test_list_json(tmp_path: Path) -> None:
    result = run("packs", "list", "--json", "--config", str(config(tmp_path, PACKS)))
    assert result.exit_code == EXIT_OK
    data = json.loads(result.stdout)
    assert data["problems"] == []
    assert data["packs"][0]["name"] == "crm"
    assert data["packs"][0]["tools"] == 6


def test_list_table_with_a_broken_pack(tmp_path: Path) -> None:
    folder = tmp_path / "packs"
    folder.mkdir()
    (folder / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    for name in ("crm.yaml", "crm.md"):
        (folder / name).write_text((PACKS / name).read_text(), encoding="utf-8")
    result = run("packs", "list", "--config", str(config(tmp_path, folder)))
    assert result.exit_code == EXIT_CONFIG
    assert result.stdout.splitlines()[0].split() == [
        "NAME",
        "TOOLS",
        "RESOURCES",
        "PROMPTS",
        "CONNECTIONS",
        "FILE",
    ]
    assert result.stdout.splitlines()[1].startswith("crm ")
    assert "broken.yaml:3:37:" in result.stderr
