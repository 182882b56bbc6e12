"""The SSRF guard of shared.outbound with a fake resolver and a fake public address.

There is no public network here, so "a public host that redirects to a private address" is staged:
``socket.getaddrinfo`` is replaced by a table (public.example.test -> 93.184.216.34, names of
private addresses -> those addresses), and ``socket.socket.connect`` sends a connect to the fake
public address to a real server on loopback while failing the test on a connect to any other
address off this machine. The session is built with the production default (empty allowlist).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from devtools.http_servers import Reply, RunningServer, redirect, serve_in_thread
from shared.errors import UrlRefused
from shared.outbound import build_session, download
from shared.settings import Secret, Settings
from shared.webhook import DeliveryVerdict, WebhookSender

FAKE_PUBLIC = "93.184.216.34"
JPEG = b"\xff\xd8\xff\xe0 a public image \xff\xd9"


@dataclass
class FakeNetwork:
    """A resolver table and a connect hook; records what would have left the machine."""

    server: RunningServer
    names: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    connects: list[str] = field(default_factory=list)  # every connect to an address off this machine
    rebinding: dict[str, list[str]] = field(default_factory=dict)  # name -> answers, one per lookup

    def getaddrinfo(self, real, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        if name in self.rebinding and self.rebinding[name]:
            answers = [self.rebinding[name].pop(0)]
        elif name in self.names:
            answers = self.names[name]
        else:
            if not _is_numeric_host(name):
                raise socket.gaierror(socket.EAI_NONAME, f"fake resolver: no {name}")
            return real(host, port, *args, **kwargs)
        port_number = int(port or 80)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
             (a, port_number, 0, 0) if ":" in a else (a, port_number))
            for a in answers
        ]

    def connect(self, real, sock, address):
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        if str(ip) == FAKE_PUBLIC:
            self.connects.append(str(ip))
            loopback_port = int(self.server.base_url.rsplit(":", 1)[1])
            if sock.family == socket.AF_INET:
                return real(sock, ("127.0.0.1", loopback_port))
        if not ip.is_loopback:
            self.connects.append(str(ip))
            raise AssertionError(f"the guard let a connect to {ip} through")
        return real(sock, address)


def _is_numeric_host(name: str) -> bool:
    """An address literal, including the legacy IPv4 forms the C library parses (2852039166, 0251.0...)."""
    try:
        ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(name)
        return True
    except OSError:
        return False


@pytest.fixture()
def fake_net(monkeypatch) -> Iterator[FakeNetwork]:
    with serve_in_thread({}) as server:
        net = FakeNetwork(server)
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
        monkeypatch.setattr(socket, "getaddrinfo",
                            lambda host, port, *a, **k: net.getaddrinfo(real_getaddrinfo, host, port, *a, **k))
        monkeypatch.setattr(socket.socket, "connect", lambda sock, address: net.connect(real_connect, sock, address))
        net.names.update({
            "public.example.test": [FAKE_PUBLIC],
            "metadata.example.test": ["169.254.169.254"],
            "internal.example.test": ["10.0.0.5"],
            "corp.example.test": ["172.20.1.1"],
            "home.example.test": ["192.168.1.10"],
            "cgnat.example.test": ["100.64.1.1"],
            "v6-private.example.test": ["fd12::5"],
            "v6-mapped.example.test": ["::ffff:10.0.0.5"],
            "loop.example.test": ["127.0.0.1"],
            "mixed.example.test": [FAKE_PUBLIC, "10.0.0.5"],
        })
        yield net


@pytest.fixture()
def production_session():
    settings = Settings(storage_connection_string=Secret("unused"), outbound_allowlist=(),
                        connect_timeout_s=2.0, read_timeout_s=2.0, max_redirects=5)
    with build_session(settings) as session:
        yield session


def fetch(session, url: str) -> bytes:
    return download(session, url, max_bytes=100_000, connect_timeout_s=2.0, read_timeout_s=2.0)


def test_the_staging_works_a_public_name_is_fetched_through_the_fake_address(fake_net, production_session) -> None:
    fake_net.server.route("/a.jpg", Reply(body=JPEG))
    assert fetch(production_session, "http://public.example.test/a.jpg") == JPEG
    assert fake_net.connects == [FAKE_PUBLIC]
    assert fake_net.server.requests[0].headers["host"] == "public.example.test"


PRIVATE_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.example.test/latest/meta-data/",
    "http://internal.example.test/",
    "http://corp.example.test/",
    "http://home.example.test/",
    "http://cgnat.example.test/",
    "http://v6-private.example.test/",
    "http://v6-mapped.example.test/",
    "http://loop.example.test/",
    "http://10.1.2.3:8080/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://2852039166/",
]


@pytest.mark.parametrize("target", PRIVATE_TARGETS)
def test_a_public_url_redirecting_to_a_private_address_is_refused_before_connecting(
        fake_net, production_session, target) -> None:
    fake_net.server.route("/start.jpg", redirect(target))
    with pytest.raises(UrlRefused, match="refused"):
        fetch(production_session, "http://public.example.test/start.jpg")
    assert fake_net.connects == [FAKE_PUBLIC]  # the first hop only
    assert [r.path for r in fake_net.server.requests] == ["/start.jpg"]


@pytest.mark.parametrize("target", PRIVATE_TARGETS)
def test_a_private_address_given_directly_is_refused_before_connecting(fake_net, production_session, target) -> None:
    with pytest.raises(UrlRefused, match="refused"):
        fetch(production_session, target)
    assert fake_net.connects == []


def test_a_redirect_to_another_scheme_is_refused(fake_net, production_session) -> None:
    for index, target in enumerate(["file:///etc/passwd", "ftp://public.example.test/a.jpg", "gopher://x/"]):
        fake_net.server.route(f"/s{index}.jpg", redirect(target))
        with pytest.raises(UrlRefused):
            fetch(production_session, f"http://public.example.test/s{index}.jpg")
    assert set(fake_net.connects) == {FAKE_PUBLIC}  # (a kept-alive connection may serve all three)
    assert [r.path for r in fake_net.server.requests] == ["/s0.jpg", "/s1.jpg", "/s2.jpg"]


def test_dns_rebinding_cannot_switch_the_address_between_check_and_connect(fake_net, production_session) -> None:
    fake_net.server.route("/a.jpg", Reply(body=JPEG))
    # A public answer first, then private ones for any later lookup of the same name.
    fake_net.rebinding["rebind.example.test"] = [FAKE_PUBLIC] + ["10.0.0.5"] * 5
    assert fetch(production_session, "http://rebind.example.test/a.jpg") == JPEG
    assert fake_net.connects == [FAKE_PUBLIC]


def test_a_name_with_one_private_address_among_public_ones_never_reaches_the_private_one(
        fake_net, production_session) -> None:
    fake_net.server.route("/a.jpg", Reply(body=JPEG))
    with contextlib.suppress(UrlRefused):  # refusing the whole name is also safe
        fetch(production_session, "http://mixed.example.test/a.jpg")
    assert "10.0.0.5" not in fake_net.connects


def test_a_webhook_redirected_to_metadata_is_not_followed(fake_net, production_session) -> None:
    fake_net.server.route("/hook", redirect("http://169.254.169.254/latest/meta-data/", status=307))
    sender = WebhookSender(production_session, "secret-for-this-test", timeout_s=2)
    result = sender.send("http://public.example.test/hook", {"request_id": "x"}, "delivery-1")
    assert result.verdict is DeliveryVerdict.GIVE_UP and result.status_code == 307
    assert fake_net.connects == [FAKE_PUBLIC]


@pytest.mark.parametrize("url", ["http://metadata.example.test/hook", "http://internal.example.test/hook",
                                 "http://[fd00::1]/hook", "http://0251.0376.0251.0376/hook"])
def test_a_webhook_to_a_private_address_is_refused_before_connecting(fake_net, production_session, url) -> None:
    sender = WebhookSender(production_session, "secret-for-this-test", timeout_s=2)
    result = sender.send(url, {"request_id": "x"}, "delivery-1")
    assert result.verdict is DeliveryVerdict.GIVE_UP and "refused" in (result.error or "")
    assert fake_net.connects == []
