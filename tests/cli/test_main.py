"""The ``catalyst`` group: every command is registered and documented."""

from __future__ import annotations

import importlib
import pkgutil
import re

import click
import pytest

import catalyst_mcp.cli
from catalyst_mcp import __version__
from catalyst_mcp.cli.main import cli
from tests.cli.helpers import run
from tests.conftest import ROOT

COMMANDS = [
    ["serve"],
    ["config", "init"],
    ["config", "validate"],
    ["config", "import"],
    ["servers", "list"],
    ["tools", "list"],
    ["tools", "call"],
    ["prompts", "list"],
    ["prompts", "get"],
    ["resources", "list"],
    ["resources", "read"],
    ["health"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: cli {' '.join(command)}")


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_exit_codes_are_in_the_group_help() -> None:
    lines = [line.split(None, 1) for line in run("--help").stdout.splitlines()]
    assert [line[0] for line in lines if line and line[0] in "01234"] == list("01234")


def _commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, command in cli.commands.items():
        if isinstance(command, click.Group):
            out += [(f"{name} {sub}", c) for sub, c in command.commands.items()]
        else:
            out.append((name, command))
    return out


@pytest.mark.parametrize(("name", "command"), _commands(), ids=lambda v: str(v))
def test_docs_describe_every_command_and_option(name: str, command: click.Command) -> None:
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    group, _, sub = name.partition(" ")
    assert re.search(rf"catalyst {group}\b[^\n]*{sub}", docs), f"docs/cli.md lacks {name}"
    for param in command.params:
        for flag in param.opts if isinstance(param, click.Option) else ():
            if flag.startswith("--") and flag != "--help":
                found = re.search(rf"(?<![\w-]){flag}(?![\w-])", docs)
                assert found, f"docs/cli.md does not mention {name} {flag}"


@pytest.mark.parametrize(
    "name",
    sorted(
        info.name for info in pkgutil.iter_modules(catalyst_mcp.cli.__path__, "catalyst_mcp.cli.")
    ),
)
def test_cli_modules_declare_their_public_api(name: str) -> None:
    module = importlib.import_module(name)
    assert isinstance(module.__all__, list), f"{name} has no __all__"
    for public in module.__all__:
        assert hasattr(module, public), f"{name}.__all__ names missing {public!r}"
