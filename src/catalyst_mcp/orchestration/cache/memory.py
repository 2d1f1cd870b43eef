"""The in-process layer (L1): a bounded least-recently-used map of results.

Bounded twice: at most ``max_entries`` results and ``max_bytes`` bytes (each result counted by
the length of its JSON); the least recently used go first. An entry past its expiry is dropped
when it is next looked up (and counted out of the bounds then). Expiry is judged by ``clock``
(seconds; the cache's clock, injectable for tests). Results are kept as the dictionaries the
provider returned: the request path never changes a result in place (it makes new ones).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Entry", "MemoryLayer", "Scope"]

Scope = Literal["user", "shared"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached result: what it was, until when it is fresh (``clock`` seconds), its size
    (bytes of JSON) and whom it may be served to."""

    result: dict[str, Any]
    expires: float
    size: int
    scope: Scope


class MemoryLayer:
    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float]) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self.bytes = 0
        self.evictions = 0  # entries dropped to stay within the bounds

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> bool:
        """Keep ``entry`` (replacing one of the same key); False if it cannot fit at all."""
        if entry.size > self.max_bytes or self.max_entries == 0:
            return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        self.bytes += entry.size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1
        return True

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size

    def clear(self, prefix: str = "") -> int:
        """Drop every entry whose key starts with ``prefix`` (all: ""); how many."""
        if not prefix:
            count = len(self._entries)
            self._entries.clear()
            self.bytes = 0
            return count
        doomed = [key for key in self._entries if key.startswith(prefix)]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    def keys(self) -> Iterator[str]:
        return iter(list(self._entries))

    def sizes(self) -> Iterator[tuple[str, int]]:
        """Each key with its entry's size (for per-server statistics)."""
        return ((key, entry.size) for key, entry in list(self._entries.items()))
