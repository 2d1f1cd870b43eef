"""Cache keys: canonical arguments, users apart, the layout that clears find."""

from __future__ import annotations

import pytest

from catalyst_mcp.context import Identity
from catalyst_mcp.orchestration.cache.keys import (
    argument_digest,
    canonical,
    server_prefix,
    tool_prefix,
    user_scope,
)


def test_canonical_arguments_sort_keys_and_normalize_numbers() -> None:
    assert canonical({"b": 1.0, "a": [2.5, -0.0, {"y": 3, "x": True}]}) == (
        b'{"a":[2.5,0,{"x":true,"y":3}],"b":1}'
    )
    assert canonical(None) == canonical({}) == b"{}"
    assert argument_digest({"n": 1}) == argument_digest({"n": 1.0})
    assert argument_digest({"n": 1}) != argument_digest({"n": True})  # a boolean is not 1
    assert argument_digest({"n": "1"}) != argument_digest({"n": 1})
    assert argument_digest({"l": [1, 2]}) != argument_digest({"l": [2, 1]})


def test_arguments_that_are_not_json_raise_type_error() -> None:
    with pytest.raises(TypeError):
        canonical({"x": object()})


def test_each_caller_has_a_scope_of_their_own() -> None:
    alice = user_scope(Identity("alice", "user"))
    assert alice == user_scope(Identity("alice", "user", roles=("admin",), via="jwt"))
    assert alice != user_scope(Identity("bob", "user"))
    assert alice != user_scope(Identity("alice", "service"))
    # length-prefixed: no two (kind, subject) pairs run together into one text
    assert user_scope(Identity("a:b", "user")) != user_scope(Identity("b", "user:a"))
    assert alice.startswith("u") and len(alice) == 33


def test_a_tools_keys_lie_under_its_servers_prefix() -> None:
    prefix = tool_prefix("github", "search")
    assert prefix.startswith(server_prefix("github"))
    assert not prefix.startswith(server_prefix("git"))
    assert tool_prefix("github", "search") != tool_prefix("github", "search_code")
    assert not tool_prefix("pack:crm", "x").startswith(server_prefix("pack"))
