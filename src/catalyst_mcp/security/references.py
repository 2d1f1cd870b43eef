"""``${secret:NAME}``: how configuration refers to a secret of the secrets store.

One definition of a secret's name and of the reference, for every place that takes one: pack
connections (SQL URLs, REST headers and auth), server entries (env, headers), the store and the
admin API.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

__all__ = ["SECRET_NAME", "SECRET_REFERENCE", "fill", "names_in"]

_NAME = r"[A-Za-z0-9_.\-]{1,128}"
SECRET_NAME = re.compile(rf"^{_NAME}$")  # 1-128 letters, digits, '_', '-' or '.'
SECRET_REFERENCE = re.compile(rf"\$\{{secret:({_NAME})\}}")


def names_in(text: str) -> set[str]:
    """The secret names ``text`` refers to."""
    return set(SECRET_REFERENCE.findall(text))


def fill(
    text: str,
    values: Mapping[str, str],
    *,
    missing: str = "",
    encode: Callable[[str], str] | None = None,
) -> str:
    """``text`` with each reference replaced by its value (``missing`` where ``values`` has
    none), passed through ``encode`` (e.g. percent-encoding for a URL)."""

    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1), missing)
        return encode(value) if encode is not None else value

    return SECRET_REFERENCE.sub(one, text)
