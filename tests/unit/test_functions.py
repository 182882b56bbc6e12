"""The function folders' main() called directly, as the worker would, with fakes for the servers.

The database is a real SQLite file; the queues, the fan-in, outputs and the webhook are the
in-memory ones of ``shared.memory``, handed in through ``functions_adapter.set_dependencies``, so
these run without any server.
"""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from shared import functions_adapter, process
from shared.container import Dependencies
from shared.errors import PermanentFailure, TransientFailure
from shared.memory import memory_dependencies
from shared.models import ImageStatus
from shared.settings import Settings
from shared.store import Store

upload_http = importlib.import_module("upload_http")
status_http = importlib.import_module("status_http")
process_queue = importlib.import_module("process_queue")
notify_queue = importlib.import_module("notify_queue")
fanout_queue = importlib.import_module("fanout_queue")
fanout_sweep = importlib.import_module("fanout_sweep")

# What upload_http wrote through its fan-out output binding, in order (cleared by the fixture).
FANOUT_WRITTEN: list[str] = []


class Out:
    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = Settings.from_env({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "OUTPUT_DIR": str(tmp_path / "out"),
    })
    store = Store.for_sqlite(settings.sqlite_path)
    store.ensure_schema()
    deps = memory_dependencies(settings, store)
    functions_adapter.set_dependencies(deps)
    FANOUT_WRITTEN.clear()
    yield {"deps": deps, "store": store, "image_queue": deps.image_queue, "notify_queue": deps.notify_queue}
    functions_adapter.set_dependencies(None)
    deps.close()


def use(app: dict[str, Any], **changes: Any) -> None:
    """Swap some of the test's dependencies, as a worker built with them would have."""
    deps: Dependencies = replace(app["deps"], **changes)
    app["deps"] = deps
    functions_adapter.set_dependencies(deps)


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
    fanout = Out()
    response = upload_http.main(request, fanout)
    if fanout.value is not None:
        FANOUT_WRITTEN.append(fanout.value)
    return response


def run_fan_out(messages: list[str], dequeue_count: int = 1) -> list[dict[str, Any]]:
    """Run fanout_queue over range messages and every sub-range they write; the image messages."""
    pending, images = list(messages), []
    while pending:
        ranges, written, poison = Out(), Out(), Out()
        fanout_queue.main(queue_message(json.loads(pending.pop(0)), dequeue_count), ranges, written, poison)
        assert poison.value is None
        pending += ranges.value or []
        images += [json.loads(message) for message in written.value or []]
    return images


CSV = 'S. No.,Product Name,Input Image Urls\n1.,SKU1,"https://img.example/a.jpg,https://img.example/b.jpg"\n'


def test_upload_stores_and_starts_the_fan_out_with_one_message(app: dict[str, Any]) -> None:
    body, content_type = multipart(CSV, webhook_url="https://hooks.example/x")
    response = upload(body, content_type)
    assert response.status_code == 202
    document = json.loads(response.get_body())
    assert response.headers["Location"] == f"http://localhost:7071/api/status/{document['request_id']}"
    assert [json.loads(m) for m in FANOUT_WRITTEN] == [{"request_id": document["request_id"], "start": 0, "end": 2}]
    sent = run_fan_out(FANOUT_WRITTEN)
    assert [(m["seq"], m["url"], m["total"]) for m in sent] == [
        (0, "https://img.example/a.jpg", 2), (1, "https://img.example/b.jpg", 2)
    ]
    record = app["store"].get_request(document["request_id"])
    assert record is not None and record.fanout_completed_at is not None
    assert record.webhook_url == "https://hooks.example/x"


def test_a_missing_image_queue_answers_503_with_its_reason_and_starts_nothing(app: dict[str, Any]) -> None:
    app["image_queue"].missing = True
    FANOUT_WRITTEN.clear()
    body, content_type = multipart(CSV)
    response = upload(body, content_type)
    assert response.status_code == 503
    document = json.loads(response.get_body())
    assert document["reason"] == f"queue '{app['image_queue'].name}' does not exist (create it with the deployment)"
    assert app["image_queue"].sent == [] and FANOUT_WRITTEN == []


MANY = "S. No.,Product Name,Input Image Urls\n" + "".join(
    f"{n},SKU{n},https://img.example/{n}.jpg\n" for n in range(1, 41)
)


def test_a_replay_restarts_a_fan_out_whose_message_was_lost_and_nothing_once_done(app: dict[str, Any]) -> None:
    first = upload(MANY.encode(), "text/csv", {"idempotency-key": "k-1"})
    request_id = json.loads(first.get_body())["request_id"]
    FANOUT_WRITTEN.clear()  # as if the host died before writing the output binding
    again = upload(MANY.encode(), "text/csv", {"idempotency-key": "k-1"})
    assert json.loads(again.get_body())["request_id"] == request_id
    assert sorted(m["seq"] for m in run_fan_out(FANOUT_WRITTEN)) == list(range(40))
    FANOUT_WRITTEN.clear()
    upload(MANY.encode(), "text/csv", {"idempotency-key": "k-1"})
    assert FANOUT_WRITTEN == []  # the fan-out is complete: a replay starts nothing


def test_a_small_leaf_size_fans_out_as_a_tree_covering_every_image_once(
    app: dict[str, Any]
) -> None:
    use(app, settings=replace(app["deps"].settings, fanout_leaf_size=3, fanout_branching=2))
    request_id = json.loads(upload(MANY.encode(), "text/csv").get_body())["request_id"]
    depth, level, seqs = 0, list(FANOUT_WRITTEN), []
    while level:
        depth += 1
        next_level: list[str] = []
        for message in level:
            ranges, written = Out(), Out()
            fanout_queue.main(queue_message(json.loads(message)), ranges, written, Out())
            assert len(written.value or []) <= 3 and len(ranges.value or []) <= 2
            next_level += ranges.value or []
            seqs += [json.loads(m)["seq"] for m in written.value or []]
        level = next_level
    assert sorted(seqs) == list(range(40)) and depth >= 4
    record = app["store"].get_request(request_id)
    assert record is not None and record.fanout_completed_at is not None


def test_a_redelivered_range_sends_its_pending_images_again_but_not_finished_ones(app: dict[str, Any]) -> None:
    request_id = json.loads(upload(MANY.encode(), "text/csv").get_body())["request_id"]
    first = run_fan_out(FANOUT_WRITTEN)
    app["store"].record_failed(request_id, 0, "test")
    again = run_fan_out(FANOUT_WRITTEN, dequeue_count=2)
    assert sorted(m["seq"] for m in again) == list(range(1, 40))
    assert len(first) == 40


def test_a_resumed_range_skips_handed_out_images_only_on_its_first_delivery(app: dict[str, Any]) -> None:
    from shared.fanout import root_message

    request_id = json.loads(upload(MANY.encode(), "text/csv").get_body())["request_id"]
    app["store"].mark_enqueued_range(request_id, 0, 25)
    resume = root_message(request_id, 40, resume=True)
    assert sorted(m["seq"] for m in run_fan_out([resume])) == list(range(25, 40))
    # A redelivery may follow a crash after the marks but before the host wrote the messages.
    assert sorted(m["seq"] for m in run_fan_out([resume], dequeue_count=2)) == list(range(40))


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
    assert FANOUT_WRITTEN == []


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
    return request_id, [m for m in run_fan_out(FANOUT_WRITTEN) if m["request_id"] == request_id]


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
        process_queue.main(queue_message(message), out, Out())
        outputs.append(out.value)
    assert outputs[0] is None and json.loads(outputs[1] or "") == {"request_id": request_id}
    store = app["store"]
    assert {store.image_status(request_id, m["seq"]) for m in messages} == {ImageStatus.FAILED}
    # A redelivery neither works the image again nor fires the notify a second time.
    again = Out()
    process_queue.main(queue_message(messages[0], dequeue_count=2), again, Out())
    assert again.value is None


def test_transient_failures_raise_until_the_last_attempt_when_no_retry_can_be_queued(
    app: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id, messages = accepted_request(app)

    def flaky(*args: Any, **kwargs: Any) -> bytes:
        raise TransientFailure("read timed out")

    monkeypatch.setattr(process, "download", flaky)
    app["image_queue"].fail_after = 0  # the delayed retry cannot be sent: the host's redelivery is all there is
    with pytest.raises(TransientFailure):
        process_queue.main(queue_message(messages[0], dequeue_count=4), Out(), Out())
    assert app["store"].image_status(request_id, 0) is ImageStatus.PENDING
    process_queue.main(queue_message(messages[0], dequeue_count=5), Out(), Out())
    images = app["store"].list_images(request_id)
    assert images[0].status is ImageStatus.FAILED and "gave up after 5 attempts" in (images[0].error or "")
    assert "read timed out" in (images[0].error or "")


def test_notify_completes_once_and_never_sends_unsigned(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    body, content_type = multipart(CSV, webhook_url="https://hooks.example/x")
    request_id = json.loads(upload(body, content_type).get_body())["request_id"]
    store = app["store"]
    for seq in (0, 1):
        store.record_failed(request_id, seq, "test")
    message = queue_message({"request_id": request_id})
    notify_queue.main(message, Out())
    notify_queue.main(message, Out())
    record = store.get_request(request_id)
    assert record is not None and record.status.value == "Completed"
    attempts = store.delivery_attempts(request_id)
    assert len(attempts) == 1 and not attempts[0].succeeded
    assert "WEBHOOK_SECRET is not set" in (attempts[0].error or "")
    assert app["notify_queue"].sent == []  # giving up schedules no retry


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",  # not JSON (here: the base64 of the text, as a host that did not decode it hands it over)
        b"\xff\xfe not utf-8",
        b"[1, 2]",  # JSON, but not an object
        b'{"request_id": "r", "seq": 0}',  # lacks url and total
        b'{"request_id": "r", "seq": 3, "url": "https://img.example/a.jpg", "total": 2}',
    ],
)
def test_a_message_that_is_not_an_image_task_goes_to_poison_at_once(
    app: dict[str, Any], body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    message = QueueMessage(id="m-bad", body=base64.b64encode(body) if body == b"garbage" else body, dequeue_count=1)
    notify, poison = Out(), Out()
    process_queue.main(message, notify, poison)  # returns: the host deletes it instead of retrying it 5 times
    assert poison.value == message.get_body()  # the very bytes that failed
    assert notify.value is None
    assert any("m-bad" in r.getMessage() and "poison" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"request_id": ""}'])
def test_a_malformed_notify_message_goes_to_poison_at_once(app: dict[str, Any], body: bytes) -> None:
    poison = Out()
    notify_queue.main(QueueMessage(id="n-bad", body=body, dequeue_count=1), poison)
    assert poison.value == body
    assert app["notify_queue"].sent == []


def test_a_config_error_is_a_500_with_an_operator_log_line_and_no_secret(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-connection-string-AccountKey=abc"
    functions_adapter.set_dependencies(None)
    monkeypatch.setenv("AzureWebJobsStorage", secret)
    monkeypatch.setenv("JPEG_QUALITY", "ninety")  # a setting no retry can fix
    try:
        response = upload(CSV.encode(), "text/csv")
    finally:
        functions_adapter.set_dependencies(None)
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert secret not in response.get_body().decode()
    lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("JPEG_QUALITY" in line and "configuration" in line for line in lines)
    assert not any(secret in line for line in lines)


class DownTracker:
    def record(self, *args: Any, **kwargs: Any) -> bool:
        raise TransientFailure("redis: ConnectionError")


def test_with_redis_down_the_database_decides_completion(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    request_id, messages = accepted_request(app)
    use(app, completion=DownTracker())

    def refuse(*args: Any, **kwargs: Any) -> bytes:
        raise PermanentFailure("HTTP 410")

    monkeypatch.setattr(process, "download", refuse)
    first, last = Out(), Out()
    process_queue.main(queue_message(messages[0]), first, Out())
    process_queue.main(queue_message(messages[1]), last, Out())
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
    from datetime import timedelta

    from shared.models import DeliveryAttempt
    from shared.notify import SENDING, delivery_id_for

    body, content_type = multipart(CSV, webhook_url="https://hooks.example/x")
    request_id = json.loads(upload(body, content_type).get_body())["request_id"]
    store = app["store"]
    for seq in (0, 1):
        store.record_failed(request_id, seq, "test")

    def claim(age: timedelta) -> DeliveryAttempt:
        return DeliveryAttempt(request_id, delivery_id_for(request_id), 1, datetime.now(UTC) - age,
                               "https://hooks.example/x", None, SENDING, False)

    assert store.record_delivery_attempt(claim(timedelta(seconds=1)))
    notify_queue.main(queue_message({"request_id": request_id}), Out())
    assert len(store.delivery_attempts(request_id)) == 1  # someone is sending: leave it alone
    assert app["notify_queue"].sent == []
    notify_queue.main(queue_message({"request_id": request_id}, dequeue_count=2), Out())
    assert len(store.delivery_attempts(request_id)) == 1  # a redelivery: maybe its own sender died...
    assert app["notify_queue"].sent == [{"request_id": request_id, "attempt": 1}]  # ...so look again later

    store.finish_delivery_attempt(request_id, 1, None, SENDING, False)
    with store._connection() as connection:  # age the claim as if its sender died long ago
        connection.execute("UPDATE webhook_deliveries SET attempted_at = ?",
                           (store.dialect.to_db(datetime.now(UTC) - timedelta(hours=1)),))
    notify_queue.main(queue_message({"request_id": request_id}, dequeue_count=2), Out())
    attempts = store.delivery_attempts(request_id)
    assert [a.attempt for a in attempts] == [1]  # the dead sender's attempt is made again, same number
    assert "WEBHOOK_SECRET" in (attempts[0].error or "")


def test_a_failure_after_claiming_gives_the_claim_back(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import notify

    body, content_type = multipart(CSV, webhook_url="https://hooks.example/x")
    request_id = json.loads(upload(body, content_type).get_body())["request_id"]
    store = app["store"]
    for seq in (0, 1):
        store.record_failed(request_id, seq, "test")

    def busy(*args: Any, **kwargs: Any) -> Any:
        raise TransientFailure("database is locked")

    monkeypatch.setattr(notify, "webhook_payload", busy)
    with pytest.raises(TransientFailure):
        notify_queue.main(queue_message({"request_id": request_id}), Out())
    assert store.delivery_attempts(request_id) == []
    monkeypatch.undo()
    notify_queue.main(queue_message({"request_id": request_id}, dequeue_count=2), Out())
    assert [a.attempt for a in store.delivery_attempts(request_id)] == [1]


def test_option_and_csv_problems_are_reported_together(app: dict[str, Any]) -> None:
    body, content_type = multipart("S. No.,Product Name,Input Image Urls\n1,,ftp://x/y.jpg\n", webhook_url="nope")
    problems = json.loads(upload(body, content_type).get_body())["problems"]
    columns = [p["column"] for p in problems]
    assert "webhook_url" in columns and "Product Name" in columns and "Input Image Urls" in columns


def test_the_sweep_restarts_only_fan_outs_that_made_no_progress(app: dict[str, Any]) -> None:
    stuck = json.loads(upload(CSV.encode(), "text/csv").get_body())["request_id"]
    FANOUT_WRITTEN.clear()  # its fan-out message was never written
    done = json.loads(upload(CSV.encode(), "text/csv").get_body())["request_id"]
    run_fan_out(FANOUT_WRITTEN)
    timer, restarts = TimerRequest(), Out()
    fanout_sweep.main(timer, restarts)
    assert restarts.value is None  # nothing is stale yet
    use(app, settings=replace(app["deps"].settings, fanout_stale_after_s=0.0))
    fanout_sweep.main(timer, restarts)
    assert [json.loads(m)["request_id"] for m in restarts.value] == [stuck]
    assert {(m["request_id"], m["seq"]) for m in run_fan_out(restarts.value)} == {(stuck, 0), (stuck, 1)}
    assert done != stuck


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"request_id": "r", "start": 5, "end": 2}'])
def test_a_malformed_fan_out_message_goes_to_poison_at_once(app: dict[str, Any], body: bytes) -> None:
    ranges, images, poison = Out(), Out(), Out()
    fanout_queue.main(QueueMessage(id="f-bad", body=body, dequeue_count=1), ranges, images, poison)
    assert poison.value == body  # the very bytes that failed
    assert ranges.value is None and images.value is None


@pytest.mark.parametrize("module", [upload_http, process_queue, notify_queue, fanout_queue, fanout_sweep])
def test_the_worker_accepts_every_output_annotation(module: Any) -> None:
    """The Python worker refuses to load a function whose output annotation its converter rejects
    (azure-functions: ``QueueMessageOutConverter.check_output_type_annotation``; ``list[str]`` is
    rejected, ``typing.List[str]`` accepted)."""
    import typing

    from azure.functions.queue import QueueMessageOutConverter

    bindings = json.loads((Path(module.__file__).parent / "function.json").read_text())["bindings"]
    hints = typing.get_type_hints(module.main)
    for binding in bindings:
        if binding["type"] == "queue" and binding["direction"] == "out":
            (inner,) = typing.get_args(hints[binding["name"]])
            assert QueueMessageOutConverter.check_output_type_annotation(inner), binding["name"]
