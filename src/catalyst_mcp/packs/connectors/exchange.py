"""One HTTP exchange of the REST connector, as plain data: the seam tests and recordings use.

The connector builds a :class:`RestRequest` (redirects, retries and auth are decided above this
seam), and an :data:`Exchange` turns it into a :class:`RestResponse`. The default exchange goes
to the network through the SSRF guard; ``catalyst packs test --record/--replay`` wraps or
replaces it to record or replay a backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Exchange", "RestRequest", "RestResponse"]


@dataclass(frozen=True, slots=True)
class RestRequest:
    method: str
    url: str  # absolute, query included
    headers: dict[str, str]
    body: bytes = b""
    # Secret values this request carries (auth, resolved references): whoever records or logs
    # the request replaces them with "<redacted>".
    secrets: tuple[str, ...] = field(default=(), repr=False)
    max_bytes: int = 1_000_000  # a larger response body is refused
    # Whether sending it twice is harmless: only then is it re-sent on a fresh connection when
    # a pooled keep-alive connection turns out dead before any answer.
    retry_safe: bool = True


@dataclass(frozen=True, slots=True)
class RestResponse:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


Exchange = Callable[[RestRequest], Awaitable[RestResponse]]
