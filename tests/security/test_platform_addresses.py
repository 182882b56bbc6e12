"""Cloud platform addresses and what a refusal tells the client (issue 11, findings 6 and 8).

168.63.129.16 is Azure's platform address (WireServer, the platform DNS resolver, health probes;
https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16). It is a
public address by ``ipaddress``'s rules, so only an explicit rule refuses it, allowlist or not.
A refusal names the host the client gave and says "address not allowed": never what kind of address
the name resolved to, so a client cannot map internal names by reading errors.
"""

from __future__ import annotations

import ipaddress

import pytest

from devtools.http_servers import redirect
from shared.errors import UrlRefused
from shared.outbound import build_session, check_url, download
from shared.settings import Secret, Settings
from shared.webhook import DeliveryVerdict, WebhookSender
from tests.security.test_ssrf_guard import fake_net, fetch, production_session  # noqa: F401 - fixtures

WIRESERVER = "168.63.129.16"
PLATFORM_TARGETS = [
    f"http://{WIRESERVER}/machine?comp=goalstate",
    "http://wireserver.example.test/machine",
    "http://[::ffff:a83f:8110]/machine",  # the same address, IPv4-mapped
    "http://2822734096/machine",  # the same address as one decimal number
]


@pytest.fixture()
def platform_names(fake_net):  # noqa: F811
    fake_net.names["wireserver.example.test"] = [WIRESERVER]
    return fake_net


@pytest.mark.parametrize("target", PLATFORM_TARGETS)
def test_the_azure_platform_address_is_refused_for_downloads(platform_names, production_session, target) -> None:  # noqa: F811
    with pytest.raises(UrlRefused, match="address not allowed"):
        fetch(production_session, target)
    assert platform_names.connects == []


@pytest.mark.parametrize("target", PLATFORM_TARGETS)
def test_a_redirect_to_the_azure_platform_address_is_refused(platform_names, production_session, target) -> None:  # noqa: F811
    platform_names.server.route("/start.jpg", redirect(target))
    with pytest.raises(UrlRefused, match="address not allowed"):
        fetch(production_session, "http://public.example.test/start.jpg")
    assert platform_names.connects == ["93.184.216.34"]  # the first hop only


@pytest.mark.parametrize("target", PLATFORM_TARGETS)
def test_the_azure_platform_address_is_refused_for_webhooks(platform_names, production_session, target) -> None:  # noqa: F811
    sender = WebhookSender(production_session, "secret-for-this-test", timeout_s=2)
    result = sender.send(target, {"request_id": "x"}, "delivery-1")
    assert result.verdict is DeliveryVerdict.GIVE_UP and "address not allowed" in (result.error or "")
    assert platform_names.connects == []


def test_the_platform_address_stays_refused_when_the_allowlist_opens_its_network(platform_names) -> None:
    settings = Settings(storage_connection_string=Secret("unused"), connect_timeout_s=2.0, read_timeout_s=2.0,
                        outbound_allowlist=(ipaddress.ip_network("168.63.0.0/16"),))
    with build_session(settings) as session, pytest.raises(UrlRefused, match="address not allowed"):
        download(session, f"http://{WIRESERVER}/", max_bytes=1000, connect_timeout_s=2, read_timeout_s=2)
    assert platform_names.connects == []


@pytest.mark.parametrize("target", ["http://wireserver.example.test/", f"http://{WIRESERVER}/"])
def test_the_upload_pre_check_refuses_the_platform_address(platform_names, target) -> None:
    with pytest.raises(UrlRefused, match="address not allowed"):
        check_url(target, ())


@pytest.mark.parametrize("name", ["metadata.example.test", "internal.example.test", "v6-private.example.test",
                                  "loop.example.test", "cgnat.example.test", "wireserver.example.test"])
def test_a_refusal_does_not_say_what_kind_of_address_a_name_resolved_to(platform_names, production_session,  # noqa: F811
                                                                        name) -> None:
    messages = []
    for attempt in (lambda: fetch(production_session, f"http://{name}/a.jpg"),
                    lambda: check_url(f"http://{name}/a.jpg", ())):
        with pytest.raises(UrlRefused) as caught:
            attempt()
        messages.append(str(caught.value))
    assert messages == [f"refused: address not allowed (host {name})"] * 2
