"""The dashboard's session: one cookie, and the CSRF token derived from it.

The cookie ``catalyst_ui`` holds either ``b.<credential>`` (signed in: the API key or access
token itself, checked by the gateway on every request, so revoking it ends the session at
once and nothing needs to be stored server-side or shared between instances) or
``n.<random>`` (not signed in: a nonce, so that even the sign-in form has a CSRF token). It is
``HttpOnly`` (scripts cannot read it), ``SameSite=Strict`` (other sites' requests do not carry
it), scoped to the dashboard's path, and ``Secure`` when the request came over https.

CSRF: every request that changes something must carry ``X-CSRF-Token``, a one-way digest of
the cookie that the page was rendered with (in ``<body hx-headers>``, sent by htmx). Another
site can neither read the page nor the cookie, and a cross-origin request cannot set that
header without a CORS preflight the gateway never grants; the ``Origin`` (and, where the
browser sends it, ``Sec-Fetch-Site``) must name this site too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "Session",
    "cookie_header",
    "csrf_token",
    "fits_cookie",
    "read_session",
    "same_origin",
]

COOKIE = "catalyst_ui"
CSRF_HEADER = b"x-csrf-token"
MAX_COOKIE = 3800  # a browser keeps about 4 KiB per cookie, name and attributes included
_VALUE = re.compile(r"^[nb]\.[A-Za-z0-9._~+/=-]{1,3800}$")


def csrf_token(cookie: str) -> str:
    """The CSRF token that goes with this cookie value (a one-way digest of it)."""
    digest = hashlib.sha256(b"catalyst-ui-csrf\0" + cookie.encode("latin-1")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Session:
    """The cookie a request came with (a new nonce when it had none)."""

    cookie: str
    new: bool
    """The cookie is made for this response (the request had none): set it."""

    @property
    def credential(self) -> str | None:
        """The bearer credential of a signed-in session (None: not signed in)."""
        return self.cookie[2:] if self.cookie.startswith("b.") else None

    @property
    def csrf(self) -> str:
        return csrf_token(self.cookie)

    def csrf_ok(self, presented: bytes | None) -> bool:
        """Whether ``presented`` (the X-CSRF-Token header) is this session's token."""
        if presented is None or self.new:
            return False
        return hmac.compare_digest(presented, self.csrf.encode("ascii"))

    @staticmethod
    def anonymous() -> Session:
        return Session("n." + secrets.token_urlsafe(24), new=True)

    @staticmethod
    def signed_in(credential: str) -> Session:
        return Session("b." + credential, new=True)


def read_session(headers: Mapping[bytes, bytes]) -> Session:
    """The request's session cookie, or a new anonymous one."""
    raw = headers.get(b"cookie")
    if raw:
        for part in raw.decode("latin-1").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name == COOKIE and _VALUE.match(value):
                return Session(value, new=False)
    return Session.anonymous()


def cookie_header(
    value: str, path: str, *, secure: bool, max_age: int | None = None
) -> tuple[bytes, bytes]:
    """The ``Set-Cookie`` header of the session cookie (``max_age=0`` deletes it)."""
    parts = [f"{COOKIE}={value}", f"Path={path}", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


def fits_cookie(credential: str) -> bool:
    """Whether a credential can be kept in the session cookie."""
    return len(credential) + 2 <= MAX_COOKIE and bool(_VALUE.match("b." + credential))


def same_origin(headers: Mapping[bytes, bytes]) -> bool:
    """Whether a request that changes something comes from a page of this site: its
    ``Origin``, when sent, names the ``Host`` it was sent to, and ``Sec-Fetch-Site``, when
    sent, says ``same-origin``."""
    site = headers.get(b"sec-fetch-site")
    if site is not None and site != b"same-origin":
        return False
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = headers.get(b"host")
    try:
        netloc = urlsplit(origin.decode("latin-1")).netloc
    except ValueError:
        return False
    return host is not None and netloc.lower() == host.decode("latin-1").lower()
