"""Upload validation through the running host: every refusal is explained and leaves no trace.

A refused upload must answer 400/413/415 with a JSON body whose problems name the line and the
column at fault, store nothing (the SQLite file has no request rows), send nothing to the image
queue and fetch nothing (the image server sees no request). Accepted variants of the format
(raw text/csv, BOM + CRLF, spilled URL cells, ``Serial Number``) are checked by what was stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.apphost import AppStack
from devtools.image_server import ImageServer
from devtools.samples import csv_for
from shared.queues import queue_client

pytestmark = pytest.mark.integration

MAX_PRODUCTS = 5
MAX_CSV_BYTES = 4096
URLS = "Input Image Urls"
SERIAL = "S. No."
NAME = "Product Name"


@pytest.fixture(scope="module")
def limited_stack(azurite, redis_server, tmp_path_factory) -> Iterator[AppStack]:  # type: ignore[no-untyped-def]
    """One host for every refusal (nothing is ever stored on it), with small limits to cross."""
    stack = AppStack(
        azurite,
        redis_server,
        tmp_path_factory.mktemp("limited"),
        {"MAX_PRODUCTS": str(MAX_PRODUCTS), "MAX_CSV_BYTES": str(MAX_CSV_BYTES)},
    )
    stack.bootstrap()
    stack.start_host()
    yield stack
    stack.stop()


def _request_rows(stack: AppStack) -> int:
    path = Path(stack.env["SQLITE_PATH"])
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM requests").fetchone()
        (images,) = db.execute("SELECT COUNT(*) FROM images").fetchone()
    return int(count) + int(images)


def _queued_images(stack: AppStack) -> int:
    client = queue_client(stack.env["AzureWebJobsStorage"], stack.env["IMAGE_QUEUE_NAME"])
    with client:
        return len(client.peek_messages(max_messages=32))


def _post_raw(stack: AppStack, body: bytes, content_type: str, **kwargs: Any) -> requests.Response:
    return requests.post(
        f"{stack.base_url}/upload", data=body, headers={"Content-Type": content_type}, timeout=60, **kwargs
    )


def _refused(stack: AppStack, images: ImageServer, response: requests.Response, status: int) -> list[dict[str, Any]]:
    """Assert the refusal left no trace; return its problems."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["problems"], list) and body["problems"], body
    assert body["error"]
    assert _request_rows(stack) == 0
    assert _queued_images(stack) == 0
    assert images.requests == []
    return list(body["problems"])


def _only(problems: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(problems) == 1, problems
    return problems[0]


def _row(serial: str, name: str, urls: str) -> str:
    return f'{serial},{name},"{urls}"'


def _file(*rows: str, header: str = f"{SERIAL},{NAME},{URLS}") -> bytes:
    return ("\r\n".join([header, *rows]) + "\r\n").encode()


# --- refusals, one cause each ----------------------------------------------------------------------


def test_missing_column(limited_stack, image_server) -> None:
    data = _file("1,SKU1", header=f"{SERIAL},{NAME}")
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(data), 400))
    assert problem["line"] == 1 and URLS in problem["message"]


@pytest.mark.parametrize("serial", ["abc", "0", "-3", "1.5"])
def test_bad_serial(limited_stack, image_server, serial) -> None:
    data = _file(_row(serial, "SKU1", image_server.url("/img/1.jpg")))
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(data), 400))
    assert (problem["line"], problem["column"]) == (2, SERIAL)
    assert "serial" in problem["message"]


def test_duplicate_serial(limited_stack, image_server) -> None:
    data = _file(_row("1", "SKU1", image_server.url("/img/1.jpg")), _row("1.", "SKU2", image_server.url("/img/2.jpg")))
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(data), 400))
    assert (problem["line"], problem["column"]) == (3, SERIAL)
    assert "line 2" in problem["message"]


def test_empty_name(limited_stack, image_server) -> None:
    data = _file(_row("1", "  ", image_server.url("/img/1.jpg")))
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(data), 400))
    assert (problem["line"], problem["column"]) == (2, NAME)


def test_no_url(limited_stack, image_server) -> None:
    data = _file(_row("1", "SKU1", image_server.url("/img/1.jpg")), _row("2", "SKU2", " , "))
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(data), 400))
    assert (problem["line"], problem["column"]) == (3, URLS)
    assert "no image URL" in problem["message"]


@pytest.mark.parametrize("bad", ["ftp://example.com/a.jpg", "file:///etc/passwd", "javascript:alert(1)", "/img/1.jpg"])
def test_bad_scheme(limited_stack, image_server, bad) -> None:
    data = _file(_row("1", "SKU1", f"{image_server.url('/img/1.jpg')},{bad}"))
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(data), 400))
    assert (problem["line"], problem["column"]) == (2, URLS)
    assert problem["message"].startswith("URL 2 ") and "http" in problem["message"]
    assert bad not in problem["message"]  # URLs are not echoed back: they may carry credentials


def test_url_too_long(limited_stack, image_server) -> None:
    long_url = image_server.url("/img/1.jpg?pad=" + "a" * 2100)
    data = _file(_row("1", "SKU1", long_url))
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(data), 400))
    assert (problem["line"], problem["column"]) == (2, URLS)
    assert "longer than 2048" in problem["message"]


def test_too_many_urls_in_a_row(limited_stack, image_server) -> None:
    urls = ",".join(image_server.url(f"/img/{i}.jpg") for i in range(21))
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(_file(_row("1", "SKU1", urls))), 400))
    assert (problem["line"], problem["column"]) == (2, URLS)
    assert "21 image URLs" in problem["message"]


def test_not_utf8(limited_stack, image_server) -> None:
    data = _file(_row("1", "Caf\xe9", image_server.url("/img/1.jpg"))).replace("Caf\xe9".encode(), b"Caf\xe9")
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(data), 400))
    assert problem["line"] == 2 and "UTF-8" in problem["message"]


def test_every_problem_is_listed_at_once(limited_stack, image_server) -> None:
    data = _file(
        _row("x", "SKU1", image_server.url("/img/1.jpg")),
        _row("2", "", image_server.url("/img/2.jpg")),
        _row("3", "SKU3", "gopher://old.example/1"),
    )
    problems = _refused(limited_stack, image_server, limited_stack.upload(data), 400)
    assert [(p["line"], p["column"]) for p in problems] == [(2, SERIAL), (3, NAME), (4, URLS)]


@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_empty_body(limited_stack, image_server, how) -> None:
    response = limited_stack.upload(b"") if how == "multipart" else _post_raw(limited_stack, b"", "text/csv")
    problem = _only(_refused(limited_stack, image_server, response, 400))
    assert "empty" in problem["message"]


def test_header_only(limited_stack, image_server) -> None:
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(_file()), 400))
    assert "no product rows" in problem["message"]


def test_multipart_without_file_field(limited_stack, image_server) -> None:
    csv_text = _file(_row("1", "SKU1", image_server.url("/img/1.jpg")))
    response = requests.post(
        f"{limited_stack.base_url}/upload", timeout=60, files={"csv": ("products.csv", csv_text, "text/csv")}
    )
    problem = _only(_refused(limited_stack, image_server, response, 400))
    assert problem["column"] == "file"


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded", "image/png"])
def test_wrong_content_type(limited_stack, image_server, content_type) -> None:
    csv_text = _file(_row("1", "SKU1", image_server.url("/img/1.jpg")))
    _refused(limited_stack, image_server, _post_raw(limited_stack, csv_text, content_type), 415)


def test_over_max_products(limited_stack, image_server) -> None:
    products = [[image_server.url(f"/img/{i}.jpg")] for i in range(MAX_PRODUCTS + 1)]
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(csv_for(products)), 413))
    assert problem["line"] == MAX_PRODUCTS + 2  # the header is line 1
    assert str(MAX_PRODUCTS) in problem["message"]


@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_over_max_csv_bytes(limited_stack, image_server, how) -> None:
    products = [[image_server.url(f"/img/{p * 20 + i}.jpg?x={'y' * 40}") for i in range(20)] for p in range(3)]
    data = csv_for(products).encode()
    assert len(data) > MAX_CSV_BYTES and len(products) <= MAX_PRODUCTS
    response = limited_stack.upload(data) if how == "multipart" else _post_raw(limited_stack, data, "text/csv")
    problem = _only(_refused(limited_stack, image_server, response, 413))
    assert str(MAX_CSV_BYTES) in problem["message"]


@pytest.mark.parametrize("webhook_url", ["ftp://hooks.example/x", "not a url", "https://user:pw@hooks.example/x"])
def test_bad_webhook_url(limited_stack, image_server, webhook_url) -> None:
    data = _file(_row("1", "SKU1", image_server.url("/img/1.jpg")))
    problem = _only(_refused(limited_stack, image_server, limited_stack.upload(data, webhook_url=webhook_url), 400))
    assert problem["column"] == "webhook_url"
    assert "pw" not in problem["message"]


# --- accepted variants: what was stored proves how the file was read -------------------------------


def _stored_inputs(stack: AppStack, request_id: str) -> list[tuple[int, str, str]]:
    results = stack.wait_for_status(request_id, timeout_s=60)
    assert results["failed"] == 0, results
    rows = stack.status(request_id, include="images").json()["results"]
    return [(row["serial"], row["product_name"], row["input_url"]) for row in rows]


def test_raw_text_csv_body_is_accepted(stack, image_server) -> None:
    urls = [image_server.url("/img/1.jpg"), image_server.url("/img/2.jpg")]
    response = _post_raw(stack, _file(_row("1", "SKU1", ",".join(urls))), "text/csv")
    assert response.status_code == 202, response.text
    assert _stored_inputs(stack, response.json()["request_id"]) == [(1, "SKU1", urls[0]), (1, "SKU1", urls[1])]


def test_bom_and_crlf_are_accepted(stack, image_server) -> None:
    url = image_server.url("/img/3.jpg")
    data = "\ufeff".encode() + _file(_row("7", "Café", url))
    assert b"\r\n" in data
    response = stack.upload(data)
    assert response.status_code == 202, response.text
    assert _stored_inputs(stack, response.json()["request_id"]) == [(7, "Café", url)]


def test_spilled_urls_in_extra_columns_are_accepted(stack, image_server) -> None:
    urls = [image_server.url(f"/img/{i}.jpg") for i in range(4)]
    data = _file(f"1,SKU1,{urls[0]},{urls[1]}", f'2.,SKU2,"{urls[2]}",{urls[3]}')
    response = stack.upload(data)
    assert response.status_code == 202, response.text
    assert response.json()["images"] == 4
    stored = _stored_inputs(stack, response.json()["request_id"])
    assert stored == [(1, "SKU1", urls[0]), (1, "SKU1", urls[1]), (2, "SKU2", urls[2]), (2, "SKU2", urls[3])]


def test_serial_number_header_is_accepted(stack, image_server) -> None:
    url = image_server.url("/img/5.jpg")
    response = stack.upload(_file(_row("12", "SKU12", url), header=f"Serial Number,{NAME},{URLS}"))
    assert response.status_code == 202, response.text
    assert _stored_inputs(stack, response.json()["request_id"]) == [(12, "SKU12", url)]
