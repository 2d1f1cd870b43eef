"""``catalyst serve``'s guard against an unauthenticated gateway beyond this machine, and its
``--uds`` options (served for real in tests/test_serve.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.cli.common import CliError
from catalyst_mcp.cli.serve import check_bind
from catalyst_mcp.settings import Settings
from tests.cli.helpers import run


def settings(host: str, **extra: Any) -> Settings:
    return Settings.model_validate({"gateway": {"host": host}, **extra})


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_is_always_fine(host: str) -> None:
    check_bind(settings(host))


def test_a_public_address_without_auth_is_refused_with_the_ways_out() -> None:
    with pytest.raises(CliError) as caught:
        check_bind(settings("0.0.0.0"))
    message = caught.value.message
    assert "authentication is off" in message
    assert "auth.enabled: true" in message
    assert "CATALYST_GATEWAY__ALLOW_NON_LOOPBACK=true" in message


def test_with_auth_on_a_public_address_is_fine() -> None:
    check_bind(settings("0.0.0.0", auth={"enabled": True}))


def test_the_explicit_override_is_honoured() -> None:
    check_bind(
        Settings.model_validate({"gateway": {"host": "0.0.0.0", "allow_non_loopback": True}})
    )


def test_a_unix_socket_is_local_whatever_the_host_says() -> None:
    check_bind(settings("0.0.0.0", gateway={"host": "0.0.0.0", "uds": "/tmp/c.sock"}))


@pytest.mark.parametrize("other", [["--port", "9"], ["--host", "0.0.0.0"], ["--stdio"]])
def test_uds_goes_alone(other: list[str]) -> None:
    result = run("serve", "--uds", "/tmp/c.sock", *other)
    assert result.exit_code == 1
    assert "--uds listens on a Unix socket" in result.stderr


def test_a_bad_uds_mode_is_one_clear_line() -> None:
    result = run("serve", "--uds", "/tmp/c.sock", "--uds-mode", "rw-------")
    assert result.exit_code == 1
    assert "--uds-mode: 'rw-------' is not an octal file mode" in result.stderr


def test_a_bad_uds_mode_in_the_config_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "catalyst.yaml"
    config.write_text("gateway:\n  uds: /tmp/c.sock\n  uds_mode: '0999'\n", encoding="utf-8")
    result = run("serve", "--config", str(config))
    assert result.exit_code == 3
    assert "uds_mode" in result.stderr
