"""One deadline for a whole outbound request, headers included (issue 11, finding 3).

A server that trickles its status line and headers one byte at a time never trips a per-read
timeout. Before the fix a download with a 1 s deadline waited for all of them (and then took
the image); a webhook POST with a 1 s timeout waited for the whole answer and counted as
delivered, beyond the claim expiry's assumption that a send ends within its timeout.
The servers here note how many bytes they had sent when the client hung up: with a real
deadline, far fewer than the whole answer.
"""

from __future__ import annotations

import ipaddress

import pytest

from shared.errors import TransientFailure
from shared.outbound import build_session, download
from shared.settings import Secret, Settings
from shared.webhook import DeliveryVerdict, WebhookSender
from tests.security.slow_servers import trickling_server

INTERVAL_S = 0.1
IMAGE_ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Padding: " + b"p" * 40
                + b"\r\nContent-Length: 4\r\n\r\n\xff\xd8\xff\xd9")
WEBHOOK_ANSWER = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"p" * 40 + b"\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture()
def loopback_session():
    settings = Settings(storage_connection_string=Secret("unused"), connect_timeout_s=2.0, read_timeout_s=2.0,
                        outbound_allowlist=(ipaddress.ip_network("127.0.0.0/8"),))
    with build_session(settings) as session:
        yield session


def test_a_download_whose_headers_trickle_stops_at_its_total_deadline(loopback_session) -> None:
    with (trickling_server(IMAGE_ANSWER, INTERVAL_S) as server,
          pytest.raises(TransientFailure, match="took longer than 1s")):
        download(loopback_session, server.url + "/a.jpg", max_bytes=1000,
                 connect_timeout_s=2.0, read_timeout_s=2.0, total_timeout_s=1.0)
    sent = server.sent_when_client_left[0]
    print(f"the client hung up after {sent} of {len(IMAGE_ANSWER)} bytes")
    assert sent < len(IMAGE_ANSWER) // 2


def test_a_kept_alive_connection_is_watched_too(loopback_session) -> None:
    """The second request on a pooled connection gets its own deadline."""
    fast = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\xff\xd8\xff\xd9"
    with trickling_server(fast + IMAGE_ANSWER, INTERVAL_S / 20) as server:
        data = download(loopback_session, server.url + "/a.jpg", max_bytes=1000, connect_timeout_s=2.0,
                        read_timeout_s=2.0, total_timeout_s=5.0)
        assert data == b"\xff\xd8\xff\xd9"


def test_a_webhook_whose_answer_trickles_past_its_timeout_is_not_delivered(loopback_session) -> None:
    sender = WebhookSender(loopback_session, "secret-for-this-test", timeout_s=1.0)
    with trickling_server(WEBHOOK_ANSWER, INTERVAL_S) as server:
        result = sender.send(server.url + "/hook", {"request_id": "r"}, "delivery-1")
    assert result.verdict is DeliveryVerdict.RETRY, result
    assert result.status_code is None and result.error == "timed out after 1s"
    assert server.sent_when_client_left[0] < len(WEBHOOK_ANSWER) // 2
    assert len(server.requests) == 1 and server.requests[0].startswith(b"POST /hook ")


def test_a_webhook_answered_in_time_is_delivered(loopback_session) -> None:
    sender = WebhookSender(loopback_session, "secret-for-this-test", timeout_s=5.0)
    with trickling_server(b"HTTP/1.1 204 No Content\r\n\r\n", 0.0) as server:
        result = sender.send(server.url + "/hook", {"request_id": "r"}, "delivery-1")
    assert result.verdict is DeliveryVerdict.DELIVERED and result.status_code == 204


def test_a_tls_handshake_that_trickles_stops_at_the_total_deadline(loopback_session) -> None:
    """The socket is watched from the TCP connect on, before TLS: a server can trickle its hello too."""
    handshake_record = b"\x16\x03\x03\x40\x00" + b"\x02" * 200  # announces 16 KB, sends a byte at a time
    with (trickling_server(handshake_record, INTERVAL_S) as server,
          pytest.raises(TransientFailure, match="took longer than 1s")):
        download(loopback_session, server.url.replace("http://", "https://") + "/a.jpg", max_bytes=1000,
                 connect_timeout_s=2.0, read_timeout_s=2.0, total_timeout_s=1.0)
    assert server.sent_when_client_left[0] < len(handshake_record) // 2
