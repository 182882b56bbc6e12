"""A network tripwire for app processes started by the security tests (loaded through PYTHONPATH).

When ``IMGPIPE_TRIPWIRE_LOG`` is set, every process of the app (the local host and its spawned
workers) refuses, and records in that file, any attempt to connect to an address that is not on
this machine, and any name lookup that would need DNS. The security tests feed the app private
and metadata addresses on purpose: if the SSRF guard ever let one through, the tripwire stops the
packet from leaving and the test fails on the recorded line instead of probing a real network.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_LOG = os.environ.get("IMGPIPE_TRIPWIRE_LOG", "")
# Names the C library answers from /etc/hosts, without a DNS query.
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def _record(line: str) -> None:
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {line}\n")


def _stays_on_this_machine(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like
    try:
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _needs_dns(host: object) -> bool:
    if host is None:
        return False
    name = host.decode() if isinstance(host, bytes) else str(host)
    name = name.strip("[]").split("%", 1)[0]
    if name.lower() in _LOCAL_NAMES:
        return False
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        pass
    try:
        socket.inet_aton(name)  # the legacy forms the C library parses itself: 2130706433, 0177.0.0.1
        return False
    except OSError:
        return True


def _install() -> None:
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _stays_on_this_machine(address):
            _record(f"connect {address!r}")
            raise ConnectionRefusedError(f"tripwire: connect to {address!r} refused")
        original_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _stays_on_this_machine(address):
            _record(f"connect {address!r}")
            return 111  # ECONNREFUSED
        return original_connect_ex(self, address)  # type: ignore[arg-type]

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if _needs_dns(host):
            _record(f"dns {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"tripwire: no DNS for {host!r}")
        return original_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


if _LOG:
    _install()
