"""The in-process layer: bounded by entries and bytes, least recently used out first, expired
entries gone, cleared by prefix."""

from __future__ import annotations

from catalyst_mcp.orchestration.cache.memory import Entry, MemoryLayer


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def entry(size: int = 10, expires: float = 200.0) -> Entry:
    return Entry({"content": []}, expires, size, "user")


def test_the_least_recently_used_go_first_past_max_entries() -> None:
    layer = MemoryLayer(2, 1000, Clock())
    layer.put("a", entry())
    layer.put("b", entry())
    assert layer.get("a") is not None  # a is now the most recently used
    layer.put("c", entry())
    assert (layer.get("a"), layer.get("b"), layer.get("c")) == (entry(), None, entry())
    assert (len(layer), layer.bytes, layer.evictions) == (2, 20, 1)


def test_bytes_are_bounded_too() -> None:
    layer = MemoryLayer(100, 25, Clock())
    layer.put("a", entry(10))
    layer.put("b", entry(10))
    layer.put("c", entry(10))
    assert layer.get("a") is None and len(layer) == 2 and layer.bytes == 20
    assert not layer.put("huge", entry(26))  # never fits: not kept, nothing evicted
    assert len(layer) == 2
    layer.put("b", entry(5))  # replaced: its old size is given back
    assert layer.bytes == 15


def test_expired_entries_are_not_served() -> None:
    clock = Clock()
    layer = MemoryLayer(10, 1000, clock)
    layer.put("a", entry(expires=150.0))
    clock.now = 149.9
    assert layer.get("a") is not None
    clock.now = 150.0
    assert layer.get("a") is None and len(layer) == 0 and layer.bytes == 0


def test_no_entries_at_all_with_max_entries_zero() -> None:
    layer = MemoryLayer(0, 1000, Clock())
    assert not layer.put("a", entry())
    assert layer.get("a") is None


def test_clear_by_prefix_or_all() -> None:
    layer = MemoryLayer(10, 1000, Clock())
    for key in ("db/1/x", "db/2/y", "dbx/1/z", "other/1/w"):
        layer.put(key, entry())
    assert layer.clear("db/") == 2
    assert sorted(layer.keys()) == ["dbx/1/z", "other/1/w"]
    assert layer.clear() == 2 and layer.bytes == 0
