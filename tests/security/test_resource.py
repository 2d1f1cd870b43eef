"""RFC 9728 protected resource metadata and RFC 6750 Bearer challenges, as MCP uses them."""

from __future__ import annotations

import re

import pytest

from catalyst_mcp.security.resource import (
    WELL_KNOWN,
    metadata_paths,
    metadata_url,
    protected_resource_metadata,
    www_authenticate,
)

AS = "https://auth.example.com"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            "https://mcp.example.com/mcp",
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
        ),
        ("https://mcp.example.com", "https://mcp.example.com/.well-known/oauth-protected-resource"),
        (
            "https://mcp.example.com/",
            "https://mcp.example.com/.well-known/oauth-protected-resource",
        ),
        (
            "https://mcp.example.com:8443/a/b",
            "https://mcp.example.com:8443/.well-known/oauth-protected-resource/a/b",
        ),
        ("https://h/r?t=1", "https://h/.well-known/oauth-protected-resource/r?t=1"),
        (
            "http://127.0.0.1:8000/mcp",
            "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp",
        ),
    ],
)
def test_metadata_url_inserts_the_well_known_path(resource: str, expected: str) -> None:
    assert metadata_url(resource) == expected


@pytest.mark.parametrize("bad", ["mcp.example.com", "ftp://h/x", "https://h/mcp#frag", "/mcp"])
def test_metadata_url_refuses_non_resource_urls(bad: str) -> None:
    with pytest.raises(ValueError, match="resource URL"):
        metadata_url(bad)


def test_metadata_paths_list_suffixed_then_root() -> None:
    assert metadata_paths("https://h/mcp") == (f"{WELL_KNOWN}/mcp", WELL_KNOWN)
    assert metadata_paths("https://h/") == (WELL_KNOWN,)


def test_metadata_document() -> None:
    doc = protected_resource_metadata(
        "https://mcp.example.com/mcp",
        [AS, AS],
        ["tools:read", "tools:call", "tools:read"],
        resource_name="Catalyst",
        resource_documentation="https://docs.example.com",
        extra={"resource": "ignored", "resource_signing_alg_values_supported": ["RS256"]},
    )
    assert doc == {
        "resource": "https://mcp.example.com/mcp",
        "authorization_servers": [AS],
        "scopes_supported": ["tools:read", "tools:call"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Catalyst",
        "resource_documentation": "https://docs.example.com",
        "resource_signing_alg_values_supported": ["RS256"],
    }


def test_metadata_document_minimal() -> None:
    doc = protected_resource_metadata("https://h", ["http://127.0.0.1:9000/realms/x"])
    assert doc == {
        "resource": "https://h",
        "authorization_servers": ["http://127.0.0.1:9000/realms/x"],
        "bearer_methods_supported": ["header"],
    }


@pytest.mark.parametrize(
    ("servers", "scopes", "message"),
    [
        ([], None, "at least one"),
        (["http://auth.example.com"], None, "https"),
        (["https://auth.example.com?x=1"], None, "query"),
        ([AS], ["offline_access"], "offline_access"),
        ([AS], ["has space"], "not a valid OAuth scope"),
        ([AS], ['quo"te'], "not a valid OAuth scope"),
    ],
)
def test_metadata_document_refuses(
    servers: list[str], scopes: list[str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        protected_resource_metadata("https://h/mcp", servers, scopes)


def test_metadata_document_wants_a_list_of_servers() -> None:
    with pytest.raises(TypeError):
        protected_resource_metadata("https://h/mcp", AS)


META = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


def test_challenge_without_credentials_has_no_error() -> None:
    assert www_authenticate(META) == f'Bearer resource_metadata="{META}"'


def test_challenge_with_scope() -> None:
    assert (
        www_authenticate(META, scope="files:read")
        == f'Bearer resource_metadata="{META}", scope="files:read"'
    )


def test_invalid_token_challenge() -> None:
    value = www_authenticate(META, "invalid_token", "token expired", realm="catalyst")
    assert value == (
        f'Bearer realm="catalyst", resource_metadata="{META}", error="invalid_token", '
        'error_description="token expired"'
    )


def test_insufficient_scope_challenge_names_every_scope() -> None:
    value = www_authenticate(
        META, "insufficient_scope", "needs more", ["files:read", "files:write", "files:read"]
    )
    assert 'error="insufficient_scope"' in value
    assert value.endswith('scope="files:read files:write"')


def test_description_is_made_safe() -> None:
    value = www_authenticate(META, "invalid_token", 'bad "x" \\ y\r\nSet-Cookie: a=b é' + "z" * 500)
    description = re.search(r'error_description="([^"]*)"', value)
    assert description is not None
    text = description.group(1)
    assert re.fullmatch(r"[\x20\x21\x23-\x5b\x5d-\x7e]*", text)
    assert text.startswith("bad 'x' / y Set-Cookie: a=b ?z")
    assert len(text) == 200 and text.endswith("...")
    assert "\r" not in value and "\n" not in value


def test_description_needs_an_error() -> None:
    assert "error_description" not in www_authenticate(META, description="ignored")


def test_quoting_escapes_quotes_and_backslashes() -> None:
    value = www_authenticate(META, realm='a "b" \\c')
    assert value.startswith('Bearer realm="a \\"b\\" \\\\c", ')


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resource_metadata_url": "/relative"}, "absolute URL"),
        ({"resource_metadata_url": META, "realm": "a\r\nb"}, "control characters"),
        ({"resource_metadata_url": META, "error": "bad error"}, "error code"),
        ({"resource_metadata_url": META, "error": 'x"y'}, "error code"),
        ({"resource_metadata_url": META, "scope": "a\\b"}, "valid OAuth scope"),
        ({"resource_metadata_url": META, "scope": "offline_access"}, "offline_access"),
    ],
)
def test_challenge_refuses_what_cannot_be_sent(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        www_authenticate(**kwargs)
