"""The REST connector's SSRF guard: which addresses a pack may reach, checked on every connect.

A pack's URL comes from its author, and its path, query and redirects partly from callers and
from the API itself; none of them may steer the gateway to its own cloud-metadata endpoint or,
unless the connection allows it, into the private network. So the guard resolves the host
itself, checks **every** address the name has, and hands the vetted address to the HTTP client,
which connects to it (not to the name again: no DNS-rebinding window) while TLS still checks
the certificate against the name and the Host header still carries it.

Refused always: link-local (169.254/16, fe80::/10) including cloud metadata (169.254.169.254,
fd00:ec2::254, Alibaba's 100.100.100.200), unspecified (0.0.0.0/8, ::), multicast, broadcast
and reserved ranges. Refused unless ``allow_private_network``: private (10/8, 172.16/12,
192.168/16, 100.64/10 CGNAT, fc00::/7) and loopback (127/8, ::1). IPv6 forms that embed an
IPv4 address (IPv4-mapped, IPv4-translated ::ffff:0:0:0/96, IPv4-compatible, NAT64 64:ff9b::/96
and the local-use 64:ff9b:1::/48, 6to4 2002::/16) are judged by the IPv4 address they lead to;
Teredo tunnels (2001::/32) are refused always, since the IPv4 host behind one cannot be vetted.

Redirects are followed by the connector, each target checked again on connect; :func:`redirected`
makes the next request: https is never downgraded, 303 (and 301/302 after a POST) becomes a GET
without a body, and another origin gets only an allow-list of harmless headers (Accept,
Accept-Language, User-Agent, and Content-Type when the body goes along; none holding a secret of
the request): no Authorization, Cookie or pack-defined header, and no api_key query parameter.

:class:`GuardedNetwork` is the REST connector's default exchange: one pooled
:class:`~catalyst_mcp.upstreams.httpclient.HttpClient` per origin (created lazily; redirects
may add origins), each connecting through the guard, one TLS context per connection, and the
response body refused as soon as it is known to exceed the request's ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import cast
from urllib.parse import SplitResult, urljoin, urlsplit

from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.connectors.exchange import RestRequest, RestResponse
from catalyst_mcp.packs.schema import RestConnection
from catalyst_mcp.upstreams.httpclient import HttpClient, HttpResponse

__all__ = [
    "REDIRECTS",
    "AddressRefused",
    "GuardedNetwork",
    "NetGuard",
    "Resolver",
    "classify",
    "redirected",
    "system_resolver",
]

log = logging.getLogger("catalyst.packs.rest")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> every address the name resolves to (an OSError if none)
Resolver = Callable[[str, int], Awaitable[list[str]]]

LINK_LOCAL = "link-local/cloud-metadata"
MAX_ORIGINS = 32  # pooled clients kept per connection (redirects may add origins)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# the only headers a redirect to another origin keeps (Content-Type only with a body)
CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-language", "user-agent", "content-type"})
_net = ipaddress.ip_network

# (network, kind): checked in order, the first match decides
_ALWAYS = [
    (_net("169.254.169.254/32"), LINK_LOCAL),
    (_net("100.100.100.200/32"), LINK_LOCAL),  # Alibaba Cloud metadata
    (_net("fd00:ec2::254/128"), LINK_LOCAL),  # AWS metadata over IPv6
    (_net("169.254.0.0/16"), LINK_LOCAL),
    (_net("fe80::/10"), LINK_LOCAL),
    (_net("0.0.0.0/8"), "unspecified"),
    (_net("::/128"), "unspecified"),
    (_net("224.0.0.0/4"), "multicast"),
    (_net("ff00::/8"), "multicast"),
    (_net("255.255.255.255/32"), "broadcast"),
    (_net("240.0.0.0/4"), "reserved"),
    (_net("192.0.0.0/24"), "reserved"),  # IETF protocol assignments
    (_net("192.0.2.0/24"), "reserved"),  # documentation
    (_net("198.51.100.0/24"), "reserved"),
    (_net("203.0.113.0/24"), "reserved"),
    (_net("198.18.0.0/15"), "reserved"),  # benchmarking
    (_net("2001:db8::/32"), "reserved"),
    (_net("2001::/32"), "reserved (Teredo tunnel)"),
    (_net("100::/64"), "reserved"),  # discard-only
    (_net("fec0::/10"), "reserved"),  # deprecated site-local
]
_PRIVATE = [
    (_net("127.0.0.0/8"), "loopback"),
    (_net("::1/128"), "loopback"),
    (_net("10.0.0.0/8"), "private"),
    (_net("172.16.0.0/12"), "private"),
    (_net("192.168.0.0/16"), "private"),
    (_net("100.64.0.0/10"), "private (CGNAT)"),
    (_net("fc00::/7"), "private"),
]
_NAT64 = (_net("64:ff9b::/96"), _net("64:ff9b:1::/48"))
_V4_COMPATIBLE = _net("::/96")
_V4_TRANSLATED = _net("::ffff:0:0:0/96")  # SIIT, RFC 2765


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to, if it embeds one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if (
        any(address in net for net in _NAT64)
        or address in _V4_TRANSLATED
        or (
            address in _V4_COMPATIBLE and int(address) > 1  # not :: or ::1
        )
    ):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress, allow_private: bool) -> str | None:
    """Why ``address`` is refused (e.g. 'loopback'), or None when it may be reached."""
    if address.version == 6:
        assert isinstance(address, ipaddress.IPv6Address)
        inner = _embedded_v4(address)
        if inner is not None:
            kind = classify(inner, allow_private)
            if kind is None and not allow_private and address in _NAT64[1]:
                # where the IPv4 address sits in a local-use /48 is the operator's choice
                return "private (local-use NAT64)"
            return kind
    for net, kind in _ALWAYS:
        if address in net:
            return kind
    if not allow_private:
        for net, kind in _PRIVATE:
            if address in net:
                return kind
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address of ``host`` (the system resolver, without blocking the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressRefused(Exception):
    """The guard refused to connect; the message says which address and why."""


class NetGuard:
    """Vets the addresses one connection may reach. ``resolver`` may be replaced (tests)."""

    def __init__(self, allow_private: bool, resolver: Resolver | None = None) -> None:
        self.allow_private = allow_private
        self.resolver: Resolver = resolver or system_resolver

    def check(self, host: str, address: str) -> None:
        """Raise :class:`AddressRefused` unless ``address`` (of ``host``) may be reached."""
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])  # drop an IPv6 zone id
        except ValueError as exc:
            raise AddressRefused(f"refused: {host} resolves to {address!r}, not an IP") from exc
        kind = classify(ip, self.allow_private)
        if kind is None:
            return
        what = f"{address} is" if host == address else f"{host} resolves to {address},"
        hint = ""
        if kind in ("loopback", "private", "private (CGNAT)"):
            hint = " (set allow_private_network: true on the connection to allow it)"
        article = "an" if kind[0] in "aeiou" else "a"
        raise AddressRefused(f"refused: {what} {article} {kind} address{hint}")

    async def vet(self, host: str, port: int) -> str:
        """The address to connect to for ``host``: every address it has must pass.

        A literal IP is checked as it is; a name is resolved once, here, and the client
        connects to the address returned (an OSError, as from connect, if it has none)."""
        try:
            ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            addresses = await self.resolver(host, port)
        else:
            addresses = [host]
        if not addresses:
            raise OSError(f"{host} has no address")
        for address in addresses:
            self.check(host, address)
        return addresses[0]


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
