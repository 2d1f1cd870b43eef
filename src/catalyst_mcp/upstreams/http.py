"""Streamable HTTP upstream (both eras) and the deprecated HTTP+SSE upstream (2024-11-05).

Streamable HTTP: every message is a POST; a request's answer is either one JSON document or an
SSE stream that carries related notifications and server→client requests before the response.
In the legacy era the server may mint an ``Mcp-Session-Id`` and offer a GET stream for
unrelated messages; in the modern era there is neither. HTTP+SSE: one long GET stream carries
everything the server sends; messages are POSTed to the URL its first ``endpoint`` event names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urljoin

import orjson

from catalyst_mcp.errors import UpstreamProtocolError, UpstreamUnavailable
from catalyst_mcp.net.httpclient import (
    ConnectionReset,
    HttpClient,
    HttpError,
    HttpResponse,
    split_url,
)
from catalyst_mcp.protocol.headers import encode_header_value
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.sse import SseDecoder, iter_events
from catalyst_mcp.upstreams.base import MessageHandler, StreamTransport, UpstreamTransport

__all__ = ["HttpStatusError", "SseTransport", "StreamableHttpTransport"]


log = logging.getLogger("catalyst.upstream")

JSON = "application/json"
ACCEPT_BOTH = "application/json, text/event-stream"
MAX_ERROR_BODY = 64 * 1024
# Methods an upstream may receive twice without harm: a request of these that got no answer
# (a stale pooled connection, a reset) is sent once more on a fresh connection. Anything else
# (tools/call above all) is never re-sent once written: the server may have acted on it.
SAFE_TO_REPEAT = frozenset(
    {
        "ping",
        "initialize",
        "server/discover",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "prompts/list",
        "resources/read",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "subscriptions/listen",
        "notifications/initialized",
        "notifications/cancelled",
    }
)


def safe_to_repeat(message: Message) -> bool:
    """Whether sending ``message`` twice is harmless (see :data:`SAFE_TO_REPEAT`)."""
    return message.get("method") in SAFE_TO_REPEAT


def unavailable(server: str, exc: HttpError, what: str | None = None) -> UpstreamUnavailable:
    """The client-facing error for a failed exchange about ``what`` (a method name)."""
    if not isinstance(exc, ConnectionReset):
        return UpstreamUnavailable(server, f"{server}: {exc}")
    subject = what or "the request"
    if exc.stage == ConnectionReset.BEFORE_SENDING:
        text = f"{server} reset the connection before {subject} was sent"
    elif exc.stage == ConnectionReset.BEFORE_ANSWERING:
        text = f"{server} reset the connection before answering {subject}"
    else:
        text = f"{server} reset the connection in the middle of its answer to {subject}"
    if exc.sent and what is not None and what not in SAFE_TO_REPEAT:
        text += " (not sent again: the server may have acted on it)"
    return UpstreamUnavailable(server, text)


class HttpStatusError(UpstreamProtocolError):
    """The upstream answered with an HTTP status that carries no JSON-RPC response."""

    def __init__(self, server: str, status: int, body: Any) -> None:
        super().__init__(server, f"{server} answered HTTP {status}")
        self.status = status
        self.body = body


class StreamableHttpTransport(UpstreamTransport):
    def __init__(self, server: str, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(server)
        self.url = url
        self.extra_headers = dict(headers or {})
        self.client = HttpClient(url)
        self.session_id: str | None = None
        self._get_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        return None  # connections open lazily; the handshake is the session's business

    def _headers(self, message: Message | None, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Content-Type": JSON, "Accept": ACCEPT_BOTH, **self.extra_headers}
        if self.protocol_version is not None:
            headers["MCP-Protocol-Version"] = self.protocol_version
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        if self.modern and message is not None and "method" in message:
            method = message["method"]
            headers["Mcp-Method"] = method
            params = message.get("params") or {}
            name = params.get("uri") if method == "resources/read" else params.get("name")
            if method in ("tools/call", "prompts/get", "resources/read") and isinstance(name, str):
                headers["Mcp-Name"] = encode_header_value(name)
        if extra:
            headers.update(extra)
        return headers

    async def _post(self, message: Message, extra: dict[str, str] | None = None) -> HttpResponse:
        body = orjson.dumps(message)
        headers = self._headers(message, extra)
        try:
            return await self.client.request(
                "POST", headers, body, retry_stale=safe_to_repeat(message)
            )
        except HttpError as exc:
            raise unavailable(self.server, exc, message.get("method")) from exc

    async def request(
        self,
        message: Message,
        on_related: MessageHandler | None = None,
        headers: dict[str, str] | None = None,
    ) -> Message:
        response = await self._post(message, headers)
        try:
            if message.get("method") == "initialize" and "mcp-session-id" in response.headers:
                self.session_id = response.headers["mcp-session-id"]
            return await self._answer(message, response, on_related)
        except HttpError as exc:
            raise unavailable(self.server, exc, message.get("method")) from exc
        finally:
            response.aclose_nowait()

    async def _answer(
        self, message: Message, response: HttpResponse, on_related: MessageHandler | None
    ) -> Message:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if response.status == 200 and ctype == "text/event-stream":
            decoder = SseDecoder()
            async for chunk in response.iter_chunks():
                for event in decoder.feed(chunk):
                    if event.event != "message" or not event.data:
                        continue
                    incoming = self._decode(event.data.encode())
                    if "method" not in incoming and incoming.get("id") == message["id"]:
                        return self._checked(incoming)
                    await (on_related or self.on_message)(incoming)
            raise UpstreamProtocolError(
                self.server, f"{self.server} closed the stream before answering"
            )
        body = await response.read()
        if response.status == 404 and self.session_id is not None:
            self.session_id = None
            raise UpstreamUnavailable(self.server, f"{self.server} ended the session")
        if ctype == JSON and body:
            answer = self._decode(body)
            is_response = "method" not in answer and ("result" in answer or "error" in answer)
            if response.status != 200:
                raise HttpStatusError(self.server, response.status, answer)
            if is_response:
                return self._checked(answer)
            raise UpstreamProtocolError(self.server, f"{self.server} answered a non-response")
        if response.status == 200:
            raise UpstreamProtocolError(
                self.server, f"{self.server} answered {ctype or 'no content type'}, not JSON"
            )
        raise HttpStatusError(self.server, response.status, body[:MAX_ERROR_BODY])

    def _checked(self, answer: Message) -> Message:
        if "result" in answer and not isinstance(answer["result"], dict):
            raise UpstreamProtocolError(self.server, f"{self.server} answered a non-object result")
        return answer

    def _decode(self, data: bytes) -> Message:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(self.server, f"{self.server} sent invalid JSON") from exc
        if not isinstance(message, dict):
            raise UpstreamProtocolError(self.server, f"{self.server} sent a non-object message")
        return message

    async def send(self, message: Message) -> None:
        response = await self._post(message)
        try:
            await response.read()
        except HttpError as exc:
            raise unavailable(self.server, exc, message.get("method")) from exc
        finally:
            response.aclose_nowait()
        if response.status >= 400:
            log.warning("%s: HTTP %s for a %s", self.server, response.status, message.get("method"))

    def start_listening(self) -> None:
        """Legacy era: open the GET stream for messages unrelated to any request."""
        if self._get_task is None:
            self._get_task = asyncio.create_task(self._listen(), name=f"{self.server}-get")

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            headers = {k: v for k, v in self._headers(None, None).items() if k != "Content-Type"}
            headers["Accept"] = "text/event-stream"
            try:
                response = await self.client.request("GET", headers)
            except HttpError as exc:
                self._stream_failed(exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            try:
                if response.status != 200:
                    return  # 405: the server offers no GET stream
                delay = 0.5
                async for event in iter_events(response.iter_chunks()):
                    if event.event == "message" and event.data:
                        with contextlib.suppress(UpstreamProtocolError):
                            await self.on_message(self._decode(event.data.encode()))
            except HttpError as exc:
                self._stream_failed(exc, delay)
            finally:
                response.aclose_nowait()
            await asyncio.sleep(delay)

    def _stream_failed(self, exc: HttpError, delay: float) -> None:
        if isinstance(exc, ConnectionReset):  # worth a line: servers rarely do it by accident
            log.warning(
                "%s reset the connection of its GET stream; reopening it in %.1fs",
                self.server,
                delay,
            )
        else:
            log.debug("%s: GET stream failed: %s", self.server, exc)

    def abort(self, reason: str) -> None:
        # The server stopped answering: closing must not wait on a DELETE it will not answer
        # either. (Requests in flight are exchanges of their own; each ends by its time limit.)
        self.session_id = None

    async def close(self) -> None:
        if self._get_task is not None:
            self._get_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._get_task
            self._get_task = None
        if self.session_id is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    response = await self.client.request("DELETE", self._headers(None, None))
                    try:
                        await response.read()
                    finally:
                        response.aclose_nowait()
            self.session_id = None
        await self.client.aclose()

    def describe(self) -> dict[str, Any]:
        target = split_url(self.url)
        return {"transport": "streamable-http", "url": f"{target.scheme}://{target.host_header}"}


class SseTransport(StreamTransport):
    """The deprecated HTTP+SSE transport: GET stream in, POSTs out."""

    def __init__(self, server: str, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(server)
        self.url = url
        self.extra_headers = dict(headers or {})
        self.client = HttpClient(url)
        self.post_client: HttpClient | None = None
        self.post_path = ""
        self._stream: HttpResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        headers = {"Accept": "text/event-stream", **self.extra_headers}
        try:
            self._stream = await self.client.request("GET", headers)
        except HttpError as exc:
            raise unavailable(self.server, exc, "the event stream request") from exc
        if self._stream.status != 200:
            self._stream.aclose_nowait()
            raise UpstreamUnavailable(
                self.server, f"{self.server}: SSE endpoint answered HTTP {self._stream.status}"
            )
        endpoint: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(endpoint), name=f"{self.server}-sse")
        try:
            async with asyncio.timeout(30):
                post_url = urljoin(self.url, await endpoint)
        except TimeoutError as exc:
            await self.close()
            raise UpstreamUnavailable(self.server, f"{self.server} sent no endpoint event") from exc
        target = split_url(post_url)
        mine = split_url(self.url)
        same = (target.scheme, target.host, target.port) == (mine.scheme, mine.host, mine.port)
        if not same:
            await self.close()
            raise UpstreamProtocolError(self.server, f"{self.server} named a foreign POST endpoint")
        self.post_client = HttpClient(post_url)
        self.post_path = target.path

    async def _read(self, endpoint: asyncio.Future[str]) -> None:
        assert self._stream is not None
        reason = "closed its event stream"
        try:
            async for event in iter_events(self._stream.iter_chunks()):
                if event.event == "endpoint":
                    if not endpoint.done():
                        endpoint.set_result(event.data.strip())
                    continue
                if event.event != "message" or not event.data:
                    continue
                try:
                    message = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    log.warning("%s: ignoring non-JSON event", self.server)
                    continue
                if isinstance(message, dict):
                    await self.received(message)
        except ConnectionReset:
            reason = "reset the connection of its event stream"
        except HttpError as exc:
            reason = str(exc)
        self._pending.fail_all(f"{self.server} {reason}; it will be reconnected")
        if not endpoint.done():
            endpoint.set_exception(UpstreamUnavailable(self.server, f"{self.server} {reason}"))
        self.on_closed(f"{self.server} {reason}")

    async def _write(self, message: Message) -> None:
        if self.post_client is None:
            raise UpstreamUnavailable(self.server, f"{self.server} is not connected")
        headers = {"Content-Type": JSON, **self.extra_headers}
        try:
            response = await self.post_client.request(
                "POST",
                headers,
                orjson.dumps(message),
                path=self.post_path,
                retry_stale=safe_to_repeat(message),
            )
            try:
                await response.read()
            finally:
                response.aclose_nowait()
        except HttpError as exc:
            raise unavailable(self.server, exc, message.get("method")) from exc
        if response.status >= 400:
            raise HttpStatusError(self.server, response.status, b"")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._stream is not None:
            self._stream.aclose_nowait()
            self._stream = None
        await self.client.aclose()
        if self.post_client is not None:
            await self.post_client.aclose()
        self._pending.fail_all(f"{self.server} was stopped")

    def describe(self) -> dict[str, Any]:
        target = split_url(self.url)
        return {"transport": "sse", "url": f"{target.scheme}://{target.host_header}"}
