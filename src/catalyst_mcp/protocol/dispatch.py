"""From one decoded client message to its response, for either era, on any transport.

Transports call :meth:`Dispatcher.modern` or :meth:`Dispatcher.legacy` once they know the era
(HTTP headers, ``initialize``, or the ``_meta`` of the message) and turn the returned response
into bytes their way. ``emit`` sends the client a message related to the request in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from catalyst_mcp.context import ANONYMOUS, CallContext, Emitter, Identity
from catalyst_mcp.errors import (
    INTERNAL_ERROR,
    RESOURCE_NOT_FOUND,
    CatalystError,
    HeaderMismatch,
    InvalidParams,
    InvalidRequest,
    MalformedMeta,
    ResourceNotFound,
    UnsupportedVersion,
    UpstreamRejected,
)
from catalyst_mcp.observability.observer import Observer, outcome_of
from catalyst_mcp.protocol.hub import MAX_SUBSCRIPTIONS, NotificationHub
from catalyst_mcp.protocol.jsonrpc import Message, error_response, result_response
from catalyst_mcp.protocol.legacy import (
    LegacySession,
    SessionStore,
    SharedSession,
    negotiate_version,
)
from catalyst_mcp.protocol.server import McpServer, rest_context
from catalyst_mcp.protocol.versions import (
    CLIENT_CAPS_KEY,
    CLIENT_INFO_KEY,
    LOG_LEVEL_KEY,
    LOG_LEVELS,
    MODERN_VERSIONS,
    PROTOCOL_VERSION_KEY,
    SUPPORTED_VERSIONS,
)

__all__ = ["Dispatcher", "ModernMeta", "error_for", "modern_meta"]

log = logging.getLogger("catalyst.protocol")

ModernMeta = dict[str, Any]


def modern_meta(message: Message) -> ModernMeta | None:
    """The request's ``_meta`` if it carries a modern protocol version, else None."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta:
        return meta
    return None


def check_modern_meta(meta: Any, header_version: str | None = None) -> tuple[str, dict[str, Any]]:
    """Validate the required per-request keys; return (version, client capabilities).

    Order matters to clients: a missing ``_meta`` key is -32602; then, on HTTP, an
    ``MCP-Protocol-Version`` header that disagrees with ``_meta`` is -32020; only then is an
    unsupported version -32022.
    """
    if not isinstance(meta, dict):
        raise MalformedMeta("Invalid params: a modern request needs params._meta")
    version = meta.get(PROTOCOL_VERSION_KEY)
    if not isinstance(version, str):
        raise MalformedMeta(f"Invalid params: _meta needs {PROTOCOL_VERSION_KEY!r}")
    capabilities = meta.get(CLIENT_CAPS_KEY)
    if not isinstance(capabilities, dict):
        raise MalformedMeta(f"Invalid params: _meta needs {CLIENT_CAPS_KEY!r} (an object)")
    if header_version is not None and header_version != version:
        raise HeaderMismatch(
            "Header mismatch: MCP-Protocol-Version header does not match _meta protocolVersion"
        )
    if version not in MODERN_VERSIONS:
        raise UnsupportedVersion(
            "Unsupported protocol version",
            data={"supported": list(SUPPORTED_VERSIONS), "requested": version},
        )
    level = meta.get(LOG_LEVEL_KEY)
    if level is not None and level not in LOG_LEVELS:
        raise InvalidParams(f"Invalid log level {level!r}")
    return version, capabilities


def error_for(exc: CatalystError, era: str) -> dict[str, Any]:
    """The JSON-RPC error object for ``exc``, with the code the caller's era expects.

    An upstream's error is relayed with its own code, except codes that would mean something
    else coming from the gateway: header and version errors (-32020, -32022) and undefined codes
    of the spec's reserved range are about the upstream hop, not the client's request, so they
    become -32603; -32021 (a capability the client lacks) is relayed, since modern upstreams see
    the client's own capabilities; and the legacy resource-not-found code -32002 becomes -32602
    for modern clients.
    """
    error = exc.to_jsonrpc()
    code = error["code"]
    if isinstance(exc, UpstreamRejected) and -32099 <= code <= -32020 and code != -32021:
        return {"code": INTERNAL_ERROR, "message": f"{exc.server}: {exc.message}"}
    if era == "modern" and (isinstance(exc, ResourceNotFound) or code == RESOURCE_NOT_FOUND):
        error["code"] = InvalidParams.code
    return error


class Dispatcher:
    def __init__(self, server: McpServer, sessions: SessionStore, hub: NotificationHub) -> None:
        self.server = server
        self.sessions = sessions
        self.hub = hub
        sessions.on_remove = self._release
        self._releasing: set[asyncio.Task[None]] = set()
        # metrics, traces and the log context of each request (the gateway sets its own)
        self.observer = Observer()
        # told the key of every session that ends: a legacy session's id when it is removed, a
        # stdio/WebSocket connection's id when it closes (per-session servers stop its process)
        self.session_listeners: list[Callable[[str], None]] = []

    async def _serve(
        self,
        message: Message,
        ctx: CallContext,
        transport: str,
        headers: dict[bytes, bytes] | None,
    ) -> Message | None:
        request_id = message["id"]
        params = message.get("params") or {}
        watch = self.observer.begin(ctx, params, transport, headers)  # metrics, span, log context
        try:
            try:
                result = await self.server.handle(message["method"], params, ctx)
            except CatalystError as exc:
                watch.failed(exc)
                return {"jsonrpc": "2.0", "id": request_id, "error": error_for(exc, ctx.era)}
            except asyncio.CancelledError:
                watch.cancelled()
                raise
            except Exception as exc:
                watch.failed(exc)
                log.exception("internal error serving %s", message["method"])
                return error_response(request_id, CatalystError("Internal error"))
            watch.succeeded(result)
            return result_response(request_id, result)
        finally:
            watch.end()

    # ---- the REST API ------------------------------------------------------------------------

    async def direct(
        self,
        method: str,
        params: dict[str, Any],
        identity: Identity,
        headers: dict[bytes, bytes] | None = None,
        *,
        transport: str = "rest",
    ) -> dict[str, Any]:
        """Serve a request of the REST API for tools (as :meth:`McpServer.serve`), watched as
        every MCP request is (metrics, a span joining a ``traceparent`` in ``headers``, the log
        context) with transport ``rest``. Failures are raised, for the API to answer. Workflow
        steps come in here too, as ``transport="workflow"``."""
        ctx = rest_context(method, identity)
        watch = self.observer.begin(ctx, params, transport, headers)
        try:
            try:
                result = await self.server.handle(method, params, ctx)
            except asyncio.CancelledError:
                watch.cancelled()
                raise
            except Exception as exc:
                watch.failed(exc)
                raise
            watch.succeeded(result)
            return result
        finally:
            watch.end()

    # ---- modern --------------------------------------------------------------------------------

    async def modern(
        self,
        message: Message,
        meta: ModernMeta,
        emit: Emitter,
        identity: Identity = ANONYMOUS,
        *,
        transport: str = "streamable-http",
        headers: dict[bytes, bytes] | None = None,
        connection_id: str | None = None,
    ) -> Message | None:
        """Serve a modern request (``meta`` already checked by :func:`check_modern_meta`) for
        the caller the transport authenticated. ``transport`` names the transport (for
        metrics and traces); ``headers`` are the HTTP request's (a ``traceparent``);
        ``connection_id`` names the stdio or WebSocket connection it came on (none on HTTP)."""
        if "id" not in message:
            return None  # notifications/cancelled on stdio is handled by the transport
        info = meta.get(CLIENT_INFO_KEY)
        ctx = CallContext(
            era="modern",
            protocol_version=meta[PROTOCOL_VERSION_KEY],
            method=message["method"],
            client_capabilities=meta[CLIENT_CAPS_KEY],
            client_info=info if isinstance(info, dict) else None,
            request_id=message["id"],
            progress_token=meta.get("progressToken"),
            log_level=meta.get(LOG_LEVEL_KEY),
            emit=emit,
            identity=identity,
            connection_id=connection_id,
        )
        return await self._serve(message, ctx, transport, headers)

    # ---- legacy --------------------------------------------------------------------------------

    def initialize(
        self,
        message: Message,
        identity: Identity = ANONYMOUS,
        *,
        transport: str = "streamable-http",
    ) -> tuple[LegacySession, Message]:
        """Create a session of ``identity`` for an ``initialize`` request and answer it."""
        try:
            version, params = self.negotiate(message)
            session = self.sessions.create(version, params, identity)
        except CatalystError as exc:
            self.observer.count("initialize", "legacy", transport, outcome_of(exc))
            raise
        return session, self.initialized(message, version, transport)

    @staticmethod
    def negotiate(message: Message) -> tuple[str, dict[str, Any]]:
        """The version to answer an ``initialize`` with, and its params (InvalidRequest when
        it has none)."""
        params = message.get("params")
        if not isinstance(params, dict):
            raise InvalidRequest("Invalid Request: initialize needs params")
        return negotiate_version(params.get("protocolVersion")), params

    def initialized(self, message: Message, version: str, transport: str) -> Message:
        """The answer to an ``initialize`` whose session was made (counted in the metrics)."""
        self.observer.count("initialize", "legacy", transport, "ok")
        return result_response(message["id"], self.server.initialize_result(version))

    async def legacy(
        self,
        session: LegacySession,
        message: Message,
        emit: Emitter,
        identity: Identity | None = None,
        *,
        transport: str = "streamable-http",
        headers: dict[bytes, bytes] | None = None,
    ) -> Message | None:
        """Serve one message of a legacy session; None when there is nothing to send back.
        ``identity``: who sent this request (authorized on its own: roles and key scopes may
        have changed since the session was opened); default: whoever opened it.
        ``transport`` and ``headers`` as for :meth:`modern`."""
        caller = session.identity if identity is None else identity
        if "method" not in message:
            if not session.answer(message) and isinstance(session, SharedSession):
                await session.relay.answer(session, message)  # asked by another instance
            return None
        method = message["method"]
        params = message.get("params") or {}
        if "id" not in message:
            if (
                method == "notifications/cancelled"
                and not session.cancel(params)
                and isinstance(session, SharedSession)
            ):
                await session.relay.cancel(session, params)  # in flight on another instance
            return None
        request_id = message["id"]
        try:
            if method == "ping":
                self.observer.count(method, "legacy", transport, "ok")
                return result_response(request_id, {})
            if method == "logging/setLevel":
                answer = result_response(request_id, session.set_level(params))
                if isinstance(session, SharedSession):
                    await session.relay.set_level(session, params["level"])
                self.observer.count(method, "legacy", transport, "ok")
                return answer
            if method in ("resources/subscribe", "resources/unsubscribe"):
                done = await self._subscription(session, method, params, caller)
                self.observer.count(method, "legacy", transport, "ok")
                return result_response(request_id, done)
            if method == "initialize":
                raise InvalidRequest("Invalid Request: the session is already initialized")
        except CatalystError as exc:
            self.observer.count(method, "legacy", transport, outcome_of(exc))
            return {"jsonrpc": "2.0", "id": request_id, "error": error_for(exc, "legacy")}
        meta = params.get("_meta")
        ctx = CallContext(
            era="legacy",
            protocol_version=session.protocol_version,
            method=method,
            client_capabilities=session.client_capabilities,
            client_info=session.client_info,
            request_id=request_id,
            progress_token=meta.get("progressToken") if isinstance(meta, dict) else None,
            log_level=session.log_level,
            emit=emit,
            ask=partial(session.ask, emit),
            session_id=session.id,
            identity=caller,
        )
        task = asyncio.current_task()
        if task is not None:
            session.inflight[request_id] = task
        try:
            return await self._serve(message, ctx, transport, headers)
        except asyncio.CancelledError:
            if task is None or not session.cancelled(request_id):
                raise
            task.uncancel()
            return None  # cancelled by notifications/cancelled: no response is sent
        finally:
            session.inflight.pop(request_id, None)

    async def _subscription(
        self, session: LegacySession, method: str, params: dict[str, Any], caller: Identity
    ) -> dict[str, Any]:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise InvalidParams(f'{method} needs a string "uri"')
        if isinstance(session, SharedSession):  # held in Redis, for every instance
            if method == "resources/subscribe":
                self.server.check_subscribe(caller, uri)
                await session.relay.subscribe(session, uri)
            else:
                await session.relay.unsubscribe(session, uri)
            return {}
        if method == "resources/subscribe":
            self.server.check_subscribe(caller, uri)
            if len(session.subscriptions) >= MAX_SUBSCRIPTIONS and uri not in session.subscriptions:
                raise InvalidParams(
                    f"a session may subscribe to at most {MAX_SUBSCRIPTIONS} resources"
                )
            if uri not in session.subscriptions:
                await self.server.registry.subscribe(uri)
                session.subscribe(uri)
        elif uri in session.subscriptions:
            session.unsubscribe(uri)
            await self.server.registry.unsubscribe(uri)
        return {}

    def close_session(self, session_id: str) -> bool:
        return self.sessions.remove(session_id)

    def session_ended(self, key: str) -> None:
        """Tell the session listeners that the session or connection ``key`` is over."""
        for listener in self.session_listeners:
            try:
                listener(key)
            except Exception:  # one listener's bug must not keep the others uninformed
                log.exception("a session listener failed")

    def _release(self, session: LegacySession) -> None:
        """A session ended: drop its resource subscriptions upstream."""
        self.session_ended(session.id)
        uris = session.release_subscriptions()
        if not uris:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # shutting down outside the loop: nothing left to tell
            return
        for uri in uris:
            task = loop.create_task(self.server.registry.unsubscribe(uri))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)
