"""The pipeline end to end through the local host, on real Azurite, Redis and SQLite."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from devtools.http_servers import Reply
from devtools.samples import csv_for, photo_jpeg

pytestmark = pytest.mark.integration


def _q50_tables() -> dict[int, list[int]]:
    reference = io.BytesIO()
    Image.new("RGB", (16, 16), "gray").save(reference, "JPEG", quality=50)
    with Image.open(reference) as image:
        return {k: list(v) for k, v in image.quantization.items()}


def _local_path(url: str) -> Path:
    assert url.startswith("file:"), url
    return Path(unquote(urlsplit(url).path))


def test_happy_path_delivers_ordered_results_and_smaller_q50_jpegs(stack, image_server, webhook) -> None:
    products = [[image_server.url(f"/img/{p * 3 + i}.jpg") for i in range(3)] for p in range(4)]
    response = stack.upload(csv_for(products), webhook_url=webhook.url)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "Pending" and accepted["products"] == 4 and accepted["images"] == 12
    assert response.headers["Location"].endswith(f"/api/status/{accepted['request_id']}")

    payload = webhook.wait_for_delivery()
    assert payload["request_id"] == accepted["request_id"]
    assert payload["status"] == "Completed"
    inputs = [url for urls in products for url in urls]
    assert [item["input_url"] for item in payload["output_images"]] == inputs
    assert {item["status"] for item in payload["output_images"]} == {"Done"}

    tables = _q50_tables()
    for index, item in enumerate(payload["output_images"]):
        original = photo_jpeg(index)
        output = _local_path(item["output_url"]).read_bytes()
        assert len(output) < len(original)
        with Image.open(io.BytesIO(output)) as out, Image.open(io.BytesIO(original)) as src:
            assert out.format == "JPEG"
            assert out.size == src.size
            assert {k: list(v) for k, v in out.quantization.items()} == tables

    document = stack.status(accepted["request_id"]).json()
    assert document["status"] == "Completed"
    assert (document["done"], document["failed"], document["images"]) == (12, 0, 12)
    assert document["webhook"]["delivered"] is True
    assert webhook.deliveries.count(next(iter(webhook.accepted))) == len(webhook.deliveries)


def test_output_csv_lists_outputs_in_input_order(stack, image_server) -> None:
    products = [[image_server.url(f"/img/{p * 2 + i}.jpg") for i in range(2)] for p in range(3)]
    request_id = stack.upload(csv_for(products)).json()["request_id"]
    stack.wait_for_status(request_id)
    response = stack.status(request_id, format="csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls"]
    assert [row[1] for row in rows[1:]] == ["SKU1", "SKU2", "SKU3"]
    for row, urls in zip(rows[1:], products, strict=True):
        assert row[2].split(",") == urls
        outputs = row[3].split(",")
        assert len(outputs) == 2 and all(_local_path(url).exists() for url in outputs)


def test_mixed_failures_still_complete_with_reasons(stack, image_server, webhook) -> None:
    image_server_urls = [
        image_server.url("/img/1.jpg"),
        image_server.url("/missing.jpg"),  # 404: permanent
        image_server.url("/not-an-image.jpg"),
    ]
    image_server.route("/not-an-image.jpg", Reply(body=b"<html>hi</html>", headers={"Content-Type": "image/jpeg"}))
    request_id = stack.upload(csv_for([image_server_urls]), webhook_url=webhook.url).json()["request_id"]
    payload = webhook.wait_for_delivery()
    statuses = [(item["status"], bool(item["error"])) for item in payload["output_images"]]
    assert statuses == [("Done", False), ("Failed", True), ("Failed", True)]
    assert "404" in payload["output_images"][1]["error"]
    document = stack.status(request_id).json()
    assert (document["status"], document["done"], document["failed"]) == ("Completed", 1, 2)


def test_status_moves_pending_processing_completed(stack, image_server) -> None:
    slow = photo_jpeg(7)
    image_server.route("/slow.jpg", Reply(body=slow, delay_s=1.5, headers={"Content-Type": "image/jpeg"}))
    urls = [image_server.url("/slow.jpg"), image_server.url("/img/8.jpg")]
    image_server.route("/img/8.jpg", Reply(body=photo_jpeg(8), delay_s=4, headers={"Content-Type": "image/jpeg"}))
    request_id = stack.upload(csv_for([urls])).json()["request_id"]
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not seen or seen[-1] != "Completed"):
        state = stack.status(request_id).json()["status"]
        if not seen or seen[-1] != state:
            seen.append(state)
        time.sleep(0.1)
    assert seen == ["Pending", "Processing", "Completed"]


def test_per_image_results_and_unknown_or_malformed_ids(stack, image_server) -> None:
    request_id = stack.upload(csv_for([[image_server.url("/img/3.jpg")]])).json()["request_id"]
    stack.wait_for_status(request_id)
    results = stack.status(request_id, include="images").json()["results"]
    assert len(results) == 1 and results[0]["status"] == "Done" and results[0]["width"] == 480
    assert stack.status("9b2f4a52-6f0e-4c4e-8f3a-0d1f2e3c4b5a").status_code == 404
    for bad in ["not-a-uuid", "1", "' OR 1=1 --"]:
        assert stack.status(bad).status_code in {400, 404}


def test_blob_output_urls_can_be_fetched_by_the_client(make_stack, image_server) -> None:
    import requests

    stack = make_stack(OUTPUT_STORAGE="blob", OUTPUT_CONTAINER="processed-e2e")
    urls = [image_server.url("/img/21.jpg"), image_server.url("/img/22.jpg")]
    request_id = stack.upload(csv_for([urls])).json()["request_id"]
    stack.wait_for_status(request_id)
    results = stack.status(request_id, include="images").json()["results"]
    for index, item in enumerate(results):
        bare, _, sas = item["output_url"].partition("?")
        assert bare.endswith(f"/processed-e2e/{request_id}/{index:05d}.jpg")
        assert requests.get(bare, timeout=10).status_code in (403, 404)  # the container is private
        fetched = requests.get(item["output_url"], timeout=10)  # its read-only SAS lets the client in
        assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "image/jpeg"
        with Image.open(io.BytesIO(fetched.content)) as image:
            assert image.format == "JPEG" and image.size == (480, 360)
        assert len(fetched.content) < len(photo_jpeg(21 + index))
    output_csv = stack.status(request_id, format="csv").text
    assert output_csv.count("sig=") == 2  # the output CSV's URLs are signed too
