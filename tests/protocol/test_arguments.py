"""ArgumentCheck: tool arguments against the tool's input schema, every error with its place."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from catalyst_mcp.errors import InvalidArguments
from catalyst_mcp.protocol.arguments import MAX_ERRORS, ArgumentCheck, json_pointer
from catalyst_mcp.registry import Registry
from tests.fakes import FakeProvider, tool

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2},
        "tags": {"type": "array", "items": {"type": "string"}},
        "a/b~c": {"type": "integer"},
    },
    "required": ["name"],
}


def check_for(*tools: dict[str, Any]) -> tuple[ArgumentCheck, FakeProvider]:
    registry = Registry()
    provider = FakeProvider("p", tools=list(tools))
    registry.add(provider)
    return ArgumentCheck(registry), provider


def errors_of(check: ArgumentCheck, name: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(InvalidArguments) as caught:
        check.check(name, arguments)
    errors: list[dict[str, Any]] = caught.value.data["errors"]
    return errors


def test_valid_arguments_pass() -> None:
    check, _ = check_for(tool("t", inputSchema=SCHEMA))
    check.check("p__t", {"name": "ada", "tags": ["x"]})


def test_every_error_is_listed_with_its_json_pointer() -> None:
    check, _ = check_for(tool("t", inputSchema=SCHEMA))
    errors = errors_of(check, "p__t", {"name": "a", "tags": ["x", 3], "a/b~c": "one"})
    assert {(e["path"], e["keyword"]) for e in errors} == {
        ("/name", "minLength"),
        ("/tags/1", "type"),
        ("/a~1b~0c", "type"),
    }
    assert all(e["message"] for e in errors)
    missing = errors_of(check, "p__t", {})
    assert missing == [
        {"path": "", "message": '"name" is a required property', "keyword": "required"}
    ]


def test_the_message_names_places_never_values() -> None:
    check, _ = check_for(tool("t", inputSchema=SCHEMA))
    with pytest.raises(InvalidArguments) as caught:
        check.check("p__t", {"name": "s3cr3t-VALUE-x", "tags": "s3cr3t-VALUE-y"})
    message = caught.value.message
    assert "s3cr3t" not in message
    assert message == (
        "the arguments do not match the input schema of tool 'p__t': 1 error, "
        "the first at /tags (type)"
    )


def test_errors_are_capped() -> None:
    many = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(50)}}
    check, _ = check_for(tool("t", inputSchema=many))
    with pytest.raises(InvalidArguments) as caught:
        check.check("p__t", {f"p{i}": "x" for i in range(50)})
    assert len(caught.value.data["errors"]) == MAX_ERRORS
    assert f"at least {MAX_ERRORS} errors" in caught.value.message


def test_the_schema_s_dialect_is_honoured() -> None:
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}
        },
    }
    check, _ = check_for(tool("t", inputSchema=draft7))
    check.check("p__t", {"pair": ["a", 1]})
    assert errors_of(check, "p__t", {"pair": ["a", "b"]})[0]["path"] == "/pair/1"


def test_what_cannot_be_checked_is_left_to_the_upstream() -> None:
    with socket.socket() as listener:  # a $ref's URL: nothing may connect to it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.json"
        remote = {"type": "object", "properties": {"x": {"$ref": url}}}
        broken = {"type": "object", "properties": {"x": {"type": "nonsense"}}}
        check, _ = check_for(
            tool("remote", inputSchema=remote),
            tool("broken", inputSchema=broken),
            tool("none", inputSchema="not a schema"),
        )
        for name in ("p__remote", "p__broken", "p__none", "p__unlisted"):
            check.check(name, {"x": 1})
        check.check("p__remote", {"x": 2})  # and again, from the cache
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_validators_follow_the_tools() -> None:
    check, provider = check_for(tool("t", inputSchema=SCHEMA))
    assert errors_of(check, "p__t", {})
    provider.set_items("tools", [tool("t", inputSchema={"type": "object"})])
    check.check("p__t", {})
    provider.set_items("tools", [])
    check.check("p__t", {})  # no longer listed: not checked here


def test_json_pointer() -> None:
    assert json_pointer([]) == ""
    assert json_pointer(["a", 0, "b/c", "d~e"]) == "/a/0/b~1c/d~0e"


def test_prompt_arguments_are_strings_and_the_required_ones_given() -> None:
    registry = Registry()
    declared = [{"name": "who", "required": True}, {"name": "tone"}, "junk"]
    provider = FakeProvider("p", prompts=[{"name": "hi", "arguments": declared}])
    registry.add(provider)
    check = ArgumentCheck(registry)
    check.check_prompt("p__hi", {"who": "ada"})
    with pytest.raises(InvalidArguments) as caught:
        check.check_prompt("p__hi", {"tone": 3})
    assert caught.value.data["errors"] == [
        {"path": "/tone", "message": "must be a string", "keyword": "type"},
        {"path": "", "message": "'who' is a required argument", "keyword": "required"},
    ]
    assert "prompt 'p__hi'" in caught.value.message
    check.check_prompt("p__unlisted", {"x": "y"})
    provider.set_items("prompts", [{"name": "hi"}])
    check.check_prompt("p__hi", {})  # no longer required
