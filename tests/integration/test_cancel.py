"""Cancel end to end: unstarted images skipped, in-flight ones finish, Cancelled once, webhook says so."""

from __future__ import annotations

import threading
import uuid

import pytest
import requests

from devtools.http_servers import RecordedRequest, Reply, serve_in_thread, wait_until
from devtools.samples import csv_for, photo_jpeg

pytestmark = pytest.mark.integration


def _delete(stack, request_id: str) -> requests.Response:
    return requests.delete(f"{stack.base_url}/requests/{request_id}", timeout=30)


def test_cancel_skips_unstarted_lets_in_flight_finish_and_closes_once(make_stack, webhook) -> None:
    # Threads enough for every image invocation held at the gate (a batch of 16 plus 8 more) and
    # the HTTP calls: with the usual 4 a worker, the held downloads would starve the DELETE.
    stack = make_stack(PYTHON_THREADPOOL_THREAD_COUNT="40")
    gate = threading.Event()  # held shut: every image download in flight stays in flight

    def slow_photos(request: RecordedRequest) -> Reply:
        gate.wait(60)
        index = int(request.path.rsplit("/", 1)[-1].split(".")[0])
        return Reply(body=photo_jpeg(index), headers={"Content-Type": "image/jpeg"})

    with serve_in_thread(slow_photos) as photos:
        urls = [photos.url(f"/img/{i}.jpg") for i in range(60)]
        products = [urls[i : i + 3] for i in range(0, 60, 3)]
        accepted = stack.upload(csv_for(products), webhook_url=webhook.url).json()
        request_id = accepted["request_id"]
        assert wait_until(lambda: len(photos.requests) >= 1, timeout_s=60)

        first = _delete(stack, request_id)
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "Cancelling"
        again = _delete(stack, request_id)
        assert again.status_code == 202 and again.json()["status"] == "Cancelling"  # idempotent
        skipped = again.json()["skipped"]
        assert 0 < skipped < 60

        gate.set()
        payload = webhook.wait_for_delivery()
        started = {r.path for r in photos.requests}

    assert payload["status"] == "Cancelled"
    document = stack.wait_for_status(request_id, wanted="Cancelled")
    assert document["completed_at"] is not None
    assert document["done"] + document["failed"] + document["skipped"] == 60
    assert document["skipped"] == skipped == payload["skipped"]
    results = stack.status(request_id, include="images").json()["results"]
    done_paths = {"/" + r["input_url"].split("/", 3)[3] for r in results if r["status"] == "Done"}
    assert done_paths == started  # exactly the images in flight finished; no skipped one was fetched
    assert all(r["started_at"] is None for r in results if r["status"] == "Skipped")
    assert {item["status"] for item in payload["output_images"]} <= {"Done", "Skipped"}
    assert document["webhook"]["attempts"] == 1 and document["webhook"]["delivered"] is True

    final = _delete(stack, request_id)
    assert final.status_code == 200 and final.json()["status"] == "Cancelled"


def test_cancel_with_nothing_in_flight_closes_the_request_itself(make_stack, image_server, webhook) -> None:
    # No image function runs: every image is unstarted, so the cancel itself must fire the notify.
    stack = make_stack(**{"AzureWebJobs.process_queue.Disabled": "true"})
    products = [[image_server.url(f"/img/{i}.jpg") for i in range(4)]]
    request_id = stack.upload(csv_for(products), webhook_url=webhook.url).json()["request_id"]
    response = _delete(stack, request_id)
    assert response.status_code in (200, 202), response.text
    payload = webhook.wait_for_delivery()
    assert payload["status"] == "Cancelled" and payload["skipped"] == 4 and payload["done"] == 0
    assert stack.wait_for_status(request_id, wanted="Cancelled")["skipped"] == 4
    assert image_server.requests == []


def test_cancel_refusals(stack, image_server) -> None:
    request_id = stack.upload(csv_for([[image_server.url("/img/1.jpg")]])).json()["request_id"]
    stack.wait_for_status(request_id)
    finished = _delete(stack, request_id)
    assert finished.status_code == 409 and "Completed" in finished.json()["error"]
    assert stack.status(request_id).json()["status"] == "Completed"
    assert _delete(stack, str(uuid.uuid4())).status_code == 404
    assert _delete(stack, "not-a-uuid").status_code == 400
    assert requests.get(f"{stack.base_url}/requests/{request_id}", timeout=30).status_code in (404, 405)
