"""process_image and cancel_request over a real SQLite store and in-memory queues and fan-in:
repeats are worked once, every slot is counted, and the notify fires exactly once in any order."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import images
from shared import process
from shared.cancel import cancel_request
from shared.container import Dependencies
from shared.errors import Conflict
from shared.memory import memory_dependencies
from shared.models import ImageStatus, ProductRow, RequestStatus
from shared.settings import Settings
from shared.store import Store

LOGO, A, B = "https://x.example/logo.jpg", "https://x.example/a.jpg", "https://x.example/b.jpg"
ROWS = [(LOGO, A), (B, LOGO), (LOGO, A)]  # seqs 0..5: leaders 0, 1, 2; aliases 3 (of 0), 4 (of 0), 5 (of 1)


@pytest.fixture()
def deps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dependencies]:
    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                  "SQLITE_PATH": str(tmp_path / "db.sqlite3")})
    store = Store.for_sqlite(settings.sqlite_path)
    store.ensure_schema()
    built = memory_dependencies(settings, store)
    yield built
    built.close()


@pytest.fixture()
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    fetched: list[str] = []

    def fake_download(session: object, url: str, **limits: object) -> bytes:
        fetched.append(url)
        return images.jpeg(64, 48)

    monkeypatch.setattr(process, "download", fake_download)
    return fetched


def create(deps: Dependencies) -> str:
    request_id = str(uuid.uuid4())
    products = [ProductRow(line=i + 2, serial=i + 1, name=f"P{i}", urls=urls) for i, urls in enumerate(ROWS)]
    deps.store.create_request(request_id, products, None, None)
    return request_id


def message(request_id: str, seq: int) -> str:
    url = [u for urls in ROWS for u in urls][seq]
    return json.dumps({"request_id": request_id, "seq": seq, "url": url, "total": 6})


@pytest.mark.parametrize("order", [(0, 1, 2, 3, 4, 5), (5, 4, 3, 2, 1, 0), (3, 0, 5, 4, 1, 2, 0, 3)])
def test_each_url_is_worked_once_and_the_request_fires_once(deps, downloads, order) -> None:
    request_id = create(deps)
    results = [process.process_image(deps, message(request_id, seq), 1) for seq in order]
    assert sorted(downloads) == sorted({LOGO, A, B})
    assert sum(result.notify is not None for result in results) == 1
    by_seq = {image.seq: image for image in deps.store.list_images(request_id)}
    assert {image.status for image in by_seq.values()} == {ImageStatus.DONE}
    assert by_seq[0].output_url == by_seq[3].output_url == by_seq[4].output_url
    assert by_seq[1].output_url == by_seq[5].output_url != by_seq[0].output_url


def test_an_alias_message_alone_does_nothing_until_its_leader_finishes(deps, downloads) -> None:
    request_id = create(deps)
    assert process.process_image(deps, message(request_id, 4), 1).outcome is process.Outcome.ALIAS
    assert downloads == [] and deps.store.image_state(request_id, 4).status is ImageStatus.PENDING


def test_cancel_between_images_fires_once_and_skips_the_rest(deps, downloads) -> None:
    request_id = create(deps)
    process.process_image(deps, message(request_id, 0), 1)  # the logo, with its two aliases
    answer = cancel_request(deps, request_id)
    assert not answer.finished and answer.document["skipped"] == 3  # seqs 1, 2 and 5 (alias of 1)
    assert deps.notify_queue.sent == [{"request_id": request_id}]  # nothing in flight: the cancel notifies
    later = [process.process_image(deps, message(request_id, seq), 1).outcome for seq in (1, 2, 5)]
    assert later == [process.Outcome.ALREADY, process.Outcome.ALREADY, process.Outcome.ALIAS]
    assert downloads == [LOGO]
    cancel_request(deps, request_id)  # a repeat sends the (idempotent) notify again, changes nothing
    assert deps.store.get_request(request_id).status is RequestStatus.CANCELLING  # type: ignore[union-attr]


def test_a_cancel_while_an_image_is_in_flight_is_closed_by_that_image(deps, downloads) -> None:
    request_id = create(deps)
    process.process_image(deps, message(request_id, 0), 1)
    assert deps.store.mark_started(request_id, 2)  # in flight; seq 1 (and its alias 5) unstarted
    assert cancel_request(deps, request_id).document["skipped"] == 2
    assert deps.notify_queue.sent == []  # an image is in flight: its finish will fire
    result = process.process_image(deps, message(request_id, 2), 2)  # the in-flight one's redelivery
    assert result.outcome is process.Outcome.DONE
    assert result.notify == {"request_id": request_id}  # the re-seed counted the skipped slots
    record = deps.store.get_request(request_id)
    assert record is not None and record.finished_images == 6 and record.skipped == 2


def test_a_cancel_after_the_last_in_flight_image_finished_notifies_itself(deps, downloads) -> None:
    request_id = create(deps)
    process.process_image(deps, message(request_id, 0), 1)
    process.process_image(deps, message(request_id, 2), 1)  # finished, counted: nothing in flight
    assert cancel_request(deps, request_id).document["skipped"] == 2
    assert deps.notify_queue.sent == [{"request_id": request_id}]
    assert deps.store.complete_request(request_id) and not deps.store.complete_request(request_id)
    assert deps.store.get_request(request_id).status is RequestStatus.CANCELLED  # type: ignore[union-attr]
    again = cancel_request(deps, request_id)  # idempotent once closed
    assert again.finished and again.document["status"] == "Cancelled"


def test_a_completed_request_cannot_be_cancelled(deps, downloads) -> None:
    request_id = create(deps)
    for seq in (0, 1, 2):
        process.process_image(deps, message(request_id, seq), 1)
    with pytest.raises(Conflict):  # every image finished, even before the notify closed it
        cancel_request(deps, request_id)
    assert deps.store.complete_request(request_id)
    with pytest.raises(Conflict):
        cancel_request(deps, request_id)


def test_permutations_of_leaders_and_aliases_fire_exactly_once(deps, downloads) -> None:
    for order in itertools.islice(itertools.permutations(range(6)), 0, 720, 37):
        request_id = create(deps)
        fired = [process.process_image(deps, message(request_id, seq), 1).notify for seq in order]
        assert sum(n is not None for n in fired) == 1, order
