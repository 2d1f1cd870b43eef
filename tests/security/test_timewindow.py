"""Compiled time windows: open or closed at a timestamp, on the window's own clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from catalyst_mcp.security.timewindow import CompiledWindow, TimeWindow, timestamp

BERLIN = ZoneInfo("Europe/Berlin")


def at(*args: int, zone: ZoneInfo = BERLIN) -> float:
    return datetime(*args, tzinfo=zone).timestamp()


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        ((2026, 11, 20, 22, 30), True),  # Friday night, inside
        ((2026, 11, 21, 5, 59), True),  # Saturday early: the window began on Friday
        ((2026, 11, 21, 6, 0), False),  # the end is excluded
        ((2026, 11, 21, 22, 30), False),  # Saturday night: not a Friday window
        ((2026, 11, 20, 21, 59), False),
    ],
)
def test_a_window_wrapping_midnight_belongs_to_the_day_it_starts(
    moment: tuple[int, ...], open_: bool
) -> None:
    window = CompiledWindow(
        TimeWindow.model_validate(
            {"days": ["fri"], "hours": "22:00-06:00", "timezone": "Europe/Berlin"}
        )
    )
    assert window.open(at(*moment)) is open_


def test_until_a_date_includes_that_whole_day() -> None:
    window = CompiledWindow(TimeWindow.model_validate({"until": "2027-03-31"}))
    assert window.open(at(2027, 3, 31, 23, 59, zone=ZoneInfo("UTC")))
    assert not window.open(at(2027, 4, 1, 0, 0, zone=ZoneInfo("UTC")))


def test_a_naive_now_is_utc() -> None:
    assert timestamp(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
