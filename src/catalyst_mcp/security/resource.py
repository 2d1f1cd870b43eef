"""OAuth 2.1 resource-server helpers for MCP's authorization spec (2025-11-25 and the
2026-07-28 draft).

A protected MCP server tells clients where to get tokens in two ways, and Catalyst does both:

- it serves an RFC 9728 *protected resource metadata* document (:func:`protected_resource_metadata`)
  naming its ``resource`` identifier and at least one ``authorization_servers`` issuer, at the
  well-known URL built from its MCP endpoint (:func:`metadata_url`: ``/.well-known/
  oauth-protected-resource`` inserted between host and path) and also at the bare root
  ``/.well-known/oauth-protected-resource``, which MCP clients try next
  (:func:`metadata_paths` lists both);
- every 401 carries a ``WWW-Authenticate: Bearer`` challenge (:func:`www_authenticate`, RFC
  6750 section 3) whose ``resource_metadata`` parameter (RFC 9728 section 5.1) points at that
  document, optionally with the ``scope`` the request needs. A token that lacks a scope gets a
  403 with ``error="insufficient_scope"`` and the scopes to ask for, all in one challenge.

The ``resource`` value must be exactly the URL clients use (RFC 9728 section 3.3); MCP prefers
it without a trailing slash. ``offline_access`` is not a resource scope (refresh tokens are the
client's business), so it is refused in ``scopes_supported`` and in challenges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from catalyst_mcp.security.jwks import check_url

__all__ = [
    "WELL_KNOWN",
    "metadata_paths",
    "metadata_url",
    "protected_resource_metadata",
    "www_authenticate",
]

WELL_KNOWN = "/.well-known/oauth-protected-resource"
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# RFC 6750 section 3: error_description = *( %x20-21 / %x23-5B / %x5D-7E )
_NOT_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_MAX_DESCRIPTION = 200


def _split_resource(resource_url: str) -> tuple[str, str, str, str]:
    """(scheme, netloc, path, query) of a resource identifier; ValueError if it is not one."""
    parts = urlsplit(resource_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"resource URL must be an absolute http(s) URL: {resource_url!r}")
    if parts.fragment or "#" in resource_url:
        raise ValueError(f"resource URL must not have a #fragment: {resource_url!r}")
    return parts.scheme, parts.netloc, parts.path, parts.query


def metadata_url(resource_url: str) -> str:
    """Where RFC 9728 says the metadata of ``resource_url`` lives: the well-known path inserted
    between host and path (``https://h/mcp`` -> ``https://h/.well-known/oauth-protected-resource
    /mcp``), a terminating ``/`` after the host dropped."""
    scheme, netloc, path, query = _split_resource(resource_url)
    suffix = "" if path in ("", "/") else path
    return urlunsplit((scheme, netloc, WELL_KNOWN + suffix, query, ""))


def metadata_paths(resource_url: str) -> tuple[str, ...]:
    """The HTTP paths to serve the metadata document at: the path-suffixed one, then the root
    one (the order MCP clients try them in); one path for a resource at the root."""
    path = urlsplit(metadata_url(resource_url)).path
    return (path,) if path == WELL_KNOWN else (path, WELL_KNOWN)


def _scope_list(scopes: str | Iterable[str], what: str) -> list[str]:
    items = scopes.split() if isinstance(scopes, str) else list(scopes)
    for scope in items:
        if not isinstance(scope, str) or not _SCOPE_TOKEN.fullmatch(scope):
            raise ValueError(f"{what}: {scope!r} is not a valid OAuth scope")
        if scope == "offline_access":
            raise ValueError(f"{what}: offline_access is not a resource scope")
    return list(dict.fromkeys(items))


def protected_resource_metadata(
    resource_url: str,
    authorization_servers: Sequence[str],
    scopes_supported: Iterable[str] | None = None,
    *,
    resource_name: str | None = None,
    resource_documentation: str | None = None,
    bearer_methods_supported: Sequence[str] = ("header",),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The RFC 9728 document for ``resource_url`` (JSON-ready).

    ``authorization_servers`` are issuer identifiers (https, or http to loopback; no query or
    fragment), at least one as MCP requires. Bearer tokens go in the ``Authorization`` header
    only (MCP forbids them in the query string), hence the default ``bearer_methods_supported``.
    ``extra`` adds other RFC 9728 fields; it cannot override the ones above.
    """
    _split_resource(resource_url)
    if isinstance(authorization_servers, str):
        raise TypeError("authorization_servers is a list of issuer URLs, not one string")
    if not authorization_servers:
        raise ValueError("authorization_servers must name at least one authorization server")
    for issuer in authorization_servers:
        problem = check_url(issuer)
        if problem is None and urlsplit(issuer).query:
            problem = "must not have a query"
        if problem is not None:
            raise ValueError(f"authorization server {issuer!r} {problem}")
    for method in bearer_methods_supported:
        if method not in ("header", "body", "query"):
            raise ValueError(f"unknown bearer method {method!r}")
    document: dict[str, Any] = dict(extra or {})
    document["resource"] = resource_url
    document["authorization_servers"] = list(dict.fromkeys(authorization_servers))
    if scopes_supported is not None:
        document["scopes_supported"] = _scope_list(scopes_supported, "scopes_supported")
    document["bearer_methods_supported"] = list(bearer_methods_supported)
    if resource_name is not None:
        document["resource_name"] = resource_name
    if resource_documentation is not None:
        document["resource_documentation"] = resource_documentation
    return document


def _quoted(value: str) -> str:
    """An RFC 9110 quoted-string (``"`` and ``\\`` escaped); control characters are refused,
    as they could split the header."""
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
        raise ValueError("a WWW-Authenticate parameter may not contain control characters")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _description(text: str) -> str:
    """``text`` in the characters RFC 6750 allows in error_description (no quote, backslash,
    control or non-ASCII character), whitespace collapsed, at most 200 characters."""
    text = " ".join(text.split()).replace('"', "'").replace("\\", "/")
    text = _NOT_DESCRIPTION.sub("?", text)
    return text[: _MAX_DESCRIPTION - 3] + "..." if len(text) > _MAX_DESCRIPTION else text


def www_authenticate(
    resource_metadata_url: str,
    error: str | None = None,
    description: str | None = None,
    scope: str | Iterable[str] | None = None,
    *,
    realm: str | None = None,
) -> str:
    """A ``WWW-Authenticate`` value: a ``Bearer`` challenge pointing at the resource metadata.

    Without credentials, give no ``error`` (RFC 6750 section 3.1); a rejected token gets
    ``invalid_token`` (401), a token lacking scopes ``insufficient_scope`` (403) with ``scope``
    naming every scope the request needs. ``description`` goes along only with an ``error``
    and is made safe for the header (quotes, backslashes and non-ASCII replaced); other values
    are checked and refused with ValueError if they cannot be sent.
    """
    parts = urlsplit(resource_metadata_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"resource_metadata must be an absolute URL: {resource_metadata_url!r}")
    params: list[str] = []
    if realm is not None:
        params.append(f"realm={_quoted(realm)}")
    params.append(f"resource_metadata={_quoted(resource_metadata_url)}")
    if error is not None:
        if not _SCOPE_TOKEN.fullmatch(error):  # the same characters as a scope token
            raise ValueError(f"{error!r} is not an RFC 6750 error code")
        params.append(f'error="{error}"')
        if description:
            params.append(f'error_description="{_description(description)}"')
    if scope is not None:
        scopes = _scope_list(scope, "scope")
        if scopes:
            params.append(f'scope="{" ".join(scopes)}"')
    return "Bearer " + ", ".join(params)
