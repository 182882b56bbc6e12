"""SSRF through the running app with the production default (OUTBOUND_ALLOWLIST empty).

Image and webhook URLs naming this machine in every spelling are refused before a byte is sent:
real servers listen on loopback (IPv4 and IPv6) and record every request, and none may arrive.
Private, link-local and shared addresses off this machine are fed to the same guard; the tripwire
(tests/security/tripwire) refuses any connect to them, so a guard that let one through fails the
test on the tripwire log without a packet leaving. A public host that redirects to a private
address cannot exist here (no public network): that case is tested at the unit level in
test_ssrf_guard.py with a fake resolver and a fake public address.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.http_servers import Reply, RunningServer, serve_in_thread
from devtools.samples import csv_for

pytestmark = pytest.mark.integration

PRODUCTION_DEFAULT = {"OUTBOUND_ALLOWLIST": ""}
BAIT = Reply(body=b"\xff\xd8 must never be fetched", headers={"Content-Type": "image/jpeg"})


@pytest.fixture()
def v4_server() -> Iterator[RunningServer]:
    with serve_in_thread(lambda request: BAIT) as server:
        yield server


@pytest.fixture()
def v6_server() -> Iterator[RunningServer]:
    with serve_in_thread(lambda request: BAIT, host="::1") as server:
        yield server


def loopback_spellings(v4_port: int, v6_port: int) -> list[str]:
    """Every way of writing "this machine" that a naive string check would miss."""
    hosts_v4 = ["127.0.0.1", "localhost", "LocalHost", "0.0.0.0", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
                "2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1", "127.0.0.2", "0"]
    hosts_v6 = ["[::1]", "[::]", "[0:0:0:0:0:0:0:1]"]
    return ([f"http://{host}:{v4_port}/img/{i}.jpg" for i, host in enumerate(hosts_v4)]
            + [f"http://{host}:{v6_port}/img/{i}.jpg" for i, host in enumerate(hosts_v6, start=100)])


# Never contacted: the guard must refuse them, the tripwire would stop the connect if it did not.
OFF_MACHINE = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one decimal number
    "http://0xa9fea9fe/latest/meta-data/",  # ... and in hex
    "http://0251.0376.0251.0376/",  # ... and in octal
    "http://10.0.0.1/a.jpg",
    "http://10.255.255.254:8080/a.jpg",
    "http://172.16.0.1/a.jpg",
    "http://172.31.255.254/a.jpg",
    "http://192.168.0.1/a.jpg",
    "http://192.168.255.254/a.jpg",
    "http://100.64.0.1/a.jpg",
    "http://100.127.255.254/a.jpg",
    "http://[fe80::1]/a.jpg",
    "http://[fc00::1]/a.jpg",
    "http://[::ffff:10.0.0.1]/a.jpg",
    "http://[::ffff:169.254.169.254]/a.jpg",
    "http://[64:ff9b::a9fe:a9fe]/a.jpg",  # NAT64 form of 169.254.169.254
    "http://[2002:a9fe:a9fe::1]/a.jpg",  # 6to4 form of 169.254.169.254
    "http://224.0.0.1/a.jpg",
    "http://240.0.0.1/a.jpg",
    "http://198.18.0.1/a.jpg",
]


def test_image_urls_to_loopback_and_private_addresses_are_refused_before_connecting(
        secure_stack, v4_server, v6_server) -> None:
    stack = secure_stack(**PRODUCTION_DEFAULT)
    v4_port = int(v4_server.base_url.rsplit(":", 1)[1])
    v6_port = int(v6_server.base_url.rsplit(":", 1)[1])
    urls = loopback_spellings(v4_port, v6_port) + OFF_MACHINE
    response = stack.upload(csv_for([[url] for url in urls]))
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    stack.wait_for_status(request_id, timeout_s=120)

    results = stack.status(request_id, include="images").json()["results"]
    assert [r["input_url"] for r in results] == urls
    not_refused = [(r["input_url"], r["status"], r["error"]) for r in results
                   if r["status"] != "Failed" or "refused" not in (r["error"] or "")]
    assert not_refused == []
    assert v4_server.requests == [] and v6_server.requests == []
    assert stack.tripwire_hits() == []
    # A refusal is permanent: one attempt each, no queue retries.
    assert {r["attempts"] for r in results} == {1}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"])
def test_webhook_to_this_machine_is_refused_and_never_sent(secure_stack, webhook, host) -> None:
    stack = secure_stack(**PRODUCTION_DEFAULT)
    port = webhook.url.split(":")[2].split("/")[0]
    hook = f"http://{host}:{port}/hook"
    response = stack.upload(csv_for([["http://10.0.0.1/a.jpg"]]), webhook_url=hook)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    stack.wait_for_status(request_id)
    summary = _settled_webhook(stack, request_id)
    assert summary["delivered"] is False and summary["attempts"] == 1
    assert "refused" in summary["last_error"]
    assert webhook.attempts == 0 and webhook.server.requests == []
    assert stack.tripwire_hits() == []


def test_webhook_to_metadata_and_private_addresses_is_refused_before_connecting(secure_stack) -> None:
    stack = secure_stack(**PRODUCTION_DEFAULT)
    hooks = ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook", "http://[fd00::1]/hook",
             "http://0251.0376.0251.0376/hook"]
    request_ids = []
    for hook in hooks:
        response = stack.upload(csv_for([["http://192.168.0.1/a.jpg"]]), webhook_url=hook)
        assert response.status_code == 202, response.text
        request_ids.append(response.json()["request_id"])
    for request_id in request_ids:
        stack.wait_for_status(request_id)
        summary = _settled_webhook(stack, request_id)
        assert summary["delivered"] is False and summary["attempts"] == 1
        assert "refused" in summary["last_error"], summary
    assert stack.tripwire_hits() == []


def _settled_webhook(stack, request_id: str, timeout_s: float = 30) -> dict:
    """The webhook summary once its first attempt is recorded (Completed comes just before it)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        summary = stack.status(request_id).json()["webhook"]
        if summary["attempts"] or time.monotonic() > deadline:
            return summary
        time.sleep(0.2)
