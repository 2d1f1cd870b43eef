"""``${secret:NAME}`` references: found and filled the same way everywhere."""

from __future__ import annotations

from urllib.parse import quote

from catalyst_mcp.security.references import SECRET_NAME, fill, names_in


def test_names_and_filling() -> None:
    text = "u:${secret:PG_PASS}@h/${secret:db.name}?x=${secret:PG_PASS}"
    assert names_in(text) == {"PG_PASS", "db.name"}
    assert fill(text, {"PG_PASS": "p@ss"}, missing="?", encode=lambda v: quote(v, safe="")) == (
        "u:p%40ss@h/%3F?x=p%40ss"
    )
    assert fill("Bearer ${secret:T}", {}) == "Bearer "


def test_names_are_bounded_and_plain() -> None:
    assert SECRET_NAME.match("A-b_c.1")
    assert not SECRET_NAME.match("a/b")
    assert not SECRET_NAME.match("x" * 129)
    assert names_in("${secret:a/b} ${secret:}") == set()
