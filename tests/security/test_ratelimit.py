"""Rate limits: token buckets checked together, in process (injected clock) and in the real
Redis at 127.0.0.1:6379 (shared by several limiters and a second process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from catalyst_mcp.errors import RateLimited
from catalyst_mcp.security import ratelimit
from catalyst_mcp.security.ratelimit import (
    Check,
    LimiterUnavailable,
    MemoryLimiter,
    RateLimiter,
    RedisLimiter,
)
from tests.conftest import PYTHON, free_port, require_or_skip

REDIS_URL = "redis://127.0.0.1:6379/0"
SLOW = 0.001  # tokens per second: nothing measurable refills during a test


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def memory(clock: Clock) -> MemoryLimiter:
    return MemoryLimiter(clock)


def user(rate: float = 2.0, burst: int = 3, name: str = "alice") -> Check:
    return Check(f"user:{name}", rate, burst, f"user '{name}'")


def tool(rate: float = 2.0, burst: int = 3, name: str = "crm__find") -> Check:
    return Check(f"tool:alice:{name}", rate, burst, f"tool '{name}' for user 'alice'")


async def allowed(limiter: RateLimiter, checks: list[Check], attempts: int) -> int:
    """How many of ``attempts`` calls in a row the limiter lets through."""
    count = 0
    for _ in range(attempts):
        try:
            await limiter.acquire(checks)
        except RateLimited:
            continue
        count += 1
    return count


# ---- in process, on an injected clock --------------------------------------------------------


async def test_a_bucket_allows_its_burst_then_refills_at_its_rate(
    memory: MemoryLimiter, clock: Clock
) -> None:
    assert await allowed(memory, [user(rate=2, burst=3)], 10) == 3
    with pytest.raises(RateLimited) as caught:
        await memory.acquire([user(rate=2, burst=3)])
    assert caught.value.retry_after == pytest.approx(0.5)
    clock.now += 0.25  # half a token
    with pytest.raises(RateLimited) as caught:
        await memory.acquire([user(rate=2, burst=3)])
    assert caught.value.retry_after == pytest.approx(0.25)
    clock.now += 0.25
    assert await allowed(memory, [user(rate=2, burst=3)], 10) == 1
    clock.now += 3600  # never more than the burst saved up
    assert await allowed(memory, [user(rate=2, burst=3)], 10) == 3


async def test_the_message_names_the_limit_and_the_wait(memory: MemoryLimiter) -> None:
    check = Check("user:alice", 10, 20, "user 'alice'")
    assert await allowed(memory, [check], 20) == 20
    with pytest.raises(RateLimited) as caught:
        await memory.acquire([check])
    assert str(caught.value) == (
        "rate limit for user 'alice' exceeded: 10/s, burst 20; retry after 0.1 s"
    )
    assert caught.value.to_jsonrpc() == {
        "code": -32029,
        "message": str(caught.value),
        "data": {"retryAfterSeconds": 0.1},
    }


@pytest.mark.parametrize(
    ("rate", "burst", "text"),
    [
        pytest.param(2.5, 1, "2.5/s", id="per-second"),
        pytest.param(0.5, 1, "30/min", id="half-per-second"),
        pytest.param(1 / 60, 1, "1/min", id="per-minute"),
        pytest.param(1 / 3600, 2, "1/h", id="per-hour"),
    ],
)
async def test_slow_rates_read_naturally(rate: float, burst: int, text: str) -> None:
    limiter = MemoryLimiter(Clock())
    await allowed(limiter, [Check("k", rate, burst)], burst)
    with pytest.raises(RateLimited, match=rf"^rate limit for 'k' exceeded: {text}, burst {burst};"):
        await limiter.acquire([Check("k", rate, burst)])


async def test_all_buckets_or_none_are_charged(memory: MemoryLimiter) -> None:
    both = [user(rate=SLOW, burst=5), tool(rate=SLOW, burst=2)]
    assert await allowed(memory, both, 2) == 2
    with pytest.raises(RateLimited, match=r"^rate limit for tool 'crm__find' for user 'alice'"):
        await memory.acquire(both)
    # the refused calls took nothing from the user's bucket: 5 - 2 tokens are left
    assert await allowed(memory, [user(rate=SLOW, burst=5)], 10) == 3


async def test_the_longest_wait_is_reported(memory: MemoryLimiter, clock: Clock) -> None:
    fast, slow = user(rate=10, burst=1), tool(rate=1, burst=1)
    await memory.acquire([fast, slow])
    with pytest.raises(RateLimited) as caught:
        await memory.acquire([fast, slow])
    assert caught.value.retry_after == pytest.approx(1.0)
    assert "tool 'crm__find'" in str(caught.value)
    clock.now += 0.5  # the fast bucket is full again, the slow one half-way
    with pytest.raises(RateLimited) as caught:
        await memory.acquire([fast, slow])
    assert caught.value.retry_after == pytest.approx(0.5)


async def test_buckets_are_keyed_not_shared(memory: MemoryLimiter) -> None:
    assert await allowed(memory, [user(burst=1, name="alice")], 3) == 1
    assert await allowed(memory, [user(burst=1, name="bob")], 3) == 1


async def test_idle_full_buckets_are_forgotten(clock: Clock) -> None:
    limiter = MemoryLimiter(clock, sweep_seconds=60)
    await limiter.acquire([Check("busy", SLOW, 5)])
    for i in range(10):
        await limiter.acquire([Check(f"idle:{i}", 1.0, 5)])  # full again after 1 s
    assert len(limiter) == 11
    clock.now += 61
    await limiter.acquire([Check("idle:0", 1.0, 5)])
    assert len(limiter) == 2  # "busy" is not full yet, "idle:0" was just used
    await limiter.aclose()
    assert len(limiter) == 0


async def test_many_new_buckets_trigger_a_sweep_before_the_interval(clock: Clock) -> None:
    limiter = MemoryLimiter(clock, sweep_seconds=3600)
    for i in range(1023):
        await limiter.acquire([Check(f"k:{i}", 1000.0, 1)])
    clock.now += 1
    await limiter.acquire([Check("last", 1000.0, 1)])  # the 1024th bucket: a sweep
    assert len(limiter) == 1


async def test_bad_checks_are_refused(memory: MemoryLimiter) -> None:
    with pytest.raises(ValueError, match="rate_per_second must be > 0"):
        Check("k", 0, 1)
    with pytest.raises(ValueError, match="burst must be at least 1"):
        Check("k", 1, 0)
    with pytest.raises(ValueError, match="same rate-limit bucket twice"):
        await memory.acquire([Check("k", 1, 1), Check("k", 1, 1)])
    await memory.acquire([])  # nothing to check: allowed


# ---- the same semantics in process and in Redis ----------------------------------------------


def redis_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", 6379)) == 0


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    require_or_skip(redis_up(), "no Redis at 127.0.0.1:6379")
    prefix = f"catalyst-test:{uuid.uuid4().hex}:"
    yield prefix
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
async def shared(prefix: str) -> AsyncIterator[RedisLimiter]:
    limiter = RedisLimiter(REDIS_URL, prefix)
    yield limiter
    await limiter.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    """Each limiter on the real clock (the Redis server's, for Redis)."""
    if request.param == "memory":
        yield MemoryLimiter()
        return
    prefix = request.getfixturevalue("prefix")
    redis_limiter = RedisLimiter(REDIS_URL, prefix)
    yield redis_limiter
    await redis_limiter.aclose()


async def test_burst_then_refused_with_the_wait(limiter: RateLimiter) -> None:
    check = Check("user:alice", SLOW, 4, "user 'alice'")
    assert await allowed(limiter, [check], 10) == 4
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire([check])
    assert caught.value.retry_after == pytest.approx(1 / SLOW, rel=0.01)
    assert str(caught.value) == (
        "rate limit for user 'alice' exceeded: 3.6/h, burst 4; retry after 1000 s"
    )


async def test_refill_brings_a_token_back(limiter: RateLimiter) -> None:
    check = Check("k", 20.0, 1)
    await limiter.acquire([check])
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire([check])
    assert 0 < caught.value.retry_after <= 0.05
    await asyncio.sleep(caught.value.retry_after + 0.01)
    await limiter.acquire([check])


async def test_a_refused_call_charges_no_bucket(limiter: RateLimiter) -> None:
    both = [user(rate=SLOW, burst=5), tool(rate=SLOW, burst=2)]
    assert await allowed(limiter, both, 6) == 2
    assert await allowed(limiter, [user(rate=SLOW, burst=5)], 10) == 3
    # a third bucket refused along with a full one: the full one stays full
    fresh = Check("server:alice:crm", SLOW, 3)
    assert await allowed(limiter, [fresh, tool(rate=SLOW, burst=2)], 5) == 0
    assert await allowed(limiter, [fresh], 5) == 3


# ---- Redis only ------------------------------------------------------------------------------


@pytest.mark.redis
async def test_buckets_expire_once_full_again(shared: RedisLimiter, prefix: str) -> None:
    await shared.acquire([Check("k", 10.0, 5)])  # 1 token short: full after 0.1 s
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        ttl = await client.pttl(prefix + "k")
        assert 1000 < ttl <= 1100  # the refill time plus a second of margin
        await shared.acquire([Check("empty", SLOW, 1)])
        with pytest.raises(RateLimited):
            await shared.acquire([Check("new", 1.0, 1), Check("empty", SLOW, 1)])
        assert not await client.exists(prefix + "new")  # refused: nothing written
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_the_script_is_loaded_when_redis_does_not_know_it(
    shared: RedisLimiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "SCRIPT_SHA", "0" * 40)  # EVALSHA fails: NOSCRIPT
    assert await allowed(shared, [Check("k", SLOW, 2)], 3) == 2


@pytest.mark.redis
async def test_a_redis_error_is_mapped_too(shared: RedisLimiter, prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        client.set(prefix + "k", "not a bucket")  # WRONGTYPE for the script's HMGET
    with pytest.raises(LimiterUnavailable) as caught:
        await shared.acquire([Check("k", 1.0, 1)])
    assert isinstance(caught.value.__cause__, redis.ResponseError)


class SlowReplies:
    """A TCP proxy to Redis that holds back the reply to the first EVALSHA for ``delay``
    seconds: Redis has run the script, its answer is late."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent_script = False
        self.delayed = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self.writers.append(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer, upstream=True),
            self._pipe(up_reader, writer, upstream=False),
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                if upstream and b"EVALSHA" in data.upper():
                    self.sent_script = True
                if not upstream and self.sent_script and not self.delayed:
                    self.delayed = True
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        writer.close()


@pytest.mark.redis
async def test_a_late_reply_never_charges_the_call_twice(prefix: str) -> None:
    """A timeout after Redis ran the script: the call fails (closed), it is not retried."""
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.script_load(ratelimit.SCRIPT)  # EVALSHA runs at once
        async with SlowReplies(delay=0.6) as url:
            limiter = RedisLimiter(url, prefix, timeout=0.3)
            try:
                with pytest.raises(LimiterUnavailable):
                    await limiter.acquire([Check("user:alice", SLOW, 5)])
            finally:
                await limiter.aclose()
        assert await client.hget(prefix + "user:alice", "t") == "4"  # one token, not two
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_connection_redis_dropped_is_replaced_without_a_retry(
    shared: RedisLimiter, prefix: str
) -> None:
    """What the retry was for: an idle pooled connection Redis closed (a restart, a timeout)
    is noticed before the script is sent, and a new one is made."""
    check = Check("k", SLOW, 5)
    await shared.acquire([check])
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        own = await client.client_id()
        # the limiter's one pooled connection, and only it (other suites share this Redis)
        victim = await shared._redis.client_id()
        assert await client.client_kill_filter(_id=victim) == 1
        assert await client.client_id() == own
        await asyncio.sleep(0.2)  # dropped while idle: the loop has seen the connection end
        await shared.acquire([check])
        left = await client.hget(prefix + "k", "t")
        assert left is not None
        assert float(left) == pytest.approx(3, abs=0.01)
    finally:
        await client.aclose()


HAMMER = """
import asyncio, sys
from catalyst_mcp.errors import RateLimited
from catalyst_mcp.security.ratelimit import Check, RedisLimiter

async def main(url, prefix, rate, burst, attempts):
    limiter = RedisLimiter(url, prefix)
    try:
        await limiter.acquire([Check("warm-up", 1000.0, 1000)])
        print("ready", flush=True)
        sys.stdin.readline()
        count = 0
        for _ in range(attempts):
            try:
                await limiter.acquire([Check("shared", rate, burst)])
                count += 1
            except RateLimited:
                pass
        print(count, flush=True)
    finally:
        await limiter.aclose()

url, prefix, rate, burst, attempts = sys.argv[1:]
asyncio.run(main(url, prefix, float(rate), int(burst), int(attempts)))
"""


async def hammer(limiter: RedisLimiter, check: Check, attempts: int, tasks: int) -> int:
    counts = await asyncio.gather(*(allowed(limiter, [check], attempts) for _ in range(tasks)))
    return sum(counts)


@pytest.mark.redis
@pytest.mark.subprocess
async def test_instances_and_processes_share_exactly_one_burst(prefix: str) -> None:
    burst = 120
    check = Check("shared", SLOW, burst)  # < 0.1 token refills in the test's seconds
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-c",
        HAMMER,
        REDIS_URL,
        prefix,
        str(SLOW),
        str(burst),
        "150",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    one, two = RedisLimiter(REDIS_URL, prefix), RedisLimiter(REDIS_URL, prefix)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 20)).strip() == b"ready"
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        here = await asyncio.gather(hammer(one, check, 40, 4), hammer(two, check, 40, 4))
        there = int(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await one.aclose()
        await two.aclose()
    assert sum(here) + there == burst, (here, there)
    assert one._redis.connection_pool is not two._redis.connection_pool


@pytest.mark.redis
async def test_instances_share_burst_plus_refill(prefix: str) -> None:
    rate, burst = 50.0, 10
    check = Check("shared", rate, burst)
    one, two = RedisLimiter(REDIS_URL, prefix), RedisLimiter(REDIS_URL, prefix)
    clock = aioredis.Redis.from_url(REDIS_URL)

    async def server_time() -> float:
        seconds, micros = await clock.time()
        return seconds + micros / 1e6

    async def until(deadline: float, limiter: RedisLimiter) -> int:
        count = 0
        while time.monotonic() < deadline:
            try:
                await limiter.acquire([check])
                count += 1
            except RateLimited:
                await asyncio.sleep(0)
        return count

    try:
        before = await server_time()
        deadline = time.monotonic() + 0.6
        counts = await asyncio.gather(*(until(deadline, lim) for lim in (one, two, one, two)))
        after = await server_time()
    finally:
        await one.aclose()
        await two.aclose()
        await clock.aclose()
    total, elapsed = sum(counts), after - before
    assert total <= burst + rate * elapsed  # never more than the burst and what refilled
    assert total >= burst + rate * (elapsed - 0.1) - 1  # callers kept asking the whole time


# ---- Redis down ------------------------------------------------------------------------------


def down_url() -> str:
    return f"redis://catalyst:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there


async def test_redis_down_refuses_the_call_clearly(caplog: pytest.LogCaptureFixture) -> None:
    url = down_url()
    port = url.rsplit(":", 1)[1].split("/")[0]
    limiter = RedisLimiter(url, timeout=2.0)
    started = time.monotonic()
    try:
        with (
            caplog.at_level(logging.WARNING, logger="catalyst.ratelimit"),
            pytest.raises(LimiterUnavailable) as caught,
        ):
            await limiter.acquire([user()])
    finally:
        await limiter.aclose()
    assert time.monotonic() - started < 2.0
    assert str(caught.value) == (
        "rate limits cannot be checked right now (the rate-limit store is unavailable), so "
        "the call was refused; try again later"
    )
    assert caught.value.to_jsonrpc()["code"] == -32603
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        f"rate limits cannot be checked: Redis at redis://127.0.0.1:{port}/0 failed: "
        "ConnectionError"
    ]
    assert not any("hunter2" in text for text in [*logged, str(caught.value), limiter.where])


async def test_redis_down_can_fail_open(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisLimiter(down_url(), fail_open=True)
    try:
        with caplog.at_level(logging.WARNING, logger="catalyst.ratelimit"):
            for _ in range(3):
                await limiter.acquire([user(burst=1)])  # unlimited while Redis is down
    finally:
        await limiter.aclose()
    assert len(caplog.records) == 1  # one warning, not one per call
    assert "calls go through (fail_open)" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("url", "where"),
    [
        (
            "redis://u:p@cache.internal:6380/2?ssl_cert_reqs=none",
            "Redis at redis://cache.internal:6380/2",
        ),
        ("rediss://:secret@cache", "Redis at rediss://cache"),
        ("unix:///run/redis.sock?db=1", "Redis at unix:/run/redis.sock"),
    ],
)
def test_the_location_in_logs_has_no_credentials(url: str, where: str) -> None:
    assert ratelimit._location(url) == where
