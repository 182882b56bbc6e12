"""Per-request options end to end: validated with the CSV, stored, shown in the status, applied."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import requests
from PIL import Image

from devtools.samples import csv_for

pytestmark = pytest.mark.integration


def _output(url: str) -> Image.Image:
    assert url.startswith("file:"), url
    return Image.open(io.BytesIO(Path(unquote(urlsplit(url).path)).read_bytes()))


def _tables(quality: int) -> dict[int, list[int]]:
    reference = io.BytesIO()
    Image.new("RGB", (16, 16), "gray").save(reference, "JPEG", quality=quality)
    with Image.open(reference) as image:
        return {k: list(v) for k, v in image.quantization.items()}


def _upload(stack, csv_text: str, **fields: str) -> requests.Response:
    return requests.post(f"{stack.base_url}/upload", files={"file": ("p.csv", csv_text.encode(), "text/csv")},
                         data=fields, timeout=60)


def test_quality_and_max_dimension_are_applied_and_shown(stack, image_server) -> None:
    products = [[image_server.url(f"/img/{i}.jpg") for i in range(3)]]  # 480x360 photos
    response = _upload(stack, csv_for(products), quality="30", max_dimension="200", format="jpeg")
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    document = stack.wait_for_status(request_id)
    assert document["options"] == {"quality": 30, "size_target": 0.0, "format": "jpeg", "max_dimension": 200}
    results = stack.status(request_id, include="images").json()["results"]
    assert [r["status"] for r in results] == ["Done"] * 3
    for result in results:
        with _output(result["output_url"]) as image:
            assert image.format == "JPEG"
            assert image.size == (200, 150)  # long side 200, aspect kept
            assert {k: list(v) for k, v in image.quantization.items()} == _tables(30)


def test_webp_format_and_defaults(stack, image_server) -> None:
    forced = _upload(stack, csv_for([[image_server.url("/img/7.jpg")]]), format="webp", max_dimension="4000")
    default = _upload(stack, csv_for([[image_server.url("/img/8.jpg")]]))
    assert forced.status_code == default.status_code == 202
    forced_id, default_id = forced.json()["request_id"], default.json()["request_id"]
    stack.wait_for_status(forced_id)
    stack.wait_for_status(default_id)
    [webp] = stack.status(forced_id, include="images").json()["results"]
    with _output(webp["output_url"]) as image:
        assert image.format == "WEBP" and image.size == (480, 360)  # never upscaled
    document = stack.status(default_id, include="images").json()
    assert document["options"] == {"quality": 50, "size_target": 0.0, "format": "keep", "max_dimension": None}
    with _output(document["results"][0]["output_url"]) as image:
        assert image.format == "JPEG"
        assert {k: list(v) for k, v in image.quantization.items()} == _tables(50)


def test_every_bad_option_is_listed_with_the_csv_problems_and_nothing_stored(stack) -> None:
    bad_csv = "S. No.,Product Name,Input Image Urls\n1,A,ftp://x/y.jpg\n"
    response = _upload(stack, bad_csv, quality="96", size_target="1.5", format="gif", max_dimension="0")
    assert response.status_code == 400
    problems = response.json()["problems"]
    by_column = {p["column"]: p["message"] for p in problems}
    assert "1 to 95" in by_column["quality"] and "'96'" in by_column["quality"]
    assert "size_target" in by_column and "format" in by_column and "max_dimension" in by_column
    assert "keep, jpeg, webp" in by_column["format"]
    assert any(p["line"] == 2 for p in problems)  # the CSV's own problem, in the same answer
    with sqlite3.connect(stack.env["SQLITE_PATH"]) as db:
        assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 0


def test_options_as_query_parameters_for_a_raw_csv_body(stack, image_server) -> None:
    response = requests.post(f"{stack.base_url}/upload", params={"quality": "abc"},
                             data=csv_for([[image_server.url("/img/1.jpg")]]).encode(),
                             headers={"Content-Type": "text/csv"}, timeout=60)
    assert response.status_code == 400
    assert [p["column"] for p in response.json()["problems"]] == ["quality"]
