"""Secrets never show in logs, error bodies or responses, across a whole job that also fails.

The job runs with every secret the app holds set to a unique value: the storage account key (in
AzureWebJobsStorage), WEBHOOK_SECRET, DEVHOST_FUNCTION_KEY, a Redis password (a separate
redis-server started with --requirepass, named in REDIS_URL) and a token in the webhook URL's query
string. It includes a failing image, a refused image, a webhook attempt answered 500 and a
validation error; then the host logs and every response are searched for each secret.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest
import requests

from devtools.http_servers import Reply, redirect
from devtools.samples import csv_for
from devtools.servers import ACCOUNT_KEY, free_port, redis_server_binary, wait_for_port
from devtools.webhook_receiver import WebhookReceiver, running_receiver

pytestmark = pytest.mark.integration


@pytest.fixture()
def redis_password_url(tmp_path) -> Iterator[tuple[str, str]]:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("redis-server not found")
    password = "rp-" + secrets.token_hex(16)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--requirepass", password],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_port(port, 15, proc)
        yield password, f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def webhook_secret() -> str:
    return "ws-" + secrets.token_hex(16)


@pytest.fixture()
def failing_once_receiver(webhook_secret) -> Iterator[WebhookReceiver]:
    with running_receiver(webhook_secret, script=[500]) as receiver:
        yield receiver


def test_no_secret_appears_in_logs_errors_or_responses(
        secure_stack, image_server, redis_password_url, webhook_secret, failing_once_receiver) -> None:
    redis_password, redis_url = redis_password_url
    function_key = "fk-" + secrets.token_hex(16)
    hook_token = "tok-" + secrets.token_hex(16)
    stack = secure_stack(extra_args=["--enforce-keys"], DEVHOST_FUNCTION_KEY=function_key,
                         WEBHOOK_SECRET=webhook_secret, REDIS_URL=redis_url)
    assert ACCOUNT_KEY in stack.env["AzureWebJobsStorage"]
    secret_values = {"storage account key": ACCOUNT_KEY, "webhook secret": webhook_secret,
                     "function key": function_key, "redis password": redis_password,
                     "webhook URL token": hook_token}

    image_server.route("/not-an-image.jpg", Reply(body=b"<html>no</html>", headers={"Content-Type": "image/jpeg"}))
    image_server.route("/to-private.jpg", redirect("http://10.0.0.1/a.jpg"))
    urls = [image_server.url(p) for p in ("/img/1.jpg", "/missing.jpg", "/not-an-image.jpg", "/to-private.jpg")]
    hook = f"{failing_once_receiver.url}?token={hook_token}"
    auth = {"x-functions-key": function_key}
    responses: list[requests.Response] = []

    def keep(response: requests.Response) -> requests.Response:
        responses.append(response)
        return response

    keep(requests.post(f"{stack.base_url}/upload", data=b"x", headers={"Content-Type": "text/csv"}, timeout=30))
    assert responses[-1].status_code == 401
    bad_csv = b"S. No.,Product Name,Input Image Urls\n1,A,http://user:" + redis_password.encode() + b"@x/a.jpg\n"
    keep(requests.post(f"{stack.base_url}/upload", data=bad_csv, headers={"Content-Type": "text/csv", **auth},
                       timeout=30))
    assert responses[-1].status_code == 400
    keep(requests.post(f"{stack.base_url}/upload", params={"webhook_url": "ftp://x/?" + hook_token},
                       data=csv_for([urls]), headers={"Content-Type": "text/csv", **auth}, timeout=30))
    assert responses[-1].status_code == 400
    accepted = keep(requests.post(f"{stack.base_url}/upload", params={"webhook_url": hook},
                                  data=csv_for([urls]), headers={"Content-Type": "text/csv", **auth}, timeout=30))
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]

    payload = failing_once_receiver.wait_for_delivery(timeout_s=90)
    assert failing_once_receiver.attempts >= 2  # one answered 500, then the signed delivery verified
    assert [item["status"] for item in payload["output_images"]] == ["Done", "Failed", "Failed", "Failed"]
    status_url = f"{stack.base_url}/status/{request_id}"
    for params in ({}, {"include": "images"}, {"format": "csv"}):
        assert keep(requests.get(status_url, params=params, headers=auth, timeout=30)).status_code == 200
    document = responses[-2].json()
    assert document["webhook"]["attempts"] >= 2 and document["webhook"]["delivered"] is True
    keep(requests.get(f"{stack.base_url}/status/{request_id[:-1]}0", headers=auth, timeout=30))
    keep(requests.get(f"{stack.base_url}/status/nope", headers=auth, timeout=30))

    deliveries = [r for r in failing_once_receiver.server.requests]
    haystacks = {
        "host logs": stack.logs(),
        "responses": "\n".join(f"{r.status_code} {dict(r.headers)} {r.text}" for r in responses),
        "webhook bodies": "\n".join(d.body.decode() for d in deliveries),
        "webhook headers": "\n".join(str({k: v for k, v in d.headers.items()}) for d in deliveries),
    }
    assert len(haystacks["host logs"]) > 1000  # the job was logged: there was something to search
    leaks = [(secret_name, where) for secret_name, value in secret_values.items()
             for where, text in haystacks.items() if value in text]
    assert leaks == []
