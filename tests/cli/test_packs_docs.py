"""docs/cli.md has a section for every ``catalyst packs`` command naming each of its options,
and docs/pack.schema.json (which the bundled packs point editors to) is what ``packs schema``
prints."""

from __future__ import annotations

import json
import re

import click
import pytest

from catalyst_mcp.cli.packs import packs
from catalyst_mcp.packs.json_schema import pack_json_schema
from tests.conftest import ROOT

SECTIONS = (ROOT / "docs" / "cli.md").read_text().split("\n## ")


@pytest.mark.parametrize("command", list(packs.commands.values()), ids=lambda c: c.name)
def test_every_packs_command_and_option_is_documented(command: click.Command) -> None:
    heading = rf"^`catalyst packs ([a-z-]+ .*)?\b{command.name}\b"
    section = next((s for s in SECTIONS if re.match(heading, s)), None)
    assert section is not None, f"docs/cli.md has no section for `catalyst packs {command.name}`"
    for param in command.params:
        if isinstance(param, click.Option):
            assert any(opt in section for opt in param.opts), f"{command.name}: {param.opts}"


def test_the_schema_in_docs_is_current() -> None:
    path = ROOT / "docs" / "pack.schema.json"
    if not path.exists():
        pytest.skip("docs/pack.schema.json is not there (catalyst packs schema -o writes it)")
    assert json.loads(path.read_text()) == pack_json_schema(), (
        "docs/pack.schema.json is stale: run catalyst packs schema -o docs/pack.schema.json"
    )
