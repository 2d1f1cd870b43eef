"""What an object's bytes are: text in some encoding, or binary.

The order of evidence: an encoding the caller names; a byte-order mark; the ``charset`` the
object's ``Content-Type`` declares; UTF-8 (most text today); then ``charset-normalizer``'s
detection on a sample. NUL bytes, or bytes no encoding explains, make it binary. A ranged read
that cut a multi-byte character at either end is trimmed to whole characters first.
"""

from __future__ import annotations

import codecs
import mimetypes
from dataclasses import dataclass
from email.message import Message

import charset_normalizer

from catalyst_mcp.errors import BuiltinError

__all__ = ["Decoded", "declared_charset", "decode", "guess_type", "trim_utf8"]

SNIFF_BYTES = 64 * 1024
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# control characters that do not occur in text (tab, newlines, form feed and escape do)
_CONTROL = frozenset(range(32)) - {9, 10, 12, 13, 27}


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str | None  # None: binary
    encoding: str | None
    data: bytes  # the bytes the text came from (trimmed for a ranged read)
    trimmed_start: int  # bytes dropped at the start (a cut character)


def declared_charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type, if it names a codec Python knows."""
    if not content_type:
        return None
    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    if not isinstance(charset, str):
        return None
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return None


def guess_type(key: str) -> str | None:
    return mimetypes.guess_type(key, strict=False)[0]


def decode(
    data: bytes, *, content_type: str | None, encoding: str | None, partial: bool
) -> Decoded:
    """``data`` as text, or as binary (``text`` None). ``encoding`` (the caller's) must fit:
    a byte it cannot decode is an error; ``"binary"`` asks for the bytes as they are."""
    if encoding is not None:
        if encoding == "binary":
            return Decoded(None, None, data, 0)
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise BuiltinError(
                f"unknown encoding {encoding[:40]!r} (e.g. utf-8, latin-1)"
            ) from None
        trimmed, start = trim_utf8(data, partial) if codec == "utf-8" else (data, 0)
        try:
            return Decoded(trimmed.decode(codec), codec, trimmed, start)
        except UnicodeDecodeError as error:
            raise BuiltinError(
                f"the object is not {codec} text (byte {error.start + start:,} does not decode); "
                "name another encoding, or 'binary' for its bytes"
            ) from None
    for bom, codec in BOMS:
        if data.startswith(bom):
            found = _try(data, codec)
            if found is not None:
                return Decoded(found, codec, data, 0)
    declared = declared_charset(content_type)
    if declared is not None:
        trimmed, start = trim_utf8(data, partial) if declared == "utf-8" else (data, 0)
        found = _try(trimmed, declared)
        if found is not None and _textual(found):
            return Decoded(found, declared, trimmed, start)
    if b"\x00" in data[:SNIFF_BYTES]:
        return Decoded(None, None, data, 0)
    trimmed, start = trim_utf8(data, partial)
    found = _try(trimmed, "utf-8")
    if found is not None:
        return Decoded(found, "utf-8", trimmed, start) if _textual(found) else _binary(data)
    guess = charset_normalizer.from_bytes(data[:SNIFF_BYTES]).best()
    if guess is not None:
        found = _try(data, guess.encoding)
        if found is not None and _textual(found):
            return Decoded(found, codecs.lookup(guess.encoding).name, data, 0)
    return _binary(data)


def _binary(data: bytes) -> Decoded:
    return Decoded(None, None, data, 0)


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _textual(text: str) -> bool:
    """Few control characters: text, not bytes that happen to decode."""
    sample = text[:SNIFF_BYTES]
    controls = sum(1 for ch in sample if ord(ch) in _CONTROL)
    return controls * 100 <= len(sample)  # at most 1%


def trim_utf8(data: bytes, partial: bool) -> tuple[bytes, int]:
    """For a part of an object: drop continuation bytes at the start (the end of a character
    begun before the part) and a character cut at the end. Returns the bytes and how many
    were dropped at the start."""
    if not partial or not data:
        return data, 0
    start = 0
    while start < min(3, len(data)) and 0x80 <= data[start] <= 0xBF:
        start += 1
    data = data[start:]
    for cut in range(1, min(4, len(data)) + 1):
        byte = data[-cut]
        if byte < 0x80:
            break
        if byte >= 0xC0:  # a lead byte: is its character whole?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if need > cut:
                data = data[:-cut]
            break
    return data, start
