"""Time windows of RBAC rules: when a rule applies (days, hours, time zone, from, until).

:class:`TimeWindow` is the data a role's rule carries; :class:`CompiledWindow` answers "is it
open at this timestamp?" with arithmetic only (the day/hour test is memoised per minute).
``hours`` such as ``"22:00-06:00"`` wrap midnight and belong to the day they start on; ``from``
is included and ``until`` excluded; a date ``until`` includes that whole day; naive datetimes
are on the window's clock.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = ["DAYS", "CompiledWindow", "TimeWindow", "timestamp"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _date_or_datetime(value: Any) -> Any:
    """``"2025-01-31"`` is a date (a whole day), whether it came from YAML or JSON."""
    if isinstance(value, str) and _DATE_ONLY.match(value.strip()):
        return date.fromisoformat(value.strip())
    return value


Instant = Annotated[datetime | date, BeforeValidator(_date_or_datetime)]


class TimeWindow(_Model):
    """When a rule applies. Every field given must hold; a missing field always holds."""

    days: tuple[str, ...] | None = Field(
        None, description="Days of the week the rule applies on: mon, tue, ... sun."
    )
    hours: str | None = Field(
        None,
        description="'HH:MM-HH:MM' on the window's clock, start included, end excluded; "
        "'22:00-06:00' wraps midnight (and belongs to the day it starts on); '24:00' ends a day.",
    )
    timezone: str = Field("UTC", description="IANA time zone of days, hours and naive times.")
    from_: Instant | None = Field(
        None, alias="from", description="First moment the rule applies (a date: its midnight)."
    )
    until: Instant | None = Field(
        None, description="Moment the rule stops applying (a date: the end of that day)."
    )

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            return value
        days = []
        for day in value:
            text = str(day).strip().lower()
            if text in _FULL_DAYS:
                text = DAYS[_FULL_DAYS.index(text)]
            if text not in DAYS:
                raise ValueError(f"unknown day {day!r} (use {', '.join(DAYS)})")
            days.append(text)
        if not days:
            raise ValueError("no days given: leave 'days' out to mean every day")
        return tuple(days)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_hours(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        _zone(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> TimeWindow:
        if self.days is None and self.hours is None and self.from_ is None and self.until is None:
            raise ValueError("an empty time window: give days, hours, from or until")
        zone = _zone(self.timezone)
        if _instant(self.from_, zone, end=False) >= _instant(self.until, zone, end=True):
            raise ValueError(f"'until' ({self.until}) is not after 'from' ({self.from_})")
        return self


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {name!r} (an IANA name such as 'UTC' or 'Europe/Berlin')"
        ) from exc


def _parse_hours(text: str) -> tuple[int, int]:
    """``"09:00-17:30"`` -> (540, 1050): minutes after midnight, start and end."""
    found = _HOURS.match(text)
    if not found:
        raise ValueError(f"hours {text!r} must look like '09:00-17:30'")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"hours {text!r}: not a time of day (00:00 to 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"hours {text!r} is empty: leave 'hours' out to mean all day")
    return start, end


def _instant(value: date | datetime | None, zone: ZoneInfo, *, end: bool) -> float:
    """A ``from``/``until`` value as a POSIX timestamp (unbounded: -inf/+inf)."""
    if value is None:
        return math.inf if end else -math.inf
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    else:
        moment = datetime.combine(value + timedelta(days=1 if end else 0), clock_time(), zone)
    return moment.timestamp()


class CompiledWindow:
    """A compiled :class:`TimeWindow`: timestamps and minutes, no parsing left."""

    __slots__ = ("_memo", "days", "end", "first", "last", "start", "zone")

    def __init__(self, spec: TimeWindow) -> None:
        self.zone = _zone(spec.timezone)
        self.first = _instant(spec.from_, self.zone, end=False)
        self.last = _instant(spec.until, self.zone, end=True)
        self.days = sum(1 << DAYS.index(d) for d in spec.days) if spec.days is not None else None
        self.start: int | None = None
        self.end: int | None = None
        if spec.hours:
            self.start, self.end = _parse_hours(spec.hours)
        self._memo: tuple[int, bool] = (-1, False)  # (minute since the epoch, open then)

    def open(self, ts: float) -> bool:
        if not self.first <= ts < self.last:
            return False
        if self.days is None and self.start is None:
            return True
        minute = int(ts // 60)
        memo = self._memo
        if memo[0] == minute:
            return memo[1]
        local = datetime.fromtimestamp(ts, self.zone)
        result = self._clock_open(local)
        offset = local.utcoffset()
        if offset is not None and not offset.total_seconds() % 60:
            self._memo = (minute, result)  # the local minute is the same all this UTC minute
        return result

    def _clock_open(self, local: datetime) -> bool:
        day = local.weekday()
        if self.start is not None and self.end is not None:
            now = local.hour * 60 + local.minute
            if self.start < self.end:
                if not self.start <= now < self.end:
                    return False
            elif now < self.end:
                day = (day - 1) % 7  # after midnight: the window began the day before
            elif now < self.start:
                return False
        return self.days is None or bool(self.days >> day & 1)


def timestamp(now: datetime) -> float:
    """``now`` as a POSIX timestamp; a naive datetime is UTC."""
    return (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).timestamp()
