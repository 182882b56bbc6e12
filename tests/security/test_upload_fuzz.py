"""Hostile CSV uploads through the running host (a sample of the unit-level property tests).

Every answer is a 202 or a 4xx whose body lists the problems; never a 5xx; and an upload is stored
whole or not at all (rows counted in the stack's SQLite before and after each upload). No queue
function runs, so the URLs in generated files are never fetched.
"""

from __future__ import annotations

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.conftest import NO_QUEUE_FUNCTIONS
from tests.unit.test_csv_hypothesis import CSV_ALPHABET, ENCODINGS, HEADER_TEXT, MAX_URLS, CsvFile, csv_file

pytestmark = pytest.mark.integration

MAX_PRODUCTS = 8
MAX_CSV_BYTES = 200_000


@pytest.fixture()
def upload_stack(secure_stack):
    return secure_stack(MAX_PRODUCTS=str(MAX_PRODUCTS), MAX_CSV_BYTES=str(MAX_CSV_BYTES),
                        MAX_URLS_PER_ROW=str(MAX_URLS), **NO_QUEUE_FUNCTIONS)


uploads = st.one_of(
    csv_file(),
    st.binary(max_size=2000),
    st.builds(lambda text, encoding: (HEADER_TEXT + text).encode(encoding, errors="replace"),
              st.text(alphabet=CSV_ALPHABET | st.characters(codec="utf-8"), max_size=300),
              st.sampled_from(ENCODINGS)),
    st.just(b"S. No.,Product Name,Input Image Urls\n" + b"1,A," + b"h" * (MAX_CSV_BYTES + 10) + b"\n"),
)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.large_base_example, HealthCheck.data_too_large])
@given(upload=uploads, as_multipart=st.booleans())
def test_hostile_uploads_are_accepted_whole_or_refused_with_reasons(upload_stack, upload, as_multipart) -> None:
    data = upload.encode() if isinstance(upload, CsvFile) else upload
    before = upload_stack.row_counts()
    url = f"{upload_stack.base_url}/upload"
    if as_multipart:
        response = requests.post(url, files={"file": ("products.csv", data, "text/csv")}, timeout=60)
    else:
        response = requests.post(url, data=data, headers={"Content-Type": "text/csv"}, timeout=60)
    after = upload_stack.row_counts()

    assert response.status_code in {202, 400, 413}, (response.status_code, response.text[:500])
    document = response.json()
    if response.status_code != 202:
        assert after == before, "a refused upload left rows behind"
        assert document["error"] and document["problems"]
        assert all(p["message"] for p in document["problems"])
        if isinstance(upload, CsvFile) and response.status_code == 400 and len(upload.rows) <= MAX_PRODUCTS:
            bad_lines = {i + 2 for i, row in enumerate(upload.rows) if row.bad_column is not None}
            assert bad_lines <= {p["line"] for p in document["problems"]}
        return
    assert after == {"requests": before["requests"] + 1, "products": before["products"] + document["products"],
                     "images": before["images"] + document["images"]}
    if isinstance(upload, CsvFile):
        assert all(row.bad_column is None for row in upload.rows)
        assert document["products"] == len(upload.rows)
        assert document["images"] == sum(len(row.url_cells) for row in upload.rows)
