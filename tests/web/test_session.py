"""The session cookie, the CSRF token derived from it, and the same-origin check."""

from __future__ import annotations

from catalyst_mcp.web.session import (
    COOKIE,
    Session,
    cookie_header,
    csrf_token,
    fits_cookie,
    read_session,
    same_origin,
)


def test_a_request_without_the_cookie_gets_a_new_nonce() -> None:
    first, second = read_session({}), read_session({b"cookie": b"other=1"})
    assert first.new and first.cookie.startswith("n.") and first.credential is None
    assert first.cookie != second.cookie
    assert not first.csrf_ok(first.csrf.encode())  # a token is only good once it was set


def test_the_cookie_is_read_back_and_junk_is_ignored() -> None:
    kept = read_session({b"cookie": f"a=b; {COOKIE}=b.cat_abc; c=d".encode()})
    assert not kept.new and kept.credential == "cat_abc"
    for junk in (f"{COOKIE}=x.y", f"{COOKIE}=b.<script>", f"{COOKIE}=b." + "a" * 5000):
        assert read_session({b"cookie": junk.encode()}).new


def test_the_csrf_token_is_bound_to_the_cookie() -> None:
    session = Session("b.cat_abc", new=False)
    assert session.csrf == csrf_token("b.cat_abc") != csrf_token("b.cat_abd")
    assert "cat_abc" not in session.csrf
    assert session.csrf_ok(session.csrf.encode())
    assert not session.csrf_ok(None) and not session.csrf_ok(b"x")


def test_cookie_attributes() -> None:
    name, value = cookie_header("n.x", "/ui", secure=True, max_age=60)
    assert name == b"set-cookie"
    assert value == b"catalyst_ui=n.x; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
    assert fits_cookie("cat_" + "a" * 40) and not fits_cookie("a b") and not fits_cookie("a" * 4000)


def test_same_origin() -> None:
    host = {b"host": b"gw.example:8765"}
    assert same_origin(host)  # no Origin: not a cross-site browser request
    assert same_origin({**host, b"origin": b"https://gw.example:8765"})
    assert not same_origin({**host, b"origin": b"https://evil.example"})
    assert not same_origin({**host, b"origin": b"https://gw.example:8766"})
    assert not same_origin({b"origin": b"https://gw.example"})  # no Host to compare with
    assert not same_origin({**host, b"sec-fetch-site": b"cross-site"})
    assert same_origin({**host, b"sec-fetch-site": b"same-origin"})
