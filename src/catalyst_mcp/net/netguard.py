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

The REST connector's network (``packs/connectors/network.py``) connects through it; so may
anything else that dials an address a user chose.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

__all__ = ["AddressRefused", "NetGuard", "Resolver", "classify", "system_resolver"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> every address the name resolves to (an OSError if none)
Resolver = Callable[[str, int], Awaitable[list[str]]]

LINK_LOCAL = "link-local/cloud-metadata"
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
