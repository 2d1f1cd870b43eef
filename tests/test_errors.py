"""The one error hierarchy and what a client sees of each error."""

from __future__ import annotations

import pytest

from catalyst_mcp import errors
from catalyst_mcp.errors import (
    CatalystError,
    ConfigError,
    ConfigProblem,
    HeaderMismatch,
    InvalidParams,
    InvalidRequest,
    MalformedMeta,
    MethodNotFound,
    MissingCapability,
    NotFound,
    ParseError,
    ProtocolError,
    RequestCancelled,
    ResourceNotFound,
    UnsupportedVersion,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)


def test_every_public_name_is_a_catalyst_error_or_problem() -> None:
    for name in errors.__all__:
        value = getattr(errors, name)
        assert value is ConfigProblem or issubclass(value, CatalystError), name


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (ConfigError, CatalystError),
        (ProtocolError, CatalystError),
        (ParseError, ProtocolError),
        (InvalidRequest, ProtocolError),
        (MethodNotFound, ProtocolError),
        (InvalidParams, ProtocolError),
        (NotFound, InvalidParams),
        (ResourceNotFound, NotFound),
        (MalformedMeta, InvalidParams),
        (HeaderMismatch, ProtocolError),
        (MissingCapability, ProtocolError),
        (UnsupportedVersion, ProtocolError),
        (RequestCancelled, CatalystError),
        (UpstreamError, CatalystError),
        (UpstreamUnavailable, UpstreamError),
        (UpstreamTimeout, UpstreamError),
        (UpstreamProtocolError, UpstreamError),
        (UpstreamRejected, UpstreamError),
    ],
)
def test_tree(cls: type[Exception], parent: type[Exception]) -> None:
    assert cls.__mro__[1] is parent


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (CatalystError, -32603, 200),
        (ParseError, -32700, 400),
        (InvalidRequest, -32600, 400),
        (MethodNotFound, -32601, 404),
        (InvalidParams, -32602, 200),
        (NotFound, -32602, 200),
        (ResourceNotFound, -32002, 200),
        (MalformedMeta, -32602, 400),
        (HeaderMismatch, -32020, 400),
        (MissingCapability, -32021, 400),
        (UnsupportedVersion, -32022, 400),
    ],
)
def test_codes_and_statuses(cls: type[CatalystError], code: int, status: int) -> None:
    exc = cls("message")
    assert exc.code == code
    assert exc.http_status == status
    assert exc.to_jsonrpc() == {"code": code, "message": "message"}


def test_data_is_included_only_when_given() -> None:
    assert CatalystError("m", data={"a": 1}).to_jsonrpc() == {
        "code": -32603,
        "message": "m",
        "data": {"a": 1},
    }
    assert CatalystError("m", data=0).to_jsonrpc()["data"] == 0
    assert str(CatalystError("shown")) == "shown"


def _wrap_os_error() -> None:
    try:
        raise OSError("secret path /root/.ssh/id_rsa")
    except OSError as exc:
        raise UpstreamUnavailable("srv", "srv is not running") from exc


def test_cause_is_never_shown() -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        _wrap_os_error()
    assert caught.value.to_jsonrpc() == {"code": -32603, "message": "srv is not running"}
    assert caught.value.server == "srv"
    assert isinstance(caught.value.__cause__, OSError)


@pytest.mark.parametrize(
    ("error", "code", "message", "data"),
    [
        ({"code": -32602, "message": "bad", "data": [1]}, -32602, "bad", [1]),
        ({"code": 7, "message": "custom"}, 7, "custom", None),
        ({"code": True, "message": 5}, -32603, "upstream error", None),
        ({"code": "x"}, -32603, "upstream error", None),
        ({}, -32603, "upstream error", None),
    ],
)
def test_upstream_rejected_relays_code_and_message(
    error: dict[str, object], code: int, message: str, data: object
) -> None:
    exc = UpstreamRejected("srv", error)
    assert exc.to_jsonrpc() == {
        "code": code,
        "message": message,
        **({"data": data} if data is not None else {}),
    }
    assert exc.server == "srv"


def test_config_error_lists_every_problem() -> None:
    problems = [ConfigProblem("a.yaml", 3, "first"), ConfigProblem("env", None, "second")]
    exc = ConfigError(problems)
    assert exc.problems == problems
    assert str(exc) == "a.yaml:3: first\nenv: second"
    assert str(ConfigError([])) == "invalid configuration"
