"""Masked statements keep the shape of a write and none of its values, in every dialect's
reading of what a string is."""

from __future__ import annotations

import pytest

from catalyst_mcp.servers.database.sqlmask import mask_literals

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("sql", "masked"),
    [
        ("UPDATE users SET name = 'ann' WHERE id = 42", "UPDATE users SET name = ? WHERE id = ?"),
        ("INSERT INTO t (a, b) VALUES (:a, :b)", "INSERT INTO t (a, b) VALUES (:a, :b)"),
        ("DELETE FROM t WHERE x > 1.5e3 AND y = .5", "DELETE FROM t WHERE x > ? AND y = ?"),
        ("UPDATE t2 SET c3 = 0x1F", "UPDATE t2 SET c3 = ?"),
        ('UPDATE "Users" SET x = 1', "UPDATE ? SET x = ?"),  # quoted: masked either way
        ("UPDATE `users` SET x = 'y'", "UPDATE ? SET x = ?"),
        ("SELECT x::int FROM t", "SELECT x::int FROM t"),
        ("CREATE TABLE t (id INTEGER PRIMARY KEY)", "CREATE TABLE t (id INTEGER PRIMARY KEY)"),
    ],
)
def test_the_shape_stays_and_the_values_go(sql: str, masked: str) -> None:
    assert mask_literals(sql) == masked


@pytest.mark.parametrize(
    "sql",
    [
        f"UPDATE users SET password = '{SECRET}'",
        f"UPDATE users SET password = '{SECRET}' -- done",
        f"UPDATE users SET password = 'it''s {SECRET}'",
        # MySQL: a backslash escapes the quote, so the string goes on
        f"UPDATE u SET a = 'x\\', b = {SECRET} '",
        # standard SQL: the backslash is a character, the first string ends at \\'
        f"UPDATE u SET a = 'x\\', b = '{SECRET}'",
        # PostgreSQL escape strings
        f"UPDATE u SET a = E'x\\'{SECRET}'",
        f"UPDATE u SET a = $${SECRET}$$",
        f"UPDATE u SET a = $tag${SECRET}$tag$",
        f"UPDATE u SET a = $tag$ '$tag$ {SECRET}",  # unterminated: masked to the end
        f"UPDATE u SET a = '{SECRET}",
        f'UPDATE u SET a = "{SECRET}"',
        f"UPDATE u SET a = 1 # comment\n, b = '{SECRET}'",
        # PostgreSQL: # is an operator, and the string spans the line
        f"UPDATE u SET a = 1 # 'x\n{SECRET}'",
        # MySQL: --' is not a comment, so this is one string over two lines
        f"UPDATE u SET a = 1 --'x\n{SECRET}'",
        f"UPDATE u SET a = 1 /* '{SECRET}' */",
        f"UPDATE u SET a = 1 /* /* */ '{SECRET}' */ , b = '{SECRET}'",
        f"UPDATE u SET a = /* unterminated {SECRET}",
        f"UPDATE u SET a = N'{SECRET}', b = X'{SECRET}', c = B'{SECRET}'",
        f"UPDATE u SET a = U&'{SECRET}'",
        f"UPDATE u SET a = 'a' '{SECRET}'",
    ],
)
def test_no_reading_of_the_statement_leaks_a_value(sql: str) -> None:
    masked = mask_literals(sql)
    assert SECRET not in masked, masked
    assert masked.startswith("UPDATE u") or masked.startswith("UPDATE users")


def test_a_long_statement_is_cut() -> None:
    masked = mask_literals("UPDATE t SET " + ", ".join(f"c{i} = :v{i}" for i in range(2000)))
    assert len(masked) <= 4003 and masked.endswith("...")
