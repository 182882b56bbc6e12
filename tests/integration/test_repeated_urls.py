"""A URL repeated within a request is downloaded and compressed once; every slot gets its output."""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest

from devtools.samples import csv_for

pytestmark = pytest.mark.integration


def test_repeats_are_fetched_once_and_fill_every_slot(stack, image_server, webhook) -> None:
    logo, a, b = (image_server.url(f"/img/{i}.jpg") for i in (1, 2, 3))
    missing = image_server.url("/missing.jpg")
    products = [[logo, a], [b, logo, missing], [missing, logo, a]]
    response = stack.upload(csv_for(products), webhook_url=webhook.url)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    assert response.json()["images"] == 8

    payload = webhook.wait_for_delivery()
    document = stack.wait_for_status(request_id)
    assert (document["images"], document["distinct_images"]) == (8, 4)
    assert (document["done"], document["failed"], document["skipped"]) == (6, 2, 0)
    fetched = Counter(r.path for r in image_server.requests)
    assert fetched == {"/img/1.jpg": 1, "/img/2.jpg": 1, "/img/3.jpg": 1, "/missing.jpg": 1}

    results = stack.status(request_id, include="images").json()["results"]
    outputs: dict[str, set[str | None]] = {}
    for result in results:
        outputs.setdefault(result["input_url"], set()).add(result["output_url"])
    assert all(len(urls) == 1 for urls in outputs.values()), outputs  # one output per distinct URL
    assert outputs[missing] == {None}
    assert len({next(iter(urls)) for url, urls in outputs.items() if url != missing}) == 3
    failed = [r for r in results if r["status"] == "Failed"]
    assert len(failed) == 2 and failed[0]["error"] == failed[1]["error"]

    rows = list(csv.reader(io.StringIO(stack.status(request_id, format="csv").text)))[1:]
    for row, urls in zip(rows, products, strict=True):
        slots = row[3].split(",")
        assert len(slots) == len(urls)
        for url, slot in zip(urls, slots, strict=True):
            assert slot == (next(iter(outputs[url])) or "")

    assert payload["status"] == "Completed" and payload["distinct_images"] == 4
    assert [item["input_url"] for item in payload["output_images"]] == [u for urls in products for u in urls]
    assert document["webhook"]["attempts"] == 1 and set(webhook.deliveries) == {webhook.deliveries[0]}
