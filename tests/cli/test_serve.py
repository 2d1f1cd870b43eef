"""``catalyst serve``'s guard against an unauthenticated gateway beyond this machine."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.cli.common import CliError
from catalyst_mcp.cli.serve import check_bind
from catalyst_mcp.settings import Settings


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
