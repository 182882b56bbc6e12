"""Signing, verifying and sending the webhook, through a fake transport adapter."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests_hardened.ip_filter import InvalidIPAddress

from shared.errors import ConfigError, UrlRefused
from shared.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryVerdict,
    WebhookSender,
    receiver_key,
    redact_url,
    retry_delay_s,
    sign,
    signed_headers,
    verify,
)

SECRET = "whsec-unit-test-secret"
NOW = 1_700_000_000.0
URL = "https://hooks.example.test/imgpipe?token=abc123"


Reply = Callable[[requests.PreparedRequest], int | BaseException]


class FakeAdapter(BaseAdapter):
    """Answers every request with ``reply(request)``: a status code or an exception to raise."""

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply
        self.sent: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append((request, kwargs))
        outcome = self.reply(request)
        if isinstance(outcome, BaseException):
            raise outcome
        response = requests.Response()
        response.status_code = outcome
        response.url = request.url or ""
        response.request = request
        response.raw = io.BytesIO(b"ok")
        return response

    def close(self) -> None:
        pass


def sender_with(reply: Reply) -> tuple[WebhookSender, FakeAdapter]:
    adapter = FakeAdapter(reply)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return WebhookSender(session, SECRET, timeout_s=7.5), adapter


# --- signing and verifying -------------------------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_dot_delivery_id_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), b"1700000000.d-1." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, "d-1", body) == f"v2={expected}"


def test_signed_headers_verify() -> None:
    body = b'{"request_id":"r1"}'
    headers = signed_headers(SECRET, body, "delivery-1", NOW)
    assert headers[DELIVERY_HEADER] == "delivery-1"
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert verify(SECRET, headers, body, NOW)


def test_verify_matches_header_names_case_insensitively() -> None:
    body = b"{}"
    headers = {k.lower(): v for k, v in signed_headers(SECRET, body, "d", NOW).items()}
    assert verify(SECRET, headers, body, NOW + 5)


@pytest.mark.parametrize("tamper", ["body", "secret", "timestamp", "signature"])
def test_verify_rejects_tampering(tamper: str) -> None:
    body = b'{"done":3}'
    headers = signed_headers(SECRET, body, "d", NOW)
    secret = SECRET
    if tamper == "body":
        body = b'{"done":4}'
    elif tamper == "secret":
        secret = "another-secret"
    elif tamper == "timestamp":
        headers[TIMESTAMP_HEADER] = str(int(NOW) + 1)
    else:
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER][:-1] + (
            "0" if headers[SIGNATURE_HEADER][-1] != "0" else "1")
    assert not verify(secret, headers, body, NOW)


@pytest.mark.parametrize("offset", [-301, 301, 10_000])
def test_verify_rejects_outside_the_window(offset: int) -> None:
    body = b"{}"
    headers = signed_headers(SECRET, body, "d", NOW)
    assert not verify(SECRET, headers, body, NOW + offset)
    assert verify(SECRET, headers, body, NOW + offset, tolerance_s=abs(offset))


@pytest.mark.parametrize("broken", [{}, {TIMESTAMP_HEADER: "soon"}, {TIMESTAMP_HEADER: "-5"},
                                    {SIGNATURE_HEADER: "v1=nothex"}, {SIGNATURE_HEADER: "ü"}])
def test_verify_rejects_missing_or_malformed_headers(broken: dict[str, str]) -> None:
    body = b"{}"
    headers = signed_headers(SECRET, body, "d", NOW)
    for name in (TIMESTAMP_HEADER, SIGNATURE_HEADER):
        if name in broken or not broken:
            headers.pop(name)
    headers.update(broken)
    assert not verify(SECRET, headers, body, NOW)


def test_verify_accepts_any_of_several_signatures_for_secret_rotation() -> None:
    body = b"{}"
    headers = signed_headers(SECRET, body, "d", NOW)
    headers[SIGNATURE_HEADER] = f"{sign('old-secret', int(NOW), 'd', body)}, {headers[SIGNATURE_HEADER]}"
    assert verify(SECRET, headers, body, NOW)
    assert not verify("third-secret", headers, body, NOW)


def test_verify_with_an_empty_secret_is_false() -> None:
    body = b"{}"
    assert not verify("", signed_headers("", body, "d", NOW), body, NOW)


# --- sending ---------------------------------------------------------------------------------


def test_send_posts_signed_compact_utf8_json_with_a_timeout() -> None:
    sender, adapter = sender_with(lambda _: 204)
    payload = {"request_id": "r1", "name": "Ärmel", "images": [1, 2]}
    result = sender.send(URL, payload, "delivery-7")
    assert result.verdict is DeliveryVerdict.DELIVERED
    assert result.status_code == 204 and result.error is None
    [(request, kwargs)] = adapter.sent
    assert request.method == "POST" and request.url == URL
    assert kwargs["timeout"] == 7.5
    body = request.body
    assert isinstance(body, bytes)
    assert body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert "Ärmel".encode() in body
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers[DELIVERY_HEADER] == "delivery-7"
    assert verify(receiver_key(SECRET, URL), dict(request.headers), body, time.time())
    assert not verify(SECRET, dict(request.headers), body, time.time())  # signed with the receiver's key


@pytest.mark.parametrize(("status", "verdict"), [
    (200, DeliveryVerdict.DELIVERED), (202, DeliveryVerdict.DELIVERED),
    (500, DeliveryVerdict.RETRY), (502, DeliveryVerdict.RETRY), (503, DeliveryVerdict.RETRY),
    (429, DeliveryVerdict.RETRY), (408, DeliveryVerdict.RETRY),
    (400, DeliveryVerdict.GIVE_UP), (401, DeliveryVerdict.GIVE_UP), (404, DeliveryVerdict.GIVE_UP),
    (410, DeliveryVerdict.GIVE_UP), (302, DeliveryVerdict.GIVE_UP),
])
def test_status_codes_map_to_verdicts(status: int, verdict: DeliveryVerdict) -> None:
    sender, _ = sender_with(lambda _: status)
    result = sender.send(URL, {"x": 1}, "d")
    assert result.verdict is verdict
    assert result.status_code == status
    assert (result.error is None) == (verdict is DeliveryVerdict.DELIVERED)


def test_redirects_are_not_followed() -> None:
    sender, adapter = sender_with(lambda _: 301)
    sender.send(URL, {"x": 1}, "d")
    assert len(adapter.sent) == 1


@pytest.mark.parametrize(("error", "verdict"), [
    (requests.ConnectTimeout("connect timed out " + URL), DeliveryVerdict.RETRY),
    (requests.ReadTimeout("read timed out " + URL), DeliveryVerdict.RETRY),
    (requests.ConnectionError("refused " + URL), DeliveryVerdict.RETRY),
    (UrlRefused("address 10.0.0.5 of " + URL + " is private"), DeliveryVerdict.GIVE_UP),
    (InvalidIPAddress("10.0.0.5"), DeliveryVerdict.GIVE_UP),
    (requests.exceptions.InvalidURL("bad " + URL), DeliveryVerdict.GIVE_UP),
])
def test_transport_errors_map_to_verdicts_without_leaking(error: BaseException,
                                                         verdict: DeliveryVerdict) -> None:
    sender, _ = sender_with(lambda _: error)
    result = sender.send(URL, {"x": 1}, "d")
    assert result.verdict is verdict
    assert result.status_code is None
    assert result.error
    assert "abc123" not in result.error
    assert SECRET not in result.error


def test_error_texts_never_carry_the_secret() -> None:
    sender, _ = sender_with(lambda _: UrlRefused(f"refused while signing with {SECRET}"))
    result = sender.send(URL, {"x": 1}, "d")
    assert result.error is not None and SECRET not in result.error


def test_secret_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    for reply in (200, 500, 404):
        sender, _ = sender_with(lambda _, reply=reply: reply)
        sender.send(URL, {"x": 1}, "d")
    assert caplog.records
    assert SECRET not in caplog.text and "abc123" not in caplog.text


def test_sender_refuses_to_send_unsigned() -> None:
    with pytest.raises(ConfigError):
        WebhookSender(requests.Session(), "", 5.0)


def test_sender_refuses_a_zero_timeout() -> None:
    with pytest.raises(ValueError):
        WebhookSender(requests.Session(), SECRET, 0.0)


def test_redact_url_keeps_scheme_host_port_and_path_only() -> None:
    assert redact_url("https://user:pw@Example.test:8443/hook/x?token=1#frag") == "https://example.test:8443/hook/x"
    assert redact_url("http://[::1]:8080/h?q=1") == "http://[::1]:8080/h"


# --- retry delays ----------------------------------------------------------------------------


def test_retry_delays_grow_and_stay_under_the_cap() -> None:
    rng = random.Random(7)
    for _ in range(50):
        delays = [retry_delay_s(attempt, 5.0, cap_s=600, rng=rng) for attempt in range(1, 15)]
        assert delays == sorted(delays)
        assert all(0 < d <= 600 for d in delays)
        assert 2.5 <= delays[0] <= 5.0
        assert delays[-1] == 600


def test_retry_delays_are_jittered() -> None:
    rng = random.Random(11)
    assert len({retry_delay_s(3, 5.0, rng=rng) for _ in range(20)}) > 1


def test_retry_delay_survives_huge_attempt_numbers() -> None:
    assert retry_delay_s(10_000, 5.0) == 3600


def test_retry_delay_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError):
        retry_delay_s(0, 5.0)
