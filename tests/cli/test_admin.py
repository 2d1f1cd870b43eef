"""What the administration commands share: the operator's identity and time formats."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import pytest

from catalyst_mcp.cli.admin import cli_identity, iso, shown_time


def test_the_operator_is_the_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "ada")
    identity = cli_identity()
    assert (identity.subject, identity.kind) == ("cli:ada", "admin")


def test_without_a_login_name_the_uid_stands_in(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_login() -> str:
        raise OSError("no login name")

    monkeypatch.setattr(getpass, "getuser", no_login)
    assert cli_identity().subject.startswith("cli:uid-")


def test_times() -> None:
    when = datetime(2025, 1, 31, 12, 5, 7, tzinfo=UTC)
    assert shown_time(when) == "2025-01-31 12:05"
    assert shown_time(None) == "-"
    assert iso(when) == "2025-01-31T12:05:07+00:00"
    assert iso(None) is None
