"""The function folders' main() called directly, as the worker would, with fakes for the servers.

The database is a real SQLite file; the queue, Redis and outbound HTTP are fakes, so these run
without any server.
"""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

from shared import process, services
from shared.errors import PermanentFailure, TransientFailure
from shared.models import ImageStatus

upload_http = importlib.import_module("upload_http")
status_http = importlib.import_module("status_http")
process_queue = importlib.import_module("process_queue")
notify_queue = importlib.import_module("notify_queue")


class FakeQueue:
    queue_name = "fake"

    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_after = fail_after
        self.missing = False

    def get_queue_properties(self) -> dict[str, Any]:
        from azure.core.exceptions import ResourceNotFoundError

        if self.missing:
            raise ResourceNotFoundError("The specified queue does not exist.")
        return {}

    def send_message(self, content: str, visibility_timeout: int | None = None) -> None:
        from azure.core.exceptions import ResourceNotFoundError, ServiceRequestError

        if self.missing:
            raise ResourceNotFoundError("The specified queue does not exist.")
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ServiceRequestError("queue unreachable")
        self.sent.append(json.loads(content))

    def close(self) -> None:
        pass


class FakeTracker:
    def __init__(self) -> None:
        self.done: dict[str, set[int]] = {}

    def record(self, request_id: str, seq: int, total: int, seed: Any, reseed: bool = False) -> bool:
        finished = self.done.setdefault(request_id, set(seed()))
        if reseed:
            finished.update(seed())
        before = len(finished)
        finished.add(seq)
        return len(finished) == total and before < total


class Out:
    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, value: str) -> None:
        self.value = value

    def get(self) -> str | None:
        return self.value


@pytest.fixture()
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SQLITE_PATH", str(tmp_path / "db.sqlite3"))
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("WEBHOOK_SECRET", "")
    services.reset()
    fakes: dict[str, Any] = {"image_queue": FakeQueue(), "notify_queue": FakeQueue(), "tracker": FakeTracker()}
    monkeypatch.setitem(services._cache, "image_queue", fakes["image_queue"])
    monkeypatch.setitem(services._cache, "notify_queue", fakes["notify_queue"])
    monkeypatch.setitem(services._cache, "tracker", fakes["tracker"])
    yield fakes
    services._cache.pop("image_queue", None)
    services._cache.pop("notify_queue", None)
    services._cache.pop("tracker", None)
    services.reset()


def multipart(csv_text: str, **fields: str) -> tuple[bytes, str]:
    boundary = "imgpipe-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv_text}\r\n"
    ]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    body = "".join(parts) + f"--{boundary}--\r\n"
    return body.encode(), f"multipart/form-data; boundary={boundary}"


def upload(body: bytes, content_type: str, headers: dict[str, str] | None = None) -> func.HttpResponse:
    request = func.HttpRequest(
        method="POST", url="http://localhost:7071/api/upload", body=body,
        headers={"content-type": content_type, **(headers or {})},
    )
    return upload_http.main(request)


CSV = 'S. No.,Product Name,Input Image Urls\n1.,SKU1,"https://img.example/a.jpg,https://img.example/b.jpg"\n'


def test_upload_stores_and_fans_out_one_message_per_image(app: dict[str, Any]) -> None:
    body, content_type = multipart(CSV, webhook_url="https://hooks.example/x")
    response = upload(body, content_type)
    assert response.status_code == 202
    document = json.loads(response.get_body())
    assert response.headers["Location"] == f"http://localhost:7071/api/status/{document['request_id']}"
    sent = app["image_queue"].sent
    assert [(m["seq"], m["url"], m["total"]) for m in sent] == [
        (0, "https://img.example/a.jpg", 2), (1, "https://img.example/b.jpg", 2)
    ]
    record = services.store().get_request(document["request_id"])
    assert record is not None and record.fanout_completed_at is not None
    assert record.webhook_url == "https://hooks.example/x"


def test_a_missing_image_queue_answers_503_with_its_reason_and_stores_nothing(app: dict[str, Any]) -> None:
    app["image_queue"].missing = True
    body, content_type = multipart(CSV)
    response = upload(body, content_type)
    assert response.status_code == 503
    document = json.loads(response.get_body())
    assert "queue 'fake' does not exist" in document["reason"]
    assert app["image_queue"].sent == []
    assert services.store().stale_fanouts(datetime.now(UTC) + timedelta(days=1)) == []


def test_a_queue_deleted_between_the_check_and_the_fan_out_is_a_503_not_a_202(app: dict[str, Any]) -> None:
    queue = app["image_queue"]
    original = queue.get_queue_properties

    def vanish_after_check() -> dict[str, Any]:
        result = original()
        queue.missing = True
        return result

    queue.get_queue_properties = vanish_after_check
    body, content_type = multipart(CSV)
    response = upload(body, content_type)
    assert response.status_code == 503
    assert "does not exist" in json.loads(response.get_body())["reason"]


def test_an_interrupted_fan_out_is_resumed_by_the_same_idempotency_key(app: dict[str, Any]) -> None:
    many = "S. No.,Product Name,Input Image Urls\n" + "".join(
        f"{n},SKU{n},https://img.example/{n}.jpg\n" for n in range(1, 41)
    )
    app["image_queue"].fail_after = 10
    first = upload(many.encode(), "text/csv", {"idempotency-key": "k-1"})
    assert first.status_code == 202  # stored: the request is accepted and will be resumed
    request_id = json.loads(first.get_body())["request_id"]
    assert len(services.store().unenqueued_tasks(request_id)) >= 40 - 10 - 32
    app["image_queue"].fail_after = None
    again = upload(many.encode(), "text/csv", {"idempotency-key": "k-1"})
    assert json.loads(again.get_body())["request_id"] == request_id
    assert services.store().unenqueued_tasks(request_id) == []
    assert {m["seq"] for m in app["image_queue"].sent} == set(range(40))


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{}", "application/json", 415),
        (b"", "text/csv", 400),
        (b"S. No.,Product Name,Input Image Urls\n", "text/csv", 400),
        (b"S. No.,Product Name,Input Image Urls\n1,SKU,ftp://x/y.jpg\n", "text/csv", 400),
    ],
)
def test_upload_errors_are_client_errors_and_store_nothing(
    app: dict[str, Any], body: bytes, content_type: str, status: int
) -> None:
    response = upload(body, content_type)
    assert response.status_code == status
    assert json.loads(response.get_body())["problems"]
    assert app["image_queue"].sent == []


def test_status_of_malformed_and_unknown_ids(app: dict[str, Any]) -> None:
    def status(request_id: str) -> int:
        request = func.HttpRequest(
            method="GET", url=f"http://localhost/api/status/{request_id}", body=b"",
            route_params={"request_id": request_id},
        )
        return int(status_http.main(request).status_code)

    assert status("nope") == 400
    assert status("9b2f4a52-6f0e-4c4e-8f3a-0d1f2e3c4b5a") == 404


def queue_message(payload: dict[str, Any], dequeue_count: int = 1) -> QueueMessage:
    return QueueMessage(id="m1", body=json.dumps(payload).encode(), dequeue_count=dequeue_count)


def accepted_request(app: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    response = upload(CSV.encode(), "text/csv")
    request_id = json.loads(response.get_body())["request_id"]
    return request_id, [m for m in app["image_queue"].sent if m["request_id"] == request_id]


def test_permanent_failures_are_recorded_and_the_last_image_notifies(
    app: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id, messages = accepted_request(app)

    def refuse(*args: Any, **kwargs: Any) -> bytes:
        raise PermanentFailure("HTTP 404 from img.example")

    monkeypatch.setattr(process, "download", refuse)
    outputs = []
    for message in messages:
        out = Out()
        process_queue.main(queue_message(message), out)
        outputs.append(out.value)
    assert outputs[0] is None and json.loads(outputs[1] or "") == {"request_id": request_id}
    store = services.store()
    assert {store.image_status(request_id, m["seq"]) for m in messages} == {ImageStatus.FAILED}
    # A redelivery neither works the image again nor fires the notify a second time.
    again = Out()
    process_queue.main(queue_message(messages[0], dequeue_count=2), again)
    assert again.value is None


def test_transient_failures_raise_until_the_last_attempt(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    request_id, messages = accepted_request(app)

    def flaky(*args: Any, **kwargs: Any) -> bytes:
        raise TransientFailure("read timed out")

    monkeypatch.setattr(process, "download", flaky)
    with pytest.raises(TransientFailure):
        process_queue.main(queue_message(messages[0], dequeue_count=4), Out())
    assert services.store().image_status(request_id, 0) is ImageStatus.PENDING
    process_queue.main(queue_message(messages[0], dequeue_count=5), Out())
    images = services.store().list_images(request_id)
    assert images[0].status is ImageStatus.FAILED and "gave up after 5 attempts" in (images[0].error or "")


def test_notify_completes_once_and_never_sends_unsigned(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    body, content_type = multipart(CSV, webhook_url="https://hooks.example/x")
    request_id = json.loads(upload(body, content_type).get_body())["request_id"]
    store = services.store()
    for seq in (0, 1):
        store.record_failed(request_id, seq, "test")
    message = queue_message({"request_id": request_id})
    notify_queue.main(message)
    notify_queue.main(message)
    record = store.get_request(request_id)
    assert record is not None and record.status.value == "Completed"
    attempts = store.delivery_attempts(request_id)
    assert len(attempts) == 1 and not attempts[0].succeeded
    assert "WEBHOOK_SECRET is not set" in (attempts[0].error or "")
    assert app["notify_queue"].sent == []  # giving up schedules no retry


def test_a_message_that_is_not_an_image_task_fails_loudly(app: dict[str, Any]) -> None:
    bad = QueueMessage(id="m", body=base64.b64encode(b"garbage"), dequeue_count=1)
    with pytest.raises(PermanentFailure):
        process_queue.main(bad, Out())


class DownTracker:
    def record(self, *args: Any, **kwargs: Any) -> bool:
        raise TransientFailure("redis: ConnectionError")


def test_with_redis_down_the_database_decides_completion(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    request_id, messages = accepted_request(app)
    monkeypatch.setitem(services._cache, "tracker", DownTracker())

    def refuse(*args: Any, **kwargs: Any) -> bytes:
        raise PermanentFailure("HTTP 410")

    monkeypatch.setattr(process, "download", refuse)
    first, last = Out(), Out()
    process_queue.main(queue_message(messages[0]), first)
    process_queue.main(queue_message(messages[1]), last)
    assert first.value is None
    assert json.loads(last.value or "") == {"request_id": request_id}


def test_a_file_part_without_filename_is_read_as_the_csv(app: dict[str, Any]) -> None:
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\n\r\n--{boundary}--\r\n').encode()
    response = upload(body, f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 400
    problems = json.loads(response.get_body())["problems"]
    assert "no 'file' field" not in problems[0]["message"]
    assert "empty" in problems[0]["message"].lower()


def test_a_claim_left_by_a_dead_sender_is_taken_over_but_a_live_one_is_not(app: dict[str, Any]) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.models import DeliveryAttempt
    from shared.notify import SENDING, delivery_id_for

    body, content_type = multipart(CSV, webhook_url="https://hooks.example/x")
    request_id = json.loads(upload(body, content_type).get_body())["request_id"]
    store = services.store()
    for seq in (0, 1):
        store.record_failed(request_id, seq, "test")

    def claim(age: timedelta) -> DeliveryAttempt:
        return DeliveryAttempt(request_id, delivery_id_for(request_id), 1, datetime.now(UTC) - age,
                               "https://hooks.example/x", None, SENDING, False)

    assert store.record_delivery_attempt(claim(timedelta(seconds=1)))
    notify_queue.main(queue_message({"request_id": request_id}))
    assert len(store.delivery_attempts(request_id)) == 1  # someone is sending: leave it alone
    assert app["notify_queue"].sent == []
    notify_queue.main(queue_message({"request_id": request_id}, dequeue_count=2))
    assert len(store.delivery_attempts(request_id)) == 1  # a redelivery: maybe its own sender died...
    assert app["notify_queue"].sent == [{"request_id": request_id, "attempt": 1}]  # ...so look again later

    store.finish_delivery_attempt(request_id, 1, None, SENDING, False)
    with store._connection() as connection:  # age the claim as if its sender died long ago
        connection.execute("UPDATE webhook_deliveries SET attempted_at = ?",
                           (store.dialect.to_db(datetime.now(UTC) - timedelta(hours=1)),))
    notify_queue.main(queue_message({"request_id": request_id}, dequeue_count=2))
    attempts = store.delivery_attempts(request_id)
    assert [a.attempt for a in attempts] == [1]  # the dead sender's attempt is made again, same number
    assert "WEBHOOK_SECRET" in (attempts[0].error or "")


def test_a_failure_after_claiming_gives_the_claim_back(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import notify

    body, content_type = multipart(CSV, webhook_url="https://hooks.example/x")
    request_id = json.loads(upload(body, content_type).get_body())["request_id"]
    store = services.store()
    for seq in (0, 1):
        store.record_failed(request_id, seq, "test")

    def busy(*args: Any, **kwargs: Any) -> Any:
        raise TransientFailure("database is locked")

    monkeypatch.setattr(notify, "webhook_payload", busy)
    with pytest.raises(TransientFailure):
        notify_queue.main(queue_message({"request_id": request_id}))
    assert store.delivery_attempts(request_id) == []
    monkeypatch.undo()
    notify_queue.main(queue_message({"request_id": request_id}, dequeue_count=2))
    assert [a.attempt for a in store.delivery_attempts(request_id)] == [1]


def test_option_and_csv_problems_are_reported_together(app: dict[str, Any]) -> None:
    body, content_type = multipart("S. No.,Product Name,Input Image Urls\n1,,ftp://x/y.jpg\n", webhook_url="nope")
    problems = json.loads(upload(body, content_type).get_body())["problems"]
    columns = [p["column"] for p in problems]
    assert "webhook_url" in columns and "Product Name" in columns and "Input Image Urls" in columns


def test_an_upload_sweeps_fan_outs_left_stale(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    app["image_queue"].fail_after = 0
    first = upload(CSV.encode(), "text/csv")
    stuck = json.loads(first.get_body())["request_id"]
    assert len(services.store().unenqueued_tasks(stuck)) == 2
    app["image_queue"].fail_after = None
    monkeypatch.setenv("FANOUT_STALE_AFTER_SECONDS", "0")
    services.get_settings.cache_clear()
    upload(CSV.encode(), "text/csv")
    assert services.store().unenqueued_tasks(stuck) == []
    assert sum(1 for m in app["image_queue"].sent if m["request_id"] == stuck) == 2
