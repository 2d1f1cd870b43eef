"""The REST connector's network: what a redirect keeps, and the pooled client's key."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from catalyst_mcp.packs.connectors.exchange import RestRequest
from catalyst_mcp.packs.connectors.network import _origin, redirected


@pytest.mark.parametrize(
    ("status", "kept"),
    [
        (307, {"Accept": "*/*", "accept-language": "en", "Content-Type": "application/json"}),
        (303, {"Accept": "*/*", "accept-language": "en"}),
    ],
    ids=["body-kept", "body-dropped"],
)
def test_a_cross_origin_redirect_keeps_only_safe_headers(status: int, kept: dict[str, str]) -> None:
    request = RestRequest(
        "POST",
        "https://api.example.com/x",
        {
            "Accept": "*/*",
            "accept-language": "en",
            "User-Agent": "ua-s3cr3t-value",  # holds a secret: dropped even though allowed
            "Content-Type": "application/json",
            "Authorization": "Bearer t",
            "Cookie": "c=1",
            "X-Custom": "anything",
            "X-Api-Version": "2",
        },
        b"{}",
        ("s3cr3t",),
    )
    moved = redirected(request, status, "https://other.example.com/y")
    assert moved.headers == kept
    same = redirected(request, 307, "/z")
    assert same.headers == request.headers  # the same origin keeps everything


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "https://User:pw@API.Example.com/x",
        "http://[fe80::1%25eTh0]:80/",
        "http://h/",
        "http://h:99999/",
        "http://h:port/",
    ],
)
def test_the_pool_key_is_what_urlsplit_says(url: str) -> None:
    parts = urlsplit(url)
    try:
        expected: object = (parts.scheme, parts.hostname or "", parts.port)
    except ValueError as exc:
        expected = str(exc)
    try:
        got: object = _origin(parts.scheme, parts.netloc.rpartition("@")[2])
    except ValueError as exc:
        got = str(exc)
    assert got == expected
