"""A server's stderr ring buffer: bounded, numbered, resizable, and waited on by followers."""

from __future__ import annotations

import asyncio

from catalyst_mcp.upstreams.serverlog import ServerLog


def texts(lines: list) -> list[str]:  # type: ignore[type-arg]
    return [line.text for line in lines]


def test_it_keeps_the_newest_lines_numbered() -> None:
    log = ServerLog(3)
    for n in range(5):
        log.append(f"line {n}", pid=10, instance="shared")
    assert texts(log.tail(10)) == ["line 2", "line 3", "line 4"]
    assert [line.seq for line in log.tail(2)] == [4, 5]
    assert log.last_seq == 5 and log.capacity == 3
    assert log.tail(0) == []


def test_after_says_how_many_lines_were_missed() -> None:
    log = ServerLog(3)
    for n in range(5):
        log.append(f"line {n}")
    lines, missed = log.after(1, 100)
    assert texts(lines) == ["line 2", "line 3", "line 4"] and missed == 1  # line 1 (seq 2)
    lines, missed = log.after(4, 100)
    assert texts(lines) == ["line 4"] and missed == 0
    assert log.after(5, 100) == ([], 0)
    assert texts(log.after(2, 1)[0]) == ["line 2"]  # at most one line


def test_resizing_keeps_the_newest() -> None:
    log = ServerLog(5)
    for n in range(5):
        log.append(f"line {n}")
    log.resize(2)
    assert texts(log.tail(10)) == ["line 3", "line 4"] and log.capacity == 2
    log.resize(4)
    log.append("line 5")
    assert texts(log.tail(10)) == ["line 3", "line 4", "line 5"]


async def test_a_follower_wakes_at_the_next_line() -> None:
    log = ServerLog(10)
    log.append("before")
    waiting = asyncio.create_task(log.wait(log.last_seq, 5.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    log.append("after")
    assert await waiting is True
    assert await log.wait(0, 0.0) is True  # a line after 0 is there already
    assert await log.wait(log.last_seq, 0.05) is False  # nothing new: gives up in time
