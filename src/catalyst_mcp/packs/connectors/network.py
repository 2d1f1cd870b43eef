"""The REST connector's network: one pooled HTTP client per origin, through the SSRF guard.

Redirects are followed by the connector, each target checked again on connect; :func:`redirected`
makes the next request: https is never downgraded, 303 (and 301/302 after a POST) becomes a GET
without a body, and another origin gets only an allow-list of harmless headers (Accept,
Accept-Language, User-Agent, and Content-Type when the body goes along; none holding a secret of
the request): no Authorization, Cookie or pack-defined header, and no api_key query parameter.

:class:`GuardedNetwork` is the REST connector's default exchange: one pooled
:class:`~catalyst_mcp.net.httpclient.HttpClient` per origin (created lazily; redirects
may add origins), each connecting through the guard, one TLS context per connection, and the
response body refused as soon as it is known to exceed the request's ``max_bytes``.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import cast
from urllib.parse import SplitResult, urljoin, urlsplit

from catalyst_mcp.errors import PackError
from catalyst_mcp.net.httpclient import HttpClient, HttpResponse
from catalyst_mcp.net.netguard import AddressRefused, NetGuard
from catalyst_mcp.packs.connectors.exchange import RestRequest, RestResponse
from catalyst_mcp.packs.schema import RestConnection

__all__ = ["REDIRECTS", "GuardedNetwork", "redirected"]

log = logging.getLogger("catalyst.packs.rest")

MAX_ORIGINS = 32  # pooled clients kept per connection (redirects may add origins)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# the only headers a redirect to another origin keeps (Content-Type only with a body)
CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-language", "user-agent", "content-type"})


def redirected(
    request: RestRequest, status: int, location: str, query_key: str | None = None
) -> RestRequest:
    """The request a redirect (``status``, ``location``) asks for; ``query_key`` names the
    query parameter carrying an api key (URL-encoded). :class:`AddressRefused` if refused."""
    old = urlsplit(request.url)
    url = urljoin(request.url, location.strip()).partition("#")[0]
    try:
        new = urlsplit(url)
        origins = (old.scheme, old.hostname, old.port), (new.scheme, new.hostname, new.port)
    except ValueError as exc:
        raise AddressRefused("refused a redirect to an invalid URL") from exc
    if new.scheme not in ("http", "https") or not new.hostname:
        raise AddressRefused("refused a redirect to a non-http(s) URL")
    if old.scheme == "https" and new.scheme == "http":
        raise AddressRefused(f"refused a redirect from https to http ({new.hostname})")
    method, body, headers = request.method, request.body, dict(request.headers)
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", b""
        for name in [n for n in headers if n.lower() == "content-type"]:
            del headers[name]
    if origins[0] != origins[1]:
        secrets = request.secrets
        headers = {
            name: value
            for name, value in headers.items()
            if name.lower() in CROSS_ORIGIN_HEADERS
            and (body or name.lower() != "content-type")
            and not any(s in value for s in secrets)
        }
        if query_key is not None and new.query:
            kept = [p for p in new.query.split("&") if p.partition("=")[0] != query_key]
            url = new._replace(query="&".join(kept)).geturl()
    elif query_key is not None and query_key not in _query_keys(new.query):
        # the same API: its api_key query parameter goes along to the new URL
        carried = [p for p in old.query.split("&") if p.partition("=")[0] == query_key]
        if carried:
            url = new._replace(query="&".join(filter(None, [new.query, *carried]))).geturl()
    return RestRequest(
        method, url, headers, body, request.secrets, request.max_bytes, request.retry_safe
    )


@functools.lru_cache(maxsize=256)
def _origin(scheme: str, netloc: str) -> tuple[str, str, int | None]:
    """The pooled client's key for a URL: (scheme, host, port), from its netloc (without
    userinfo). Parsed once per origin; an invalid port raises ValueError (never cached), as
    ``SplitResult.port`` does."""
    parts = SplitResult(scheme, netloc, "", "", "")
    return scheme, parts.hostname or "", parts.port


def _query_keys(query: str) -> set[str]:
    return {p.partition("=")[0] for p in query.split("&")} if query else set()


class GuardedNetwork:
    """The default exchange of one REST connection: the network, through its guard."""

    def __init__(self, where: str, config: RestConnection) -> None:
        self.where = where  # "connection 'name'", for messages
        self.config = config
        self.guard = NetGuard(config.allow_private_network)
        self.clients: dict[tuple[str, str, int | None], HttpClient] = {}
        self._ssl: ssl.SSLContext | None = None

    async def __call__(self, request: RestRequest) -> RestResponse:
        parts = urlsplit(request.url)
        key = _origin(parts.scheme, parts.netloc.rpartition("@")[2])  # no userinfo is kept
        client = self.clients.get(key)
        if client is None:
            client = await self._client(key, parts.netloc)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        response = await client.request(
            request.method, request.headers, request.body, path=path, retry_stale=request.retry_safe
        )
        try:
            if request.method == "HEAD":  # no body follows, whatever Content-Length says
                response.aclose_nowait()
                return RestResponse(response.status, response.headers, b"")
            if self._sized(response, request.max_bytes):
                body = await response.read()
            else:
                body = await self._read_stream(response, request.max_bytes)
        except BaseException:
            response.aclose_nowait()
            raise
        return RestResponse(response.status, response.headers, body)

    def _sized(self, response: HttpResponse, limit: int) -> bool:
        """Whether the body's length is declared; refused at once if it exceeds ``limit``."""
        length = response.headers.get("content-length", "")
        if not length.isdigit():
            return False
        if int(length) > limit:
            raise PackError(f"{self.where}: response larger than {limit} bytes")
        return True

    async def _read_stream(self, response: HttpResponse, limit: int) -> bytes:
        """A body of undeclared length, refused as soon as it exceeds ``limit`` bytes."""
        chunks, size = [], 0
        stream = cast("AsyncGenerator[bytes, None]", response.iter_chunks())
        async with aclosing(stream):
            async for chunk in stream:
                size += len(chunk)
                if size > limit:
                    raise PackError(f"{self.where}: response larger than {limit} bytes")
                chunks.append(chunk)
        return b"".join(chunks)

    async def _client(self, key: tuple[str, str, int | None], netloc: str) -> HttpClient:
        if len(self.clients) >= MAX_ORIGINS:
            await self.clients.pop(next(iter(self.clients))).aclose()
        scheme = key[0]
        client = HttpClient(
            f"{scheme}://{netloc.rpartition('@')[2]}/",
            max_connections=self.config.max_connections,
            connect_timeout=self.config.connect_timeout_seconds,
            ssl_context=self.ssl_context() if scheme == "https" else None,
            resolve=self.guard.vet,
        )
        self.clients[key] = client
        return client

    def ssl_context(self) -> ssl.SSLContext:
        """The connection's TLS context, built once (on its first https request)."""
        if self._ssl is not None:
            return self._ssl
        tls = self.config.tls
        try:
            context = ssl.create_default_context()
            if tls.ca_file:
                context.load_verify_locations(cafile=tls.ca_file)
            if tls.client_cert:
                context.load_cert_chain(tls.client_cert, tls.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise PackError(
                f"{self.where}: cannot load the TLS files (ca_file, client_cert, client_key): "
                f"{exc.strerror or exc}"
            ) from exc
        if not tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            log.warning("%s: TLS certificates are not verified (tls.verify is false)", self.where)
        self._ssl = context
        return context

    async def aclose(self) -> None:
        clients, self.clients = self.clients, {}
        for client in clients.values():
            await client.aclose()
