"""Webhook signature v2: the delivery id is signed, and every receiver URL has its own key (finding 7).

Before, ``X-Imgpipe-Delivery`` sat outside the HMAC: a captured delivery re-sent within the window
under a new id verified, and the receiver's duplicate check took it for a new delivery. And one
server-wide secret signed for everyone, so whoever could verify could also sign for any receiver.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.http_servers import RecordedRequest
from shared.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    canonical_receiver_url,
    receiver_key,
    sign,
    signed_headers,
    verify,
)
from tests.security.test_webhook_replay import SECRET, _replay, _send_real_delivery, receiver  # noqa: F401

BODY = b'{"request_id":"r-1","status":"Completed"}'
HOOK = "https://hooks.example.com/tenant-a/imgpipe"
OTHER_TENANT = "https://hooks.example.com/tenant-b/imgpipe"


def test_a_captured_delivery_replayed_under_a_new_delivery_id_is_rejected(receiver) -> None:  # noqa: F811
    captured = _send_real_delivery(receiver)
    renamed = RecordedRequest(captured.method, captured.path,
                              {**captured.headers, DELIVERY_HEADER.lower(): "d-2"}, captured.body)
    assert _replay(receiver, renamed) == 401
    assert receiver.deliveries == ["d-1"] and list(receiver.accepted) == ["d-1"]
    assert receiver.rejected == ["d-2"]


def test_the_signature_covers_timestamp_delivery_id_and_body() -> None:
    key = receiver_key(SECRET, HOOK)
    headers = signed_headers(key, BODY, "d-1", 1_750_000_000)
    assert headers[SIGNATURE_HEADER] == sign(key, 1_750_000_000, "d-1", BODY)
    assert headers[SIGNATURE_HEADER].startswith("v2=")
    assert verify(key, headers, BODY, 1_750_000_000)
    for changed in ({DELIVERY_HEADER: "d-2"}, {TIMESTAMP_HEADER: "1750000001"}):
        assert not verify(key, {**headers, **changed}, BODY, 1_750_000_000)
    assert not verify(key, headers, BODY + b" ", 1_750_000_000)
    missing_id = {k: v for k, v in headers.items() if k != DELIVERY_HEADER}
    assert not verify(key, missing_id, BODY, 1_750_000_000)


def test_one_receivers_key_cannot_sign_for_another_on_the_same_host() -> None:
    tenant_a, tenant_b = receiver_key(SECRET, HOOK), receiver_key(SECRET, OTHER_TENANT)
    assert tenant_a != tenant_b and SECRET not in (tenant_a, tenant_b)
    forged_by_a = signed_headers(tenant_a, BODY, "d-9", 1_750_000_000)
    assert not verify(tenant_b, forged_by_a, BODY, 1_750_000_000)
    assert not verify(SECRET, forged_by_a, BODY, 1_750_000_000)  # the server secret is not a key


@pytest.mark.parametrize("spelling", ["HTTPS://Hooks.Example.COM/tenant-a/imgpipe",
                                      "https://hooks.example.com:443/tenant-a/imgpipe",
                                      "https://hooks.example.com/tenant-a/imgpipe#fragment",
                                      "https://hooks.example.com/tenant-a/imgpipe?token=rotated-often"])
def test_the_key_does_not_depend_on_how_the_same_url_is_spelled(spelling) -> None:
    assert canonical_receiver_url(spelling) == "https://hooks.example.com:443/tenant-a/imgpipe"
    assert receiver_key(SECRET, spelling) == receiver_key(SECRET, HOOK)


def test_the_operator_command_prints_the_key_the_sender_signs_with() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "shared.webhook_keys", HOOK], capture_output=True, text=True,
                          cwd=root, env={"WEBHOOK_SECRET": SECRET, "PATH": "/usr/bin:/bin"}, check=True)
    assert done.stdout.strip() == receiver_key(SECRET, HOOK)
    refused = subprocess.run([sys.executable, "-m", "shared.webhook_keys", HOOK], capture_output=True,
                             text=True, cwd=root, env={"PATH": "/usr/bin:/bin"})
    assert refused.returncode == 1 and "WEBHOOK_SECRET is not set" in refused.stderr


def test_the_receiver_example_verifies_a_real_delivery(receiver) -> None:  # noqa: F811
    """The test receiver verifies as the README tells a receiver to: with its own key."""
    captured = _send_real_delivery(receiver)
    key = receiver_key(SECRET, receiver.url)
    assert verify(key, captured.headers, captured.body, time.time())


def test_the_readme_receiver_example_accepts_a_real_delivery_and_rejects_a_renamed_one(receiver) -> None:  # noqa: F811
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("```python\nimport hashlib, hmac, time", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec("import hashlib, hmac, time" + example, namespace)  # noqa: S102 - our own README
    verified = namespace["verified"]
    captured = _send_real_delivery(receiver)
    headers = {name.title(): value for name, value in captured.headers.items()}
    key = receiver_key(SECRET, receiver.url)
    assert verified(key, headers, captured.body)
    assert not verified(key, {**headers, "X-Imgpipe-Delivery": "d-2"}, captured.body)
    assert not verified(SECRET, headers, captured.body)
