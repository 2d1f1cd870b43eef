"""The SSRF guard: a table of addresses, with and without allow_private_network; names that
resolve to forbidden addresses (through a replaced resolver); literal IPs."""

from __future__ import annotations

import ipaddress

import pytest

from catalyst_mcp.net.netguard import AddressRefused, NetGuard, Resolver, classify

# address -> (kind when private networks are refused, kind when they are allowed)
TABLE: dict[str, tuple[str | None, str | None]] = {
    # public
    "93.184.216.34": (None, None),
    "8.8.8.8": (None, None),
    "2606:4700:4700::1111": (None, None),
    "::ffff:93.184.216.34": (None, None),
    # cloud metadata and link-local: refused always
    "169.254.169.254": ("link-local/cloud-metadata", "link-local/cloud-metadata"),
    "169.254.0.1": ("link-local/cloud-metadata", "link-local/cloud-metadata"),
    "100.100.100.200": ("link-local/cloud-metadata", "link-local/cloud-metadata"),
    "fd00:ec2::254": ("link-local/cloud-metadata", "link-local/cloud-metadata"),
    "fe80::1": ("link-local/cloud-metadata", "link-local/cloud-metadata"),
    "::ffff:169.254.169.254": ("link-local/cloud-metadata", "link-local/cloud-metadata"),
    "64:ff9b::a9fe:a9fe": ("link-local/cloud-metadata", "link-local/cloud-metadata"),  # NAT64
    "2002:a9fe:a9fe::1": ("link-local/cloud-metadata", "link-local/cloud-metadata"),  # 6to4
    "::169.254.169.254": ("link-local/cloud-metadata", "link-local/cloud-metadata"),
    "::ffff:0:a9fe:a9fe": ("link-local/cloud-metadata", "link-local/cloud-metadata"),  # SIIT
    "64:ff9b:1::a9fe:a9fe": ("link-local/cloud-metadata", "link-local/cloud-metadata"),
    "::ffff:0:7f00:1": ("loopback", None),  # IPv4-translated 127.0.0.1
    "64:ff9b:1::a00:1": ("private", None),  # local-use NAT64 of 10.0.0.1
    "64:ff9b:1::5db8:d822": ("private (local-use NAT64)", None),
    "2001:0:4136:e378:8000:63bf:3fff:fdd2": (  # Teredo: the host behind it cannot be vetted
        "reserved (Teredo tunnel)",
        "reserved (Teredo tunnel)",
    ),
    # unspecified, multicast, broadcast, reserved: refused always
    "0.0.0.0": ("unspecified", "unspecified"),
    "0.1.2.3": ("unspecified", "unspecified"),
    "::": ("unspecified", "unspecified"),
    "::ffff:0.0.0.0": ("unspecified", "unspecified"),
    "224.0.0.1": ("multicast", "multicast"),
    "239.255.255.250": ("multicast", "multicast"),
    "ff02::1": ("multicast", "multicast"),
    "255.255.255.255": ("broadcast", "broadcast"),
    "240.0.0.1": ("reserved", "reserved"),
    "192.0.2.1": ("reserved", "reserved"),
    "2001:db8::1": ("reserved", "reserved"),
    # loopback and private: refused unless allowed
    "127.0.0.1": ("loopback", None),
    "127.1.2.3": ("loopback", None),
    "::1": ("loopback", None),
    "::ffff:127.0.0.1": ("loopback", None),
    "10.1.2.3": ("private", None),
    "172.16.0.1": ("private", None),
    "172.31.255.255": ("private", None),
    "192.168.1.1": ("private", None),
    "100.64.0.1": ("private (CGNAT)", None),
    "fc00::1": ("private", None),
    "fd12:3456::1": ("private", None),
    "::ffff:10.0.0.1": ("private", None),
    # just outside private ranges
    "172.32.0.1": (None, None),
    "100.128.0.1": (None, None),
    "11.0.0.1": (None, None),
}


@pytest.mark.parametrize(("address", "kinds"), TABLE.items(), ids=list(TABLE))
def test_address_table(address: str, kinds: tuple[str | None, str | None]) -> None:
    ip = ipaddress.ip_address(address)
    assert classify(ip, allow_private=False) == kinds[0]
    assert classify(ip, allow_private=True) == kinds[1]


def resolver_for(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"{host}: unknown host")
        return table[host]

    return resolve


async def test_a_name_resolving_to_metadata_is_refused() -> None:
    guard = NetGuard(True, resolver_for({"api.internal": ["169.254.169.254"]}))
    with pytest.raises(AddressRefused) as info:
        await guard.vet("api.internal", 443)
    assert str(info.value) == (
        "refused: api.internal resolves to 169.254.169.254, a link-local/cloud-metadata address"
    )


async def test_every_address_of_a_name_is_checked() -> None:
    guard = NetGuard(False, resolver_for({"mixed.example": ["93.184.216.34", "10.0.0.5"]}))
    with pytest.raises(AddressRefused, match=r"10\.0\.0\.5, a private address .*allow_private"):
        await guard.vet("mixed.example", 443)


async def test_a_public_name_returns_its_first_address() -> None:
    guard = NetGuard(False, resolver_for({"api.example": ["93.184.216.34", "93.184.216.35"]}))
    assert await guard.vet("api.example", 443) == "93.184.216.34"


async def test_loopback_name_allowed_only_with_the_flag() -> None:
    table = {"public-looking.example": ["127.0.0.1"]}
    with pytest.raises(AddressRefused, match="loopback"):
        await NetGuard(False, resolver_for(table)).vet("public-looking.example", 80)
    assert await NetGuard(True, resolver_for(table)).vet("public-looking.example", 80) == (
        "127.0.0.1"
    )


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("169.254.169.254", "refused: 169.254.169.254 is a link-local/cloud-metadata address"),
        ("::ffff:127.0.0.1", "refused: ::ffff:127.0.0.1 is a loopback address"),
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
    ],
)
async def test_literal_ips_are_checked_without_resolving(host: str, message: str) -> None:
    guard = NetGuard(False, resolver_for({}))
    with pytest.raises(AddressRefused, match=message.replace(".", r"\.")):
        await guard.vet(host, 80)


async def test_a_name_without_addresses_is_an_os_error() -> None:
    guard = NetGuard(False, resolver_for({"empty.example": []}))
    with pytest.raises(OSError, match="no address"):
        await guard.vet("empty.example", 80)


@pytest.mark.network
async def test_the_system_resolver_checks_localhost() -> None:
    with pytest.raises(AddressRefused, match=r"localhost resolves to .*loopback"):
        await NetGuard(False).vet("localhost", 80)
    assert await NetGuard(True).vet("localhost", 80) in ("127.0.0.1", "::1")
