"""The SSRF guard and bounded downloads, against real HTTP servers on loopback."""

from __future__ import annotations

import ipaddress
import socket

import pytest
import requests

from devtools.http_servers import Reply, endless, redirect, serve_in_thread, trickle
from shared.errors import ConfigError, PermanentFailure, TransientFailure, UrlRefused
from shared.outbound import build_session, check_url, download
from shared.settings import Secret, Settings

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
BODY = b"\xff\xd8not really a jpeg but bytes are bytes\xff\xd9"


def session_for(allowlist=(), max_redirects: int = 3) -> requests.Session:
    settings = Settings(
        storage_connection_string=Secret("unused"),
        outbound_allowlist=tuple(allowlist),
        max_redirects=max_redirects,
        connect_timeout_s=2.0,
        read_timeout_s=5.0,
    )
    return build_session(settings)


def fetch(session: requests.Session, url: str, **overrides) -> bytes:
    limits = {"max_bytes": 1_000_000, "connect_timeout_s": 2.0, "read_timeout_s": 5.0}
    return download(session, url, **{**limits, **overrides})


@pytest.fixture()
def open_session():
    with session_for(LOOPBACK) as session:
        yield session


@pytest.fixture()
def closed_session():
    with session_for(()) as session:
        yield session


# --- fetching from an allowed server -------------------------------------------------------


def test_download_returns_the_body(open_session) -> None:
    with serve_in_thread({"/a.jpg": Reply(body=BODY)}) as server:
        assert fetch(open_session, server.url("/a.jpg")) == BODY
        assert server.requests[0].headers["user-agent"].startswith("imgpipe/")


def test_download_follows_redirects_within_the_limit(open_session) -> None:
    routes = {"/1": redirect("/2"), "/2": redirect("/3", status=301), "/3": Reply(body=BODY)}
    with serve_in_thread(routes) as server:
        assert fetch(open_session, server.url("/1")) == BODY
        assert [r.path for r in server.requests] == ["/1", "/2", "/3"]


def test_cookies_set_by_one_server_are_not_sent_on_later_requests(open_session) -> None:
    routes = {
        "/set": Reply(body=BODY, headers={"Set-Cookie": "tracker=abc; Path=/"}),
        "/next": Reply(body=BODY),
    }
    with serve_in_thread(routes) as server:
        fetch(open_session, server.url("/set"))
        fetch(open_session, server.url("/next"))
        assert "cookie" not in server.requests[1].headers


def test_redirect_loop_is_permanent(open_session) -> None:
    with serve_in_thread({"/loop": redirect("/loop")}) as server:
        with pytest.raises(PermanentFailure, match="more than 3 redirects"):
            fetch(open_session, server.url("/loop"))
        assert len(server.requests) == 4  # the first request and three redirects, then it stops


def test_a_chain_longer_than_the_limit_is_permanent(open_session) -> None:
    routes = {f"/{i}": redirect(f"/{i + 1}") for i in range(5)}
    routes["/5"] = Reply(body=BODY)
    with serve_in_thread(routes) as server:
        with pytest.raises(PermanentFailure, match="redirects"):
            fetch(open_session, server.url("/0"))
        assert "/5" not in [r.path for r in server.requests]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, PermanentFailure),
        (410, PermanentFailure),
        (400, PermanentFailure),
        (403, PermanentFailure),
        (408, TransientFailure),
        (429, TransientFailure),
        (500, TransientFailure),
        (503, TransientFailure),
    ],
)
def test_status_codes_map_to_permanent_or_transient(open_session, status, error) -> None:
    with (
        serve_in_thread({"/x": Reply(status=status, body=b"nope")}) as server,
        pytest.raises(error) as raised,
    ):
        fetch(open_session, server.url("/x"))
    assert f"HTTP {status}" in str(raised.value)
    assert "127.0.0.1" in str(raised.value)
    if error is PermanentFailure:
        assert not isinstance(raised.value, TransientFailure)


def test_error_messages_keep_the_host_but_not_the_query(open_session) -> None:
    with serve_in_thread({"/x": Reply(status=404)}) as server, pytest.raises(PermanentFailure) as raised:
        fetch(open_session, server.url("/x?sig=TOPSECRET"))
    assert "TOPSECRET" not in str(raised.value)
    assert "127.0.0.1" in str(raised.value)


def test_declared_length_over_the_limit_is_refused_before_reading(open_session) -> None:
    with serve_in_thread({"/big": Reply(body=b"x" * 5000)}) as server:
        with pytest.raises(PermanentFailure, match="larger than 4096 bytes"):
            fetch(open_session, server.url("/big"), max_bytes=4096)
        assert fetch(open_session, server.url("/big"), max_bytes=5000) == b"x" * 5000


def test_endless_stream_is_cut_at_the_byte_limit(open_session) -> None:
    with (
        serve_in_thread({"/forever": endless()}) as server,
        pytest.raises(PermanentFailure, match="larger than 300000 bytes"),
    ):
        fetch(open_session, server.url("/forever"), max_bytes=300_000)


def test_trickling_server_is_cut_by_the_total_deadline(open_session) -> None:
    # Each byte arrives well within the read timeout, so only the total deadline can stop it.
    with (
        serve_in_thread({"/slow": trickle(b"x" * 1000, interval_s=0.05)}) as server,
        pytest.raises(TransientFailure, match="took longer than 0.5s"),
    ):
        fetch(open_session, server.url("/slow"), read_timeout_s=5.0, total_timeout_s=0.5)


def test_silent_server_hits_the_read_timeout(open_session) -> None:
    with (
        serve_in_thread({"/silent": Reply(body=BODY, delay_s=3)}) as server,
        pytest.raises(TransientFailure, match="timed out"),
    ):
        fetch(open_session, server.url("/silent"), read_timeout_s=0.3)


def test_connection_refused_is_transient(open_session) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(TransientFailure):
            fetch(open_session, f"http://127.0.0.1:{port}/a.jpg")


def test_download_refuses_an_unguarded_session() -> None:
    with requests.Session() as plain, pytest.raises(TypeError):
        fetch(plain, "http://127.0.0.1:1/")


# --- the SSRF guard with the production default (nothing opened) ---------------------------


@pytest.mark.parametrize(
    "url_template",
    [
        "http://127.0.0.1:{port}/a.jpg",
        "http://localhost:{port}/a.jpg",
        "http://2130706433:{port}/a.jpg",  # decimal 127.0.0.1
        "http://0177.0.0.1:{port}/a.jpg",  # octal
        "http://0x7f.0.0.1:{port}/a.jpg",  # hexadecimal
        "http://127.1:{port}/a.jpg",  # short form
        "http://0.0.0.0:{port}/a.jpg",  # unspecified: Linux connects it to this host
        "http://[::ffff:127.0.0.1]:{port}/a.jpg",  # IPv4-mapped IPv6
        "HTTP://LocalHost:{port}/a.jpg",
    ],
)
def test_loopback_in_any_spelling_is_refused_before_a_byte_is_sent(closed_session, url_template) -> None:
    with serve_in_thread({"/a.jpg": Reply(body=BODY)}) as server:
        url = url_template.format(port=server.base_url.rsplit(":", 1)[1])
        with pytest.raises(UrlRefused, match="refused"):
            fetch(closed_session, url)
        with pytest.raises(UrlRefused):
            check_url(url, ())
        assert server.requests == []


def test_ipv6_loopback_is_refused_before_a_byte_is_sent(closed_session) -> None:
    with serve_in_thread({"/a.jpg": Reply(body=BODY)}, host="::1") as server:
        with pytest.raises(UrlRefused, match="address not allowed"):
            fetch(closed_session, server.url("/a.jpg"))
        assert server.requests == []


def test_redirect_from_an_allowed_host_to_a_refused_address_is_stopped() -> None:
    allow_one = (ipaddress.ip_network("127.0.0.1/32"),)
    with (
        session_for(allow_one) as session,
        serve_in_thread({"/secret": Reply(body=b"internal")}, host="127.0.0.2") as internal,
        serve_in_thread({}) as public,
    ):
        internal_port = internal.base_url.rsplit(":", 1)[1]
        public.route("/to-internal", redirect(internal.url("/secret")))
        public.route("/to-mapped", redirect(f"http://[::ffff:127.0.0.2]:{internal_port}/secret"))
        public.route("/to-metadata", redirect("http://169.254.169.254/latest/meta-data/"))
        for path in ("/to-internal", "/to-mapped", "/to-metadata"):
            with pytest.raises(UrlRefused, match="refused"):
                fetch(session, public.url(path))
        assert internal.requests == []
        assert len(public.requests) == 3


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("file:///etc/passwd", "http"),
        ("gopher://127.0.0.1:70/_x", "http"),
        ("http://user:pw@127.0.0.1:{port}/a.jpg", "credentials"),
    ],
)
def test_redirect_to_another_scheme_or_with_credentials_is_refused(open_session, location, reason) -> None:
    with serve_in_thread({"/a.jpg": Reply(body=BODY)}) as server:
        server.route("/go", redirect(location.format(port=server.base_url.rsplit(":", 1)[1])))
        with pytest.raises(UrlRefused, match=reason):
            fetch(open_session, server.url("/go"))
        assert [r.path for r in server.requests] == ["/go"]


def test_a_name_resolving_to_loopback_is_refused_and_the_checked_address_is_the_one_used(
    monkeypatch,
) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def lying_dns(host, port, *args, **kwargs):
        if host == "images.example.com":
            host = "127.0.0.1"
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lying_dns)
    with serve_in_thread({"/a.jpg": Reply(body=BODY)}) as server:
        port = server.base_url.rsplit(":", 1)[1]
        url = f"http://images.example.com:{port}/a.jpg"
        with session_for(()) as closed, pytest.raises(UrlRefused, match="images.example.com"):
            fetch(closed, url)
        assert server.requests == []
        with session_for(LOOPBACK) as opened:
            assert fetch(opened, url) == BODY
        assert server.requests[0].headers["host"] == f"images.example.com:{port}"


# --- check_url and the session's configuration ----------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.jpg",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "//example.com/a.jpg",
        "http:///a.jpg",
        "http://user:secret@example.com/a.jpg",
        "http://example.com:99999/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://[fc00::1]/",
        "http://[fe80::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::127.0.0.1]/",
        "http://[2002:7f00:1::]/",
        "http://[64:ff9b::a00:1]/",
        "http://[fec0::1]/",
    ],
)
def test_check_url_refuses(url) -> None:
    with pytest.raises(UrlRefused):
        check_url(url, ())


def test_check_url_accepts_public_addresses_and_what_the_allowlist_opens() -> None:
    check_url("http://8.8.8.8/a.jpg", ())
    check_url("https://[2606:4700::1]/a.jpg", ())
    check_url("http://127.0.0.1/a.jpg", LOOPBACK)
    check_url("http://[::ffff:127.0.0.1]/a.jpg", LOOPBACK)
    with pytest.raises(UrlRefused):
        check_url("http://10.0.0.1/a.jpg", LOOPBACK)


def test_check_url_leaves_an_unresolvable_name_to_the_download() -> None:
    check_url("http://no-such-host.invalid/a.jpg", ())


def test_allowlist_may_open_loopback_only() -> None:
    with pytest.raises(ConfigError, match="10.0.0.0/8"):
        session_for((ipaddress.ip_network("10.0.0.0/8"),))
