"""The webhook signature binds body and timestamp; a replay outside the window is rejected.

Unit level with shared.webhook.verify, then through the test receiver (written as a consuming
service would write it) with a delivery the app's real sender made and the receiver captured.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator

import pytest
import requests

import devtools.webhook_receiver as receiver_module
from devtools.http_servers import RecordedRequest
from devtools.webhook_receiver import WebhookReceiver, running_receiver
from shared.outbound import build_session
from shared.settings import Secret, Settings
from shared.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSender, sign, verify

SECRET = "replay-test-secret"
BODY = b'{"request_id":"5b1c7f8e-7a53-4f6e-9c1d-3a2b1c0d9e8f","status":"Completed"}'
NOW = 1_750_000_000
LOOPBACK_ALLOWLIST = (ipaddress.ip_network("127.0.0.0/8"),)


def headers_at(timestamp: int, body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), DELIVERY_HEADER: "d-1",
            SIGNATURE_HEADER: sign(secret, timestamp, "d-1", body)}


@pytest.mark.parametrize("age_s", [0, 1, 299, 300, -300])
def test_a_signature_inside_the_window_verifies(age_s: int) -> None:
    assert verify(SECRET, headers_at(NOW - age_s), BODY, now=NOW, tolerance_s=300)


@pytest.mark.parametrize("age_s", [301, 3600, 86_400 * 365, -301, NOW])
def test_a_stale_or_future_timestamp_is_rejected_though_the_signature_is_right(age_s: int) -> None:
    assert not verify(SECRET, headers_at(NOW - age_s), BODY, now=NOW, tolerance_s=300)


def test_an_old_signature_cannot_be_reused_with_a_fresh_timestamp() -> None:
    stale = headers_at(NOW - 3600)
    forged = {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: stale[SIGNATURE_HEADER]}
    assert not verify(SECRET, forged, BODY, now=NOW)


@pytest.mark.parametrize("tamper", [
    lambda h, b: (h, b + b" "),
    lambda h, b: (h, b.replace(b"Completed", b"Pending")),
    lambda h, b: ({**h, SIGNATURE_HEADER: h[SIGNATURE_HEADER].upper()}, b),
    lambda h, b: ({**h, SIGNATURE_HEADER: "v0=" + h[SIGNATURE_HEADER][3:]}, b),
    lambda h, b: ({**h, SIGNATURE_HEADER: ""}, b),
    lambda h, b: ({**h, TIMESTAMP_HEADER: f" {NOW}x"}, b),
    lambda h, b: ({**h, TIMESTAMP_HEADER: "\u0661\u0662"}, b),  # non-ASCII digits
    lambda h, b: ({k: v for k, v in h.items() if k != TIMESTAMP_HEADER}, b),
    lambda h, b: (headers_at(NOW, b, secret="another-secret"), b),
])
def test_a_tampered_delivery_is_rejected(tamper) -> None:
    headers, body = tamper(headers_at(NOW), BODY)
    assert not verify(SECRET, headers, body, now=NOW)


def test_an_empty_secret_verifies_nothing() -> None:
    assert not verify("", headers_at(NOW, secret=""), BODY, now=NOW)


class _ShiftedClock:
    """Stands in for the receiver module's ``time``: the same clock, ``offset_s`` later."""

    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def time(self) -> float:
        return time.time() + self.offset_s

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@pytest.fixture()
def receiver() -> Iterator[WebhookReceiver]:
    with running_receiver(SECRET) as running:
        yield running


def _send_real_delivery(receiver: WebhookReceiver) -> RecordedRequest:
    settings = Settings(storage_connection_string=Secret("unused"), outbound_allowlist=LOOPBACK_ALLOWLIST)
    with build_session(settings) as session:
        result = WebhookSender(session, SECRET, timeout_s=5).send(receiver.url, {"request_id": "r-1"}, "d-1")
    assert result.status_code == 200
    return receiver.server.requests[-1]


def _replay(receiver: WebhookReceiver, captured: RecordedRequest) -> int:
    wanted = {TIMESTAMP_HEADER, SIGNATURE_HEADER, DELIVERY_HEADER, "Content-Type"}
    headers = {k: v for k, v in captured.headers.items() if k in {w.lower() for w in wanted}}
    return requests.post(receiver.url, data=captured.body, headers=headers, timeout=10).status_code


def test_the_receiver_rejects_a_captured_delivery_replayed_after_the_window(receiver, monkeypatch) -> None:
    captured = _send_real_delivery(receiver)
    assert _replay(receiver, captured) == 200  # inside the window: accepted (and de-duplicated by id)
    assert receiver.deliveries == ["d-1", "d-1"] and len(receiver.accepted) == 1

    monkeypatch.setattr(receiver_module, "time", _ShiftedClock(offset_s=receiver.tolerance_s + 60))
    assert _replay(receiver, captured) == 401
    assert receiver.rejected == ["d-1"]

    fresh = str(int(time.time() + receiver.tolerance_s + 60))
    forged = RecordedRequest(captured.method, captured.path,
                             {**captured.headers, TIMESTAMP_HEADER.lower(): fresh}, captured.body)
    assert _replay(receiver, forged) == 401  # a new timestamp breaks the old signature
    assert receiver.deliveries == ["d-1", "d-1"]
