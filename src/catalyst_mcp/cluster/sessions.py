"""Legacy sessions in Redis, so that any instance serves any request of a session.

An ``initialize`` on any instance writes the session to Redis (who opened it, the negotiated
version, the client's capabilities and info, its log level) under the caps of decision 012,
counted across every instance. Each instance keeps copies of the sessions it has served in its
:class:`~catalyst_mcp.protocol.legacy.SessionStore`, so a request whose session this instance has
seen costs no Redis round trip; the first one it has not seen reads the session once. What
changes a session later is written to Redis and told to the other instances (pub/sub): the
log level, the end of the session (DELETE, a cap, expiry), subscriptions.

Messages for a session that are not the answer to a request (resource updates) go to the
instance whose GET stream relays them (``holder``); when no stream is open, or its instance is
gone, they wait in Redis until the next GET, on any instance, takes them. A client's answer to a
request the gateway sent it (sampling, elicitation, roots) goes to the instance that asked (its
id is in the request id), and a ``notifications/cancelled`` to every instance (one of them runs
the request).

Every instance subscribes upstream to each resource any session follows, so an upstream's
update reaches the sessions whatever instance hears it. A stream is told of list changes by the
instance holding it (every instance applies every configuration change, so each stream hears of
each once). Decision 024 has the why and the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from catalyst_mcp.aio import cancel_and_wait
from catalyst_mcp.cluster import scripts
from catalyst_mcp.cluster.bus import Bus
from catalyst_mcp.cluster.wire import identity_from, identity_of
from catalyst_mcp.context import Identity
from catalyst_mcp.errors import CatalystError, InvalidParams, NotFound, SessionLimit
from catalyst_mcp.protocol.hub import MAX_SUBSCRIPTIONS
from catalyst_mcp.protocol.jsonrpc import Message, notification
from catalyst_mcp.protocol.legacy import (
    OUTBOX_LIMIT,
    LegacySession,
    SessionStore,
    SharedSession,
    negotiate_version,
)

if TYPE_CHECKING:
    from catalyst_mcp.protocol.dispatch import Dispatcher
    from catalyst_mcp.registry import Registry

__all__ = ["SharedSessions"]

log = logging.getLogger("catalyst.cluster")

TOUCH_SECONDS = 5.0  # at most this long between telling Redis a session is in use
BUSY_TOUCHES = 1.5  # used within this many touch periods: busy (never evicted by a cap)


class SharedSessions:
    """The legacy sessions of every instance, in Redis: this instance's side of them."""

    def __init__(self, bus: Bus, dispatcher: Dispatcher, registry: Registry) -> None:
        self.bus = bus
        self.instance = bus.instance
        self.dispatcher = dispatcher
        self.store: SessionStore = dispatcher.sessions
        self.registry = registry
        idle = self.store.idle_seconds
        self.idle_ms = max(1, int(idle * 1000))
        self.touch_seconds = min(idle / 4, TOUCH_SECONDS)
        self.busy_ms = int(self.touch_seconds * BUSY_TOUCHES * 1000)
        redis = bus.redis
        self._create = redis.register_script(scripts.CREATE)
        self._touch = redis.register_script(scripts.TOUCH)
        self._delete = redis.register_script(scripts.DELETE)
        self._deliver = redis.register_script(scripts.DELIVER)
        self._notify = redis.register_script(scripts.NOTIFY)
        self._claim = redis.register_script(scripts.CLAIM)
        self._release = redis.register_script(scripts.RELEASE)
        self._subscribe = redis.register_script(scripts.SUBSCRIBE)
        self._unsubscribe = redis.register_script(scripts.UNSUBSCRIBE)
        self._level = redis.register_script(scripts.LEVEL)
        self.followed: set[str] = set()  # resources this instance follows upstream for them
        # takes a message POSTed for a session whose HTTP+SSE stream is held here
        self.posted: Callable[[LegacySession, Message, Identity], None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._loading: dict[str, asyncio.Future[SharedSession | None]] = {}
        bus.handlers.update(
            deliver=self._on_deliver,
            answer=self._on_answer,
            cancel=self._on_cancel,
            ended=self._on_ended,
            level=self._on_level,
            follow=self._on_follow,
            unfollow=self._on_unfollow,
            post=self._on_post,
        )
        bus.on_reconnect.append(self._reclaim_all)

    # ---- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Follow upstream the resources sessions follow, and keep the sessions in use here
        alive in Redis (the registry's servers are up by now)."""
        try:
            uris = await self.bus.redis.smembers(self.bus.key("uris"))
        except RedisError as exc:
            raise self.bus.unavailable(exc) from exc
        for uri in uris:
            await self._follow(_text(uri))
        self._keeper = asyncio.get_running_loop().create_task(self._keep(), name="sessions")

    async def stop(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            await cancel_and_wait(keeper)
        # the streams held here end now: their messages wait in Redis for the next GET
        for session in self.store:
            if isinstance(session, SharedSession) and session.listening:
                with contextlib.suppress(CatalystError):
                    await self.release(session)

    async def _keep(self) -> None:
        since = time.monotonic()
        while True:
            await asyncio.sleep(self.touch_seconds)
            now = time.monotonic()
            try:
                await self.touch(since)
            except CatalystError:
                continue  # logged; the next round tries again (from the same time)
            except Exception:  # a bug here must not leave the sessions to expire unseen
                log.exception("keeping the shared sessions alive failed")
                continue
            since = now

    async def touch(self, since: float) -> None:
        """Tell Redis which sessions were used here since ``since`` (or are busy: a request in
        flight, a stream open), so they stay; forget here those that ended elsewhere."""
        self.store.sweep()  # copies unused for session_idle_seconds: forgotten here only
        used: list[str] = []
        now = time.monotonic()
        for session in self.store:
            if isinstance(session, SharedSession) and (session.busy or session.last_seen >= since):
                used += (session.id, session.identity.subject)
                session.told = now
        if not used:
            return
        gone = await self._run(self._touch, self.bus.tag, self.idle_ms, *used)
        for sid in gone:
            self.store.remove(sid.decode())

    # ---- create, find, end -------------------------------------------------------------------

    async def initialize(
        self, message: Message, identity: Identity, transport: str = "streamable-http"
    ) -> tuple[SharedSession, Message]:
        """Make a session of ``identity`` for an ``initialize`` request, in Redis (where the
        caps count every instance's sessions), and answer it."""
        dispatcher = self.dispatcher
        try:
            version, params = dispatcher.negotiate(message)
            session = await self.create(version, params, identity)
        except CatalystError as exc:
            from catalyst_mcp.observability.observer import outcome_of

            dispatcher.observer.count("initialize", "legacy", transport, outcome_of(exc))
            raise
        return session, dispatcher.initialized(message, version, transport)

    async def create(
        self, version: str, params: dict[str, Any], identity: Identity
    ) -> SharedSession:
        """A new session of ``identity``, in Redis and held here (SessionLimit at a cap)."""
        session = SharedSession(secrets.token_hex(16), version, params, identity, self)
        await self._store(session)
        session.told = time.monotonic()  # made now: Redis knows it is in use
        self.store.keep(session)
        return session

    def used(self, session: SharedSession) -> None:
        """A request of ``session`` starts here: unless this instance told Redis of the session
        lately, tell it now (in the background), so that a cap never takes a session in use
        for idle while the next touch is still to come."""
        now = time.monotonic()
        if now - session.told >= self.touch_seconds / 2:
            session.told = now
            self.bus.spawn(self._tell(session))

    async def _tell(self, session: SharedSession) -> None:
        with contextlib.suppress(CatalystError):  # logged; the keeper tries again
            await self._run(
                self._touch, self.bus.tag, self.idle_ms, session.id, session.identity.subject
            )

    async def _store(self, session: SharedSession) -> None:
        identity = session.identity
        fields = (
            "sub",
            identity.subject,
            "who",
            orjson.dumps(identity_of(identity)),
            "v",
            session.protocol_version,
            "caps",
            orjson.dumps(session.client_capabilities),
            "info",
            orjson.dumps(session.client_info),
            "lvl",
            session.log_level or "",
        )
        store = self.store
        status, count, ended, freed = await self._run(
            self._create,
            self.bus.tag,
            session.id,
            identity.subject,
            self.idle_ms,
            self.busy_ms,
            store.per_caller,
            store.limit,
            *fields,
        )
        if ended:
            store.evicted += len(ended)
            await self._ended([s.decode() for s in ended], [u.decode() for u in freed])
        if status == b"caller":
            store.refused += 1
            raise SessionLimit(
                f"Too many sessions: {identity.subject!r} has {count} legacy sessions open, the "
                "most one caller may have (gateway.max_legacy_sessions_per_caller), and all "
                "are busy; end sessions you no longer use (HTTP DELETE) or retry when a "
                "request finishes",
                status=429,
                data={"cap": "per_caller", "limit": store.per_caller},
            )
        if status == b"global":
            store.refused += 1
            raise SessionLimit(
                f"Too many sessions: the gateway holds {count} legacy sessions, its limit "
                "(gateway.max_legacy_sessions), and all are busy; retry later",
                status=503,
                data={"cap": "global", "limit": store.limit},
            )

    async def load(self, session_id: str) -> SharedSession | None:
        """The session ``session_id`` (made by any instance), or None if there is none."""
        found = self.store.get(session_id)
        if isinstance(found, SharedSession):
            return found
        if found is not None or len(session_id) > 128:
            return None  # a stdio/WebSocket session: not one of ours
        waiting = self._loading.get(session_id)
        if waiting is not None:  # another request loads it right now: one read will do
            return await asyncio.shield(waiting)
        future: asyncio.Future[SharedSession | None] = asyncio.get_running_loop().create_future()
        self._loading[session_id] = future
        try:
            session = await self._read(session_id)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may wait
            raise
        finally:
            self._loading.pop(session_id, None)
        future.set_result(session)
        return session

    async def _read(self, session_id: str) -> SharedSession | None:
        try:
            data = await self.bus.redis.hgetall(self.bus.key("s", session_id))
        except RedisError as exc:
            raise self.bus.unavailable(exc) from exc
        if not data or b"who" not in data:
            return None
        identity = identity_from(orjson.loads(data[b"who"]))
        params = {
            "capabilities": orjson.loads(data.get(b"caps", b"{}")),
            "clientInfo": orjson.loads(data.get(b"info", b"null")),
        }
        version = negotiate_version(_text(data.get(b"v", b"")))
        session = SharedSession(session_id, version, params, identity, self)
        level = _text(data.get(b"lvl", b""))
        session.log_level = level or None
        return self._keep_copy(session)

    def _keep_copy(self, session: SharedSession) -> SharedSession:
        held = self.store.peek(session.id)
        if isinstance(held, SharedSession):
            return held
        self.store.keep(session)
        return session

    async def end(self, session_id: str) -> bool:
        """End the session everywhere (an HTTP DELETE, or its SSE stream closed); False if
        Redis has no such session."""
        existed, freed = await self._run(self._delete, self.bus.tag, session_id)
        await self._ended([session_id], [u.decode() for u in freed])
        return bool(existed)

    async def _ended(self, session_ids: list[str], freed: list[str]) -> None:
        """Sessions that ended in Redis: every instance forgets them, and stops following
        the resources nobody follows any more."""
        await self.bus.broadcast({"k": "ended", "s": session_ids})
        for session_id in session_ids:
            self.store.remove(session_id)
        if freed:
            await self.bus.broadcast({"k": "unfollow", "u": freed})
            for uri in freed:
                await self._unfollow(uri)

    # ---- the session's stream ----------------------------------------------------------------

    async def claim(self, session: SharedSession) -> bool:
        """This instance's stream relays ``session``'s messages from now on; the ones that
        waited are queued on it. False if the session has ended."""
        found, waiting = await self._run(self._claim, self.bus.tag, session.id, self.instance)
        if not found:
            self.store.remove(session.id)
            return False
        for data in waiting:
            session.post(orjson.loads(data))
        return True

    async def release(self, session: SharedSession) -> None:
        """The stream closed: messages wait in Redis again."""
        await self._run(self._release, self.bus.tag, session.id, self.instance)

    def _reclaim_all(self) -> None:
        """After the pub/sub connection came back: messages sent meanwhile went to Redis."""
        for session in self.store:
            if isinstance(session, SharedSession) and session.listening:
                self.bus.spawn(self.claim(session))

    def _on_deliver(self, message: dict[str, Any]) -> None:
        session = self.store.peek(message["s"])
        if session is not None and session.listening and not session.closed:
            session.post(message["m"])
        else:  # its stream closed meanwhile: the message waits for the next one
            data = orjson.dumps(message["m"])
            self.bus.spawn(
                self._run(self._deliver, self.bus.tag, message["s"], data, OUTBOX_LIMIT, "1")
            )

    async def resource_updated(self, uri: str) -> None:
        """An upstream says ``uri`` changed: tell every session subscribed to it."""
        data = orjson.dumps(notification("notifications/resources/updated", {"uri": uri}))
        try:
            _, unfollowed = await self._run(self._notify, self.bus.tag, uri, data, OUTBOX_LIMIT)
        except CatalystError:
            return  # logged: this update is lost (as when the stream is gone)
        if unfollowed:
            await self.bus.broadcast({"k": "unfollow", "u": [uri]})
            await self._unfollow(uri)

    async def forward(self, session: SharedSession, message: Message, identity: Identity) -> bool:
        """Pass a message the client POSTed here (the HTTP+SSE transport) to the instance
        whose stream answers it; False when none does (the session is over)."""
        try:
            holder = await self.bus.redis.hget(self.bus.key("s", session.id), "holder")
        except RedisError as exc:
            raise self.bus.unavailable(exc) from exc
        if not holder:
            return False
        who = identity_of(identity)
        return await self.bus.send(
            _text(holder), {"k": "post", "s": session.id, "m": message, "who": who}
        )

    def _on_post(self, message: dict[str, Any]) -> None:
        session = self.store.peek(message["s"])
        if session is None or self.posted is None or not isinstance(message.get("m"), dict):
            return
        try:
            identity = identity_from(message["who"])
        except (KeyError, TypeError, ValueError):
            return
        self.posted(session, message["m"], identity)

    # ---- what the client sends any instance --------------------------------------------------

    async def answer(self, session: SharedSession, message: Message) -> None:
        request_id = message.get("id")
        if not isinstance(request_id, str) or not request_id.startswith("catalyst-"):
            return
        instance, _, number = request_id[len("catalyst-") :].rpartition("-")
        if instance and instance != self.instance and number.isdigit():
            await self.bus.send(instance, {"k": "answer", "s": session.id, "m": message})

    def _on_answer(self, message: dict[str, Any]) -> None:
        session = self.store.peek(message["s"])
        if session is not None:
            session.answer(message["m"])

    async def cancel(self, session: SharedSession, params: dict[str, Any]) -> None:
        await self.bus.broadcast({"k": "cancel", "s": session.id, "p": params})

    def _on_cancel(self, message: dict[str, Any]) -> None:
        session = self.store.peek(message["s"])
        if session is not None and isinstance(message.get("p"), dict):
            session.cancel(message["p"])

    async def set_level(self, session: SharedSession, level: str) -> None:
        await self._run(self._level, self.bus.tag, session.id, level)
        await self.bus.broadcast({"k": "level", "s": session.id, "l": level})

    def _on_level(self, message: dict[str, Any]) -> None:
        session = self.store.peek(message["s"])
        if session is not None:
            session.log_level = str(message["l"])

    def _on_ended(self, message: dict[str, Any]) -> None:
        for session_id in message.get("s") or ():
            self.store.remove(session_id)

    # ---- subscriptions -----------------------------------------------------------------------

    async def subscribe(self, session: SharedSession, uri: str) -> None:
        self.registry.resolve_uri(uri)  # NotFound before anything is stored
        done = await self._run(self._subscribe, self.bus.tag, session.id, uri, MAX_SUBSCRIPTIONS)
        if done == -1:
            raise InvalidParams("the session has ended; initialize a new one")
        if done == -2:
            raise InvalidParams(f"a session may subscribe to at most {MAX_SUBSCRIPTIONS} resources")
        await self._follow(uri)
        if done == 2:  # the first session to follow it: every instance follows it upstream
            await self.bus.broadcast({"k": "follow", "u": [uri]})

    async def unsubscribe(self, session: SharedSession, uri: str) -> None:
        if await self._run(self._unsubscribe, self.bus.tag, session.id, uri) == 2:
            await self.bus.broadcast({"k": "unfollow", "u": [uri]})
            await self._unfollow(uri)

    def _on_follow(self, message: dict[str, Any]) -> None:
        for uri in message.get("u") or ():
            self.bus.spawn(self._follow(uri))

    def _on_unfollow(self, message: dict[str, Any]) -> None:
        for uri in message.get("u") or ():
            self.bus.spawn(self._unfollow(uri))

    async def _follow(self, uri: str) -> None:
        if uri in self.followed:
            return
        self.followed.add(uri)
        try:
            await self.registry.subscribe(uri)
        except NotFound:
            self.followed.discard(uri)  # not served here (yet): nothing to hear from
        except CatalystError as exc:
            self.followed.discard(uri)
            log.warning("cannot follow %s upstream: %s", uri, exc.message)

    async def _unfollow(self, uri: str) -> None:
        if uri in self.followed:
            self.followed.discard(uri)
            await self.registry.unsubscribe(uri)

    # ---- Redis -------------------------------------------------------------------------------

    async def _run(self, script: AsyncScript, *args: Any) -> Any:
        """Run ``script`` with ``args`` (its ARGV); SharedStateUnavailable if Redis fails."""
        try:
            return await script(args=list(args))
        except RedisError as exc:
            raise self.bus.unavailable(exc) from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
