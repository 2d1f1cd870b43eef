"""What an object's bytes are: the caller's encoding, a BOM, the declared charset, UTF-8, a
detected encoding, or binary; a part cut inside a character is trimmed to whole ones."""

from __future__ import annotations

import os

import pytest

from catalyst_mcp.errors import BuiltinError
from catalyst_mcp.servers.s3.content import declared_charset, decode, trim_utf8


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/plain; charset=ISO-8859-1", "iso8859-1"),
        ('text/csv; charset="utf-8"', "utf-8"),
        ("text/plain", None),
        ("text/plain; charset=no-such-codec", None),
        (None, None),
    ],
)
def test_the_declared_charset(content_type: str | None, expected: str | None) -> None:
    assert declared_charset(content_type) == expected


def test_the_evidence_in_order() -> None:
    latin = "Größe".encode("latin-1")
    assert (
        decode(latin, content_type="text/plain; charset=latin-1", encoding=None, partial=False).text
        == "Größe"
    )
    assert decode("é".encode(), content_type=None, encoding=None, partial=False).encoding == "utf-8"
    bom = "hello".encode("utf-16")
    assert decode(bom, content_type=None, encoding=None, partial=False).text == "hello"
    assert decode(b"a\x00b", content_type=None, encoding=None, partial=False).text is None
    assert decode(os.urandom(4096), content_type=None, encoding=None, partial=False).text is None
    # a declared charset that does not fit the bytes is not trusted
    assert (
        decode(
            b"\x00\x01\x02", content_type="text/plain; charset=utf-8", encoding=None, partial=False
        ).text
        is None
    )
    assert decode(b"abc", content_type=None, encoding="binary", partial=False).text is None
    with pytest.raises(BuiltinError, match="not utf-8 text"):
        decode(latin, content_type=None, encoding="utf-8", partial=False)


def test_control_bytes_that_decode_are_still_binary() -> None:
    assert (
        decode(bytes(range(1, 9)) * 100, content_type=None, encoding=None, partial=False).text
        is None
    )


@pytest.mark.parametrize(
    ("data", "expected", "dropped"),
    [
        ("aé".encode()[:2], b"a", 0),  # é cut after its lead byte
        ("éa".encode()[1:], b"a", 1),  # the part starts in é's second byte
        ("€".encode()[1:] + b"x" + "€".encode()[:2], b"x", 2),
        ("ab€".encode(), "ab€".encode(), 0),  # whole: nothing trimmed
    ],
)
def test_a_part_is_trimmed_to_whole_characters(data: bytes, expected: bytes, dropped: int) -> None:
    assert trim_utf8(data, True) == (expected, dropped)
    assert trim_utf8(data, False) == (data, 0)
