"""Transient download failures retried with growing delays (issue 11, finding 9).

``process_queue.main`` called as the worker calls it, over a real SQLite store and the in-memory
image queue, which keeps each message sent with its delay. A "delivery" below hands the next
message the queue holds to ``main``, as the host does once the message becomes visible.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

from shared import functions_adapter, process
from shared.errors import ConfigError, TransientFailure
from shared.memory import MemoryQueue, memory_dependencies
from shared.models import ImageOutcome, ImageStatus
from shared.retry_policy import RetrySchedule
from shared.settings import Settings
from shared.store import Store

upload_http = importlib.import_module("upload_http")
process_queue = importlib.import_module("process_queue")

SCHEDULE = (10.0, 30.0, 120.0, 300.0)
CSV = 'S. No.,Product Name,Input Image Urls\n1.,SKU1,"https://img.example/a.jpg,https://img.example/b.jpg"\n'


class Out:
    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, value: str) -> None:
        self.value = value


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = Settings.from_env({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "IMAGE_RETRY_DELAYS_SECONDS": ",".join(f"{d:g}" for d in SCHEDULE),
    })
    store = Store.for_sqlite(settings.sqlite_path)
    store.ensure_schema()
    deps = memory_dependencies(settings, store)
    functions_adapter.set_dependencies(deps)
    request = func.HttpRequest(method="POST", url="http://localhost/api/upload", body=CSV.encode(),
                               headers={"content-type": "text/csv"})  # fmt: skip
    request_id = json.loads(upload_http.main(request).get_body())["request_id"]
    yield {"store": store, "queue": deps.image_queue, "request_id": request_id}
    functions_adapter.set_dependencies(None)
    deps.close()


class Source:
    """Stands in for ``download``: fails transiently ``failures`` times per URL, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: dict[str, int] = {}

    def __call__(self, session: Any, url: str, **kwargs: Any) -> bytes:
        self.calls[url] = self.calls.get(url, 0) + 1
        if self.calls[url] <= self.failures:
            raise TransientFailure(f"download from img.example failed: HTTP 503 (call {self.calls[url]})")
        return b"image"


def fake_compress(deps: Any, task: Any, options: Any = None) -> ImageOutcome:
    data = process.download(deps.http, task.url)
    return ImageOutcome(f"memory://{task.seq}.jpg", len(data), 1, 1, 1, "JPEG", 50, 1, 1, 1)


def deliver(message: dict[str, Any], dequeue_count: int = 1) -> str | None:
    """Run one message through main(); the notify output, if it fired."""
    notify = Out()
    process_queue.main(QueueMessage(id="m", body=json.dumps(message).encode(), dequeue_count=dequeue_count),
                       notify, Out())  # fmt: skip
    return notify.value


def run_until_quiet(queue: MemoryQueue) -> list[str]:
    """Deliver every message the queue holds, in order, including those sent meanwhile; notify outputs."""
    fired = []
    delivered = 0
    while delivered < len(queue.sent):
        out = deliver(queue.sent[delivered])
        delivered += 1
        if out is not None:
            fired.append(out)
    return fired


def test_a_transient_failure_is_retried_later_not_at_once(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "download", Source(failures=1))
    monkeypatch.setattr(process, "compress_and_store", fake_compress)
    queue: MemoryQueue = app["queue"]
    first = queue.sent[0]
    # Before the fix the invocation raised, and the host redelivered it at once (visibilityTimeout 0).
    assert deliver(first) is None
    copy, delay = queue.sent[-1], queue.delays[-1]
    assert delay == SCHEDULE[0]
    assert copy == {**first, "retry": 1}
    image = app["store"].list_images(app["request_id"])[0]
    assert image.status is ImageStatus.PENDING and image.attempts == 1
    assert "HTTP 503" in (image.error or "") and image.retry_at is not None


def test_a_host_that_recovers_loses_no_image_and_the_request_fires_once(
    app: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "download", Source(failures=2))
    monkeypatch.setattr(process, "compress_and_store", fake_compress)
    fired = run_until_quiet(app["queue"])
    assert fired == [json.dumps({"request_id": app["request_id"]})]
    images = app["store"].list_images(app["request_id"])
    assert [(i.status, i.attempts) for i in images] == [(ImageStatus.DONE, 3)] * 2
    assert app["queue"].delays[2:] == [SCHEDULE[0]] * 2 + [SCHEDULE[1]] * 2  # after the two fan-out sends


def test_a_host_down_for_good_fails_its_images_after_the_schedule_with_the_reason(
    app: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "download", Source(failures=10**6))
    monkeypatch.setattr(process, "compress_and_store", fake_compress)
    fired = run_until_quiet(app["queue"])
    assert fired == [json.dumps({"request_id": app["request_id"]})]
    images = app["store"].list_images(app["request_id"])
    attempts = len(SCHEDULE) + 1
    assert [(i.status, i.attempts) for i in images] == [(ImageStatus.FAILED, attempts)] * 2
    assert all(f"gave up after {attempts} attempts" in (i.error or "") and "HTTP 503" in (i.error or "")
               for i in images)  # fmt: skip
    per_image = sorted(app["queue"].delays[2:])
    assert per_image == sorted(list(SCHEDULE) * 2)


def test_a_redelivered_retry_neither_multiplies_nor_counts_twice(
    app: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "download", Source(failures=2))
    monkeypatch.setattr(process, "compress_and_store", fake_compress)
    queue: MemoryQueue = app["queue"]
    first, second = queue.sent[0], queue.sent[1]
    deliver(first)
    deliver(first, dequeue_count=2)  # the host died after the copy was sent, before it deleted the original
    copies = [m for m in queue.sent[2:] if m["seq"] == 0]
    assert copies == [{**first, "retry": 1}] * 2  # one chain per delivery of the original, no more
    assert deliver(copies[0]) is None  # Done now; the other image is still to come
    assert deliver(copies[1]) is None  # already Done: counted once more in the set, nothing fires
    assert [m for m in queue.sent[2:] if m["seq"] == 0] == copies  # a finished image sends no retry
    fired = []
    pending = [second]
    while pending:
        before = len(queue.sent)
        out = deliver(pending.pop(0))
        fired += [out] if out else []
        pending += queue.sent[before:]
    assert fired == [json.dumps({"request_id": app["request_id"]})]
    assert deliver(copies[0]) is None  # a late duplicate after completion fires nothing
    images = app["store"].list_images(app["request_id"])
    assert [i.status for i in images] == [ImageStatus.DONE] * 2


def test_when_the_retry_cannot_be_queued_the_host_redelivers_the_original(
    app: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "download", Source(failures=10**6))
    monkeypatch.setattr(process, "compress_and_store", fake_compress)
    queue: MemoryQueue = app["queue"]
    queue.fail_after = len(queue.sent)
    with pytest.raises(TransientFailure):  # the invocation fails: the host keeps the original
        deliver(queue.sent[0])
    assert app["store"].image_status(app["request_id"], 0) is ImageStatus.PENDING


def test_extra_fields_of_a_message_survive_into_its_retry(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "download", Source(failures=1))
    monkeypatch.setattr(process, "compress_and_store", fake_compress)
    deliver({**app["queue"].sent[0], "stage": "slice-3"})
    assert app["queue"].sent[-1]["stage"] == "slice-3"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", SCHEDULE), ("1,2.5, 4", (1.0, 2.5, 4.0)), ("none", ()), ("0", (0.0,))],
)
def test_the_schedule_setting(raw: str, expected: tuple[float, ...]) -> None:
    settings = Settings.from_env({"AzureWebJobsStorage": "x", "IMAGE_RETRY_DELAYS_SECONDS": raw})
    assert settings.image_retry_schedule.delays_s == expected


@pytest.mark.parametrize("raw", ["ten", "5,-1", "1,,x", str(8 * 24 * 3600)])
def test_a_bad_schedule_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="IMAGE_RETRY_DELAYS_SECONDS"):
        Settings.from_env({"AzureWebJobsStorage": "x", "IMAGE_RETRY_DELAYS_SECONDS": raw})


def test_worst_case_time_of_the_default_schedule() -> None:
    schedule = RetrySchedule()
    assert schedule.attempts == 5 and schedule.delay_after(4) is None
    assert schedule.worst_case_s(attempt_deadline_s=60) == 460 + 5 * 60
