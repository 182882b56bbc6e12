"""openapi.yaml against what the running host really answers and really sends.

Every response here comes from the local host over HTTP (no hand-built objects) and is checked
with ``devtools/openapi_check.py``: the status must be documented for the operation, the
content type listed, required headers present and a JSON body valid against its schema. The
webhook is checked as the receiver got it (raw headers and body).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devtools.apphost import AppStack
from devtools.http_servers import RecordedRequest, Reply, RunningServer, serve_in_thread
from devtools.openapi_check import SpecMismatch, assert_matches, assert_webhook_matches, load_spec
from devtools.samples import csv_for, photo_jpeg

pytestmark = pytest.mark.integration

UPLOAD = "/api/upload"
STATUS = "/api/status/{request_id}"
MAX_PRODUCTS = 2


@pytest.fixture(scope="module")
def spec() -> Any:
    return load_spec()


class GatedImages:
    """Image routes that answer only once the test opens the gate (so a request stays in flight)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.server: RunningServer | None = None

    def handle(self, request: RecordedRequest) -> Reply:
        path = request.path.split("?", 1)[0]
        if path == "/missing.jpg":
            return Reply(status=404)
        self.gate.wait(timeout=15)  # below the app's 20 s read timeout
        return Reply(body=photo_jpeg(int(path.rsplit("/", 1)[-1][:-4])), headers={"Content-Type": "image/jpeg"})

    def url(self, path: str) -> str:
        assert self.server is not None
        return self.server.url(path)


@pytest.fixture()
def gated() -> Iterator[GatedImages]:
    images = GatedImages()
    with serve_in_thread(images.handle) as server:
        images.server = server
        yield images
        images.gate.set()


@pytest.fixture(scope="module")
def contract_stack(azurite, redis_server, tmp_path_factory) -> Iterator[AppStack]:  # type: ignore[no-untyped-def]
    """One host for the module (each test makes its own requests), with limits small enough to cross."""
    overrides = {"MAX_PRODUCTS": str(MAX_PRODUCTS), "MAX_CSV_BYTES": "2048"}
    stack = AppStack(azurite, redis_server, tmp_path_factory.mktemp("contract"), overrides)
    stack.bootstrap()
    stack.start_host()
    yield stack
    stack.stop()


def _get(stack: AppStack, request_id: str, headers: dict[str, str] | None = None, **params: str) -> requests.Response:
    return requests.get(f"{stack.base_url}/status/{request_id}", params=params, headers=headers, timeout=30)


def test_upload_status_csv_and_webhook_match_the_spec(contract_stack, gated, webhook, spec) -> None:
    urls = [[gated.url("/img/1.jpg"), gated.url("/missing.jpg")], [gated.url("/img/2.jpg")]]
    response = contract_stack.upload(csv_for(urls), webhook_url=webhook.url + "?token=s3cret")
    accepted = assert_matches(spec, "POST", UPLOAD, response)
    assert isinstance(accepted, dict) and response.status_code == 202
    request_id = accepted["request_id"]
    assert int(response.headers["Retry-After"]) >= 0

    # In flight: the gate holds two images, so the documents show unfinished work and null fields.
    located = requests.get(response.headers["Location"], timeout=30)
    pending = assert_matches(spec, "GET", STATUS, located)
    assert isinstance(pending, dict) and pending["status"] in {"Pending", "Processing"}
    assert pending["completed_at"] is None and "results" not in pending
    assert pending["webhook"]["url"].endswith("/hook") and "s3cret" not in str(pending)
    with_images = assert_matches(spec, "GET", STATUS, _get(contract_stack, request_id, include="images"))
    assert isinstance(with_images, dict) and len(with_images["results"]) == 3
    csv_pending = assert_matches(spec, "GET", STATUS, _get(contract_stack, request_id, format="csv"))
    assert isinstance(csv_pending, str) and csv_pending.startswith("S. No.,Product Name,Input Image Urls")

    gated.gate.set()
    webhook.wait_for_delivery()
    done = contract_stack.wait_for_status(request_id, timeout_s=60)
    assert (done["done"], done["failed"]) == (2, 1)

    finished = assert_matches(spec, "GET", STATUS, _get(contract_stack, request_id, format="json"))
    assert isinstance(finished, dict) and finished["webhook"]["delivered"] is True
    results = assert_matches(spec, "GET", STATUS, _get(contract_stack, request_id, include="images"))
    assert isinstance(results, dict)
    assert [r["status"] for r in results["results"]] == ["Done", "Failed", "Done"]
    assert results["results"][1]["error"] and results["results"][0]["width"] == 480
    by_accept = _get(contract_stack, request_id, headers={"Accept": "text/csv"})
    csv_done = assert_matches(spec, "GET", STATUS, by_accept)
    assert isinstance(csv_done, str) and csv_done.count("\r\n") == 3

    assert webhook.server is not None
    posts = [r for r in webhook.server.requests if r.path.startswith("/hook")]
    assert len(posts) == 1
    payload = assert_webhook_matches(spec, posts[0].headers, posts[0].body)
    assert isinstance(payload, dict) and payload["request_id"] == request_id


def test_status_without_webhook_matches(contract_stack, image_server, spec) -> None:
    response = contract_stack.upload(csv_for([[image_server.url("/img/4.jpg")]]))
    request_id = assert_matches(spec, "POST", UPLOAD, response)["request_id"]  # type: ignore[index]
    contract_stack.wait_for_status(request_id, timeout_s=60)
    document = assert_matches(spec, "GET", STATUS, _get(contract_stack, request_id, include="images"))
    assert isinstance(document, dict) and document["webhook"] is None


@pytest.mark.parametrize(
    ("request_id", "status"),
    [
        ("9b2f4a52-6f0e-4c4e-8f3a-0d1f2e3c4b5a", 404),  # a well-formed id nobody has
        ("not-a-uuid", 400),
        ("9b2f4a52-6f0e-1c4e-8f3a-0d1f2e3c4b5a", 400),  # a UUID, but version 1
        ("9b2f4a526f0e4c4e8f3a0d1f2e3c4b5a", 400),  # not canonical
    ],
)
def test_status_errors_match(contract_stack, spec, request_id, status) -> None:
    response = _get(contract_stack, request_id)
    assert response.status_code == status, response.text
    body = assert_matches(spec, "GET", STATUS, response)
    assert isinstance(body, dict) and body["error"]


def test_upload_errors_match(contract_stack, image_server, spec) -> None:
    url = image_server.url("/img/1.jpg")
    base = contract_stack.base_url
    cases: list[tuple[int, requests.Response]] = [
        (400, contract_stack.upload("S. No.,Product Name\r\n1,SKU1\r\n")),
        (400, contract_stack.upload(csv_for([[url]]), webhook_url="ftp://hooks.example/x")),
        (400, contract_stack.upload(csv_for([[url]]), headers={"Idempotency-Key": "has spaces"})),
        (413, contract_stack.upload(csv_for([[url]] * (MAX_PRODUCTS + 1)))),
        (413, contract_stack.upload(csv_for([[url + "?" + "p" * 100] * 20]))),
        (415, requests.post(f"{base}/upload", json={"csv": "1,SKU1,x"}, timeout=30)),
        (415, requests.post(f"{base}/upload", data=b"1,a,b", timeout=30)),  # no content type at all
    ]
    for status, response in cases:
        assert response.status_code == status, (status, response.text)
        body = assert_matches(spec, "POST", UPLOAD, response)
        assert isinstance(body, dict) and body["problems"], body
    assert image_server.requests == []


def test_the_checker_rejects_an_undocumented_answer(contract_stack, spec) -> None:
    """The contract checks above can fail: a real 404 is not what the upload operation documents."""
    response = requests.get(f"{contract_stack.base_url}/no-such-route", timeout=30)
    assert response.status_code == 404
    with pytest.raises(SpecMismatch):
        assert_matches(spec, "POST", UPLOAD, response)
