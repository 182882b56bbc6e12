"""Which IP addresses outbound requests may reach (the address rules of the SSRF guard).

The ranges, each with its source, are listed in the README ("Addresses the guard refuses").
The platform addresses are refused whatever the allowlist says; the rest unless it opens them.
An IPv4-mapped IPv6 address is judged by the IPv4 address it carries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges ``ipaddress`` counts as global although they reach something else than the public internet.
_EMBEDDING_OR_SPECIAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # 6to4 relay anycast
        "2002::/16",  # 6to4: embeds an IPv4 address
        "64:ff9b::/96",  # NAT64: embeds an IPv4 address
        "64:ff9b:1::/48",  # local-use NAT64
        "2001::/32",  # Teredo
        "fec0::/10",  # deprecated site-local
    )
)
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
# Cloud platform endpoints, refused even where the allowlist opens their network.
_PLATFORM_ADDRESSES = tuple(
    ipaddress.ip_network(n)
    for n in (
        "168.63.129.16/32",  # Azure WireServer, platform DNS and health probes (a public address)
        "169.254.169.254/32",  # instance metadata: Azure IMDS, AWS, GCP (also link-local)
        "169.254.170.2/32",  # AWS ECS task metadata (also link-local)
        "fd00:ec2::254/128",  # AWS IMDS over IPv6 (also unique-local)
    )
)

def refusal_reason(address: IPAddress, allowlist: Iterable[IPNetwork] = ()) -> str | None:
    """Why connecting to ``address`` is not allowed, or None if it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # the kernel connects to the IPv4 address it embeds
    if any(address in network for network in _PLATFORM_ADDRESSES if network.version == address.version):
        return "a cloud platform"
    if any(address in network for network in allowlist if network.version == address.version):
        return None
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "an unspecified"),
        (address.is_loopback, "a loopback"),
        (address.is_link_local, "a link-local"),
        (address.is_multicast, "a multicast"),
        (address.is_private, "a private"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE, "a shared (CGNAT)"),
        (address.is_reserved, "a reserved"),
        (any(address in net for net in _EMBEDDING_OR_SPECIAL if net.version == address.version), "a special"),
        (not address.is_global, "a non-public"),
    )
    for refused, kind in checks:
        if refused:
            return f"{kind} address"
    return None


def is_public_network(network: IPNetwork) -> bool:
    ends = (network.network_address, network.broadcast_address)
    return all(refusal_reason(address) is None for address in ends)
