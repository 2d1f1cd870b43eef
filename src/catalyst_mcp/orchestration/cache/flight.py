"""Single flight: one upstream call per cache key at a time in this process.

While a miss of key K is being fetched (the *leader*: Redis, then the provider, then the
store), another caller of K (the same tool, arguments and scope: callers of a ``user`` tool
share a flight only with themselves) waits for it instead of calling the provider too, and is
then served what the leader's call stored, as a hit would serve it. What the waiter gets
(:attr:`Flight.outcome`):

* :class:`Landed`: the key and entry the leader's result was stored (or found in Redis) under.
  A waiter takes it when that key is one of its own (a result the upstream marked ``private``
  on a shared tool is kept under the leader's user key: other users' waiters don't take it);
* :data:`FAILED`: nothing was stored: a tool error, an upstream that failed or timed out, an
  exception, a result the cache does not keep (too large, ``ttlMs: 0``, a task, one the server
  asked the client something for). Nothing of it is shared: each waiter makes its own call,
  outside any flight (so a failing upstream is not tried once per waiter in a row);
* :data:`CANCELLED`: the leader's caller went away (its client cancelled, its deadline passed)
  and its call with it. The waiters look again; one of them leads the next flight.

A waiter waits on an event of its own flight: its own cancellation ends its wait alone (the
leader's call goes on for the others), and a leader's cancellation reaches no waiter.

Only calls in this process are coalesced; instances sharing Redis each make their own call of a
key they all miss at once (docs/cache.md, "Concurrent misses").
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Final, Literal, NamedTuple

from catalyst_mcp.orchestration.cache.memory import Entry

__all__ = ["CANCELLED", "FAILED", "Flight", "Flights", "Landed", "Outcome"]

FAILED: Final = "failed"
CANCELLED: Final = "cancelled"


class Landed(NamedTuple):
    """What a leader's call came to: the ``entry`` stored (or found in Redis) under ``key``."""

    key: str
    entry: Entry


Outcome = Landed | Literal["failed", "cancelled"]


class Flight:
    """One miss being fetched, led in a ``with`` block (:meth:`Flights.leading`): other
    callers of its key wait for it until the block ends. ``outcome`` is :data:`FAILED` until
    the leader lands it; a block left by a cancellation makes it :data:`CANCELLED`."""

    __slots__ = ("_done", "_flights", "key", "outcome", "waiting")

    def __init__(self, flights: dict[str, Flight], key: str) -> None:
        self._flights = flights
        self.key = key
        self.outcome: Outcome = FAILED
        self.waiting = 0  # callers waiting for it now
        self._done: asyncio.Event | None = None  # made by the first waiter (most misses have none)

    def land(self, key: str, entry: Entry) -> None:
        self.outcome = Landed(key, entry)

    async def wait(self) -> Outcome:
        """What the leader's call came to, once it ended."""
        if self._done is None:
            self._done = asyncio.Event()
        self.waiting += 1
        try:
            await self._done.wait()
        finally:
            self.waiting -= 1
        return self.outcome

    def __enter__(self) -> Flight:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if isinstance(error, asyncio.CancelledError) and not isinstance(self.outcome, Landed):
            self.outcome = CANCELLED
        if self._flights.get(self.key) is self:
            del self._flights[self.key]
        if self._done is not None:
            self._done.set()


class Flights:
    """The misses of one cache being fetched, by key (``enabled`` false: none are coalesced:
    :meth:`joined` finds nothing and :meth:`leading` registers nothing)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def joined(self, key: str) -> Flight | None:
        """The flight of ``key`` to wait for, if one is under way."""
        return self._flights.get(key) if self.enabled else None

    def waiting(self) -> int:
        """Callers waiting for a flight now."""
        return sum(flight.waiting for flight in self._flights.values())

    def leading(self, key: str) -> Flight:
        """A flight of ``key`` to lead: ``with flights.leading(key) as flight: ...``."""
        flight = Flight(self._flights, key)
        if self.enabled:
            self._flights[key] = flight
        return flight
