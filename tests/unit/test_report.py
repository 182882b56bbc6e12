"""The status document, the webhook payload and the output CSV."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from devtools.openapi_check import load_spec, validate_component
from shared.models import DeliveryAttempt, ImageRecord, ImageStatus, RequestRecord, RequestStatus
from shared.report import CSV_HEADER, iso_utc, output_csv, status_document, webhook_payload

REQUEST_ID = "0b8f5f3e-9d7a-4c1e-8f53-2a6f0e4b9c11"
T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def request(**changes: object) -> RequestRecord:
    fields: dict[str, object] = {
        "request_id": REQUEST_ID, "status": RequestStatus.COMPLETED,
        "webhook_url": "https://user:pw@hooks.example.test:8443/in/imgpipe?token=tok-123#frag",
        "products": 2, "images": 4, "done": 3, "failed": 1,
        "created_at": T0, "updated_at": T0 + timedelta(seconds=9),
        "completed_at": T0 + timedelta(seconds=9), "fanout_completed_at": T0 + timedelta(seconds=1),
    }
    fields.update(changes)
    return RequestRecord(**fields)  # type: ignore[arg-type]


def image(seq: int, serial: int, name: str, url_index: int, status: ImageStatus = ImageStatus.DONE,
          error: str | None = None) -> ImageRecord:
    done = status is ImageStatus.DONE
    return ImageRecord(
        request_id=REQUEST_ID, seq=seq, serial=serial, product_name=name, url_index=url_index,
        input_url=f"https://img.example.test/{serial}/{url_index}.jpg", status=status,
        output_url=f"https://out.example.test/{REQUEST_ID}/{seq:05d}.jpg" if done else None,
        error=error, bytes_in=1000 if done else None, bytes_out=400 if done else None,
        width=64 if done else None, height=48 if done else None, attempts=1,
        enqueued_at=T0, started_at=T0 + timedelta(seconds=2) if done else None,
        finished_at=T0 + timedelta(seconds=3) if status.terminal else None,
    )


def sample_images() -> list[ImageRecord]:
    images = [
        image(0, 1, "SKU1", 0),
        image(1, 1, "SKU1", 1, ImageStatus.FAILED, "HTTP 404 from the image server"),
        image(2, 1, "SKU1", 2),
        image(3, 2, "=HYPERLINK(\"http://evil\")", 0),
    ]
    return list(reversed(images))  # the store's order must not matter


def attempt(number: int, succeeded: bool, status_code: int | None, error: str | None) -> DeliveryAttempt:
    return DeliveryAttempt(
        request_id=REQUEST_ID, delivery_id="d-1", attempt=number,
        attempted_at=T0 + timedelta(seconds=10 * number), url=request().webhook_url or "",
        status_code=status_code, error=error, succeeded=succeeded,
    )


# --- timestamps ------------------------------------------------------------------------------


def test_iso_utc_uses_z_and_converts_other_zones() -> None:
    assert iso_utc(T0) == "2024-05-01T12:00:00.123Z"
    plus_two = timezone(timedelta(hours=2))
    assert iso_utc(datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)) == "2024-05-01T12:00:00.000Z"
    assert iso_utc(datetime(2024, 5, 1, 12, 0)) == "2024-05-01T12:00:00.000Z"  # naive = UTC
    assert iso_utc(None) is None


# --- status document -------------------------------------------------------------------------


def test_status_document_summary() -> None:
    document = status_document(request(), None, [])
    assert document["request_id"] == REQUEST_ID
    assert document["status"] == "Completed"
    assert (document["products"], document["images"], document["done"], document["failed"]) == (2, 4, 3, 1)
    assert document["created_at"] == "2024-05-01T12:00:00.123Z"
    assert document["completed_at"] == "2024-05-01T12:00:09.123Z"
    assert "results" not in document
    json.dumps(document)  # plain JSON types only


def test_status_document_pending_request_has_no_completion_time() -> None:
    document = status_document(request(status=RequestStatus.PENDING, completed_at=None), None, [])
    assert document["status"] == "Pending"
    assert document["completed_at"] is None


def test_webhook_url_is_shown_without_credentials_query_or_fragment() -> None:
    document = status_document(request(), None, [attempt(1, False, 503, "HTTP 503")])
    webhook = document["webhook"]
    assert isinstance(webhook, dict)
    assert webhook["url"] == "https://hooks.example.test:8443/in/imgpipe"
    assert "tok-123" not in json.dumps(document) and "pw@" not in json.dumps(document)


def test_webhook_summary_reports_the_latest_attempt() -> None:
    deliveries = [attempt(2, True, 200, None), attempt(1, False, 503, "HTTP 503")]
    webhook = status_document(request(), None, deliveries)["webhook"]
    assert webhook == {
        "url": "https://hooks.example.test:8443/in/imgpipe", "delivered": True, "attempts": 2,
        "last_status_code": 200, "last_error": None, "last_attempt_at": "2024-05-01T12:00:20.123Z",
    }


def test_webhook_summary_before_any_attempt() -> None:
    webhook = status_document(request(status=RequestStatus.PROCESSING), None, [])["webhook"]
    assert isinstance(webhook, dict)
    assert (webhook["delivered"], webhook["attempts"], webhook["last_attempt_at"]) == (False, 0, None)


def test_no_webhook_url_means_null_webhook() -> None:
    assert status_document(request(webhook_url=None), None, [])["webhook"] is None


def test_results_are_per_image_in_input_order() -> None:
    document = status_document(request(), sample_images(), [])
    results = document["results"]
    assert isinstance(results, list)
    assert [r["seq"] for r in results] == [0, 1, 2, 3]
    failed = results[1]
    assert failed["status"] == "Failed" and failed["output_url"] is None
    assert failed["error"] == "HTTP 404 from the image server"
    assert results[0]["finished_at"] == "2024-05-01T12:00:03.123Z"
    assert results[0]["bytes_out"] == 400
    json.dumps(document)


# --- webhook payload -------------------------------------------------------------------------


def test_webhook_payload_lists_every_image_in_input_order() -> None:
    payload = webhook_payload(request(), sample_images())
    assert payload["status"] == "Completed"
    assert (payload["images"], payload["done"], payload["failed"]) == (4, 3, 1)
    outputs = payload["output_images"]
    assert isinstance(outputs, list)
    assert [(o["serial"], o["input_url"]) for o in outputs] == [
        (1, "https://img.example.test/1/0.jpg"), (1, "https://img.example.test/1/1.jpg"),
        (1, "https://img.example.test/1/2.jpg"), (2, "https://img.example.test/2/0.jpg"),
    ]
    assert outputs[1] == {
        "serial": 1, "product_name": "SKU1", "input_url": "https://img.example.test/1/1.jpg",
        "output_url": None, "status": "Failed", "error": "HTTP 404 from the image server",
    }
    assert outputs[0]["output_url"] == f"https://out.example.test/{REQUEST_ID}/00000.jpg"
    assert payload["completed_at"] == "2024-05-01T12:00:09.123Z"
    json.dumps(payload)


def test_webhook_payload_counts_come_from_the_images() -> None:
    stale = request(done=0, failed=0)  # counters read before the last update landed
    payload = webhook_payload(stale, sample_images())
    assert (payload["done"], payload["failed"]) == (3, 1)


# --- output CSV ------------------------------------------------------------------------------


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_output_csv_one_row_per_product_with_aligned_url_slots() -> None:
    rows = parse(output_csv(sample_images()))
    assert rows[0] == list(CSV_HEADER)
    assert rows[1] == [
        "1", "SKU1",
        "https://img.example.test/1/0.jpg,https://img.example.test/1/1.jpg,https://img.example.test/1/2.jpg",
        f"https://out.example.test/{REQUEST_ID}/00000.jpg,,https://out.example.test/{REQUEST_ID}/00002.jpg",
    ]
    assert len(rows) == 3
    inputs, outputs = rows[1][2].split(","), rows[1][3].split(",")
    assert len(inputs) == len(outputs)


def test_output_csv_neutralises_formulas() -> None:
    rows = parse(output_csv(sample_images()))
    name = rows[2][1]
    assert not name.startswith(("=", "+", "-", "@"))
    assert "HYPERLINK" in name


def test_output_csv_all_failed_product_keeps_empty_slots() -> None:
    images = [image(seq, 7, "Gone", seq, ImageStatus.FAILED, "x") for seq in (0, 1)]
    rows = parse(output_csv(images))
    assert rows[1][3] == ","


def test_output_csv_groups_products_even_with_equal_serials() -> None:
    images = [image(0, 1, "A", 0), image(1, 1, "B", 0), image(2, 1, "B", 1)]
    rows = parse(output_csv(images))
    assert [row[1] for row in rows[1:]] == ["A", "B"]
    assert rows[2][2].count(",") == 1


def test_output_csv_pending_images_leave_empty_slots() -> None:
    images = [image(0, 3, "P", 0, ImageStatus.PENDING), image(1, 3, "P", 1)]
    rows = parse(output_csv(images))
    assert rows[1][3] == f",https://out.example.test/{REQUEST_ID}/00001.jpg"


def test_output_csv_of_no_images_is_just_the_header() -> None:
    assert parse(output_csv([])) == [list(CSV_HEADER)]
    assert output_csv([]).endswith("\r\n")


# --- order: the input's, never the serials' or the URLs' text order ------------------------------


def catalogue() -> list[ImageRecord]:
    """Serials out of order and URLs whose text order is not their position, as real CSVs have."""
    layout = [(9, "Zeta", ["https://cdn.example.test/z.jpg", "https://cdn.example.test/a.jpg"]),
              (3, "Alpha", ["https://cdn.example.test/m.jpg"]),
              (7, "Mid", ["https://cdn.example.test/y.jpg", "https://cdn.example.test/b.jpg",
                          "https://cdn.example.test/c.jpg"])]  # fmt: skip
    images: list[ImageRecord] = []
    for serial, name, urls in layout:
        for index, url in enumerate(urls):
            made = image(len(images), serial, name, index)
            images.append(ImageRecord(**{**made.__dict__, "input_url": url}))
    return images


def test_output_csv_keeps_the_uploads_product_and_url_order() -> None:
    images = catalogue()
    rows = parse(output_csv(list(reversed(images))))
    assert [(row[0], row[1]) for row in rows[1:]] == [("9", "Zeta"), ("3", "Alpha"), ("7", "Mid")]
    assert rows[1][2] == "https://cdn.example.test/z.jpg,https://cdn.example.test/a.jpg"
    assert rows[3][2].split(",") == [f"https://cdn.example.test/{c}.jpg" for c in "ybc"]
    outputs = rows[3][3].split(",")
    assert outputs == [f"https://out.example.test/{REQUEST_ID}/{seq:05d}.jpg" for seq in (3, 4, 5)]


def test_status_and_webhook_list_images_in_upload_order() -> None:
    images = catalogue()
    shuffled = [images[i] for i in (4, 0, 5, 2, 1, 3)]
    results = status_document(request(images=6), shuffled, [])["results"]
    assert isinstance(results, list)
    assert [r["seq"] for r in results] == list(range(6))
    outputs = webhook_payload(request(images=6), shuffled)["output_images"]
    assert isinstance(outputs, list)
    assert [o["input_url"] for o in outputs] == [i.input_url for i in images]
    assert [o["serial"] for o in outputs] == [9, 9, 3, 7, 7, 7]


# --- gaps found by mutation testing (make mutate) ------------------------------------------------


@pytest.fixture()
def local_zone_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's local time zone set away from UTC, so 'local' and 'UTC' give different answers."""
    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_iso_utc_never_depends_on_the_hosts_zone(local_zone_not_utc: None) -> None:
    assert iso_utc(datetime(2024, 5, 1, 12, 0)) == "2024-05-01T12:00:00.000Z"  # naive = UTC, not local
    plus_two = timezone(timedelta(hours=2))
    assert iso_utc(datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)) == "2024-05-01T12:00:00.000Z"


def test_image_result_shows_when_the_image_started_and_finished() -> None:
    [result] = status_document(request(images=1), [image(0, 1, "SKU1", 0)], [])["results"]  # type: ignore[misc]
    assert (result["started_at"], result["finished_at"]) == ("2024-05-01T12:00:02.123Z", "2024-05-01T12:00:03.123Z")


def test_webhook_summary_falls_back_to_the_url_it_posted_to() -> None:
    failed = attempt(1, False, 503, "HTTP 503")
    webhook = status_document(request(webhook_url=None), None, [failed])["webhook"]
    assert isinstance(webhook, dict)
    assert webhook["url"] == "https://hooks.example.test:8443/in/imgpipe"
    assert (webhook["last_status_code"], webhook["last_error"]) == (503, "HTTP 503")


def test_webhook_payload_completed_at_falls_back_to_the_last_update() -> None:
    payload = webhook_payload(request(completed_at=None), sample_images())
    assert payload["completed_at"] == "2024-05-01T12:00:09.123Z"


def test_only_done_images_show_an_output_url() -> None:
    # A Failed image can keep the URL of an output written before a later step failed.
    failed = ImageRecord(**{**image(0, 1, "SKU1", 0).__dict__, "status": ImageStatus.FAILED, "error": "x"})
    done_without_url = ImageRecord(**{**image(1, 1, "SKU1", 1).__dict__, "output_url": None})
    payload = webhook_payload(request(images=2), [failed, done_without_url])
    assert [o["output_url"] for o in payload["output_images"]] == [None, None]  # type: ignore[union-attr]
    assert parse(output_csv([failed, done_without_url]))[1][3] == ","


def test_documents_match_the_api_description() -> None:
    """Every field under its documented name (openapi.yaml forbids extra and requires the rest)."""
    spec = load_spec()
    images = catalogue()
    deliveries = [attempt(1, False, 503, "HTTP 503"), attempt(2, True, 200, None)]
    validate_component(spec, "StatusDocument", status_document(request(images=6), images, deliveries))
    validate_component(spec, "StatusDocument", status_document(request(status=RequestStatus.PENDING), None, []))
    validate_component(spec, "WebhookPayload", webhook_payload(request(images=6), images))
