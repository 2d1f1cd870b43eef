"""Helpers for CLI tests: run ``catalyst`` in-process and write config files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from catalyst_mcp.cli.main import cli
from tests.conftest import PYTHON, UPSTREAM


def run(*args: str, **kwargs: Any) -> Result:
    """Run ``catalyst ARGS`` in-process; ``stdout`` and ``stderr`` are kept apart."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kwargs)


def write_config(path: Path, servers: dict[str, Any], **sections: Any) -> Path:
    text = yaml.safe_dump({"servers": servers, **sections}, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def stdio_server(**extra: Any) -> dict[str, Any]:
    """A ``servers:`` entry running the SDK test server over stdio."""
    return {"command": PYTHON, "args": [str(UPSTREAM), "stdio"], **extra}


STDIO_COMMAND = [PYTHON, str(UPSTREAM), "stdio"]
