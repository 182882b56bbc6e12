"""How many statements processing one image sends to the database, counted on the real SQLite store.

In production each statement (and each commit) is a network round trip to SQL Server, so the
hot path's count is pinned here: a change that adds a statement per image fails this test.
SQLite's trace callback sees every statement it runs, including BEGIN and COMMIT.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from devtools import images
from devtools.traced_store import traced_sqlite_store
from shared import database, process
from shared.container import Dependencies
from shared.database import sqlite_connector
from shared.errors import ConfigError
from shared.memory import memory_dependencies
from shared.models import ImageStatus, ProductRow
from shared.settings import Settings


class Traced:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.on = False

    def __call__(self, statement: str) -> None:
        if self.on:
            self.statements.append(statement.split()[0].upper())

    def during(self, action: Callable[[], object]) -> list[str]:
        self.statements, self.on = [], True
        try:
            action()
        finally:
            self.on = False
        return self.statements


@pytest.fixture()
def traced() -> Traced:
    return Traced()


@pytest.fixture()
def deps(tmp_path: Path, traced: Traced, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dependencies]:
    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                  "SQLITE_PATH": str(tmp_path / "db.sqlite3")})
    store = traced_sqlite_store(Path(settings.sqlite_path), traced)
    monkeypatch.setattr(process, "download", lambda session, url, **limits: images.jpeg(64, 48))
    built = memory_dependencies(settings, store)
    yield built
    built.close()


def create(deps: Dependencies, urls: list[str]) -> str:
    request_id = str(uuid.uuid4())
    products = [ProductRow(line=i + 2, serial=i + 1, name=f"P{i}", urls=(url,)) for i, url in enumerate(urls)]
    deps.store.create_request(request_id, products, None, None)
    return request_id


def message(request_id: str, seq: int, url: str, total: int) -> str:
    return json.dumps({"request_id": request_id, "seq": seq, "url": url, "total": total})


# image_state (one SELECT), mark_started, record_done (the image, the request's counts and its
# fan-in re-seed flag in one transaction): nothing else for an image whose URL is not repeated.
NORMAL_IMAGE = ["SELECT", "BEGIN", "UPDATE", "COMMIT", "BEGIN", "UPDATE", "UPDATE", "COMMIT"]


def test_a_normal_image_sends_three_transactions_and_nothing_else(deps: Dependencies, traced: Traced) -> None:
    urls = [f"https://x.example/{n}.jpg" for n in range(3)]
    request_id = create(deps, urls)
    process.process_image(deps, message(request_id, 0, urls[0], 3), 1)  # the first count seeds the fan-in
    results = []
    for seq in (1, 2):
        sent = traced.during(
            lambda seq=seq: results.append(process.process_image(deps, message(request_id, seq, urls[seq], 3), 1)))
        assert sent == NORMAL_IMAGE, f"seq {seq}: {sent}"
    assert [result.notify for result in results] == [None, {"request_id": request_id}]
    assert {image.status for image in deps.store.list_images(request_id)} == {ImageStatus.DONE}


def test_a_redelivered_finished_image_reads_once(deps: Dependencies, traced: Traced) -> None:
    urls = ["https://x.example/a.jpg", "https://x.example/b.jpg"]
    request_id = create(deps, urls)
    process.process_image(deps, message(request_id, 0, urls[0], 2), 1)
    sent = traced.during(lambda: process.process_image(deps, message(request_id, 0, urls[0], 2), 2))
    assert sent == ["SELECT"], sent  # terminal when read: the same read says whether the fan-in needs a re-seed


def test_a_leader_of_repeats_also_copies_to_them_and_reads_their_seqs(deps: Dependencies, traced: Traced) -> None:
    urls = ["https://x.example/a.jpg", "https://x.example/b.jpg", "https://x.example/a.jpg"]
    request_id = create(deps, urls)
    process.process_image(deps, message(request_id, 1, urls[1], 3), 1)
    results = []
    sent = traced.during(lambda: results.append(process.process_image(deps, message(request_id, 0, urls[0], 3), 1)))
    # the leader's transaction also copies its outcome to its Pending repeats; their seqs are read to count them
    leader = ["SELECT", "BEGIN", "UPDATE", "COMMIT", "BEGIN", "UPDATE", "UPDATE", "UPDATE", "COMMIT", "SELECT"]
    assert sent == leader, sent
    assert results[0].notify == {"request_id": request_id}


def recorded_reseeds(deps: Dependencies, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The ``reseed`` argument of every fan-in count from now on."""
    reseeds: list[bool] = []
    record = deps.completion.record

    def recording(request_id: str, seq: int, total: int, seed: Callable[[], Iterable[int]], *,
                  reseed: bool = False) -> bool:
        reseeds.append(reseed)
        return record(request_id, seq, total, seed, reseed=reseed)

    monkeypatch.setattr(deps.completion, "record", recording)
    return reseeds


def test_the_reseed_mark_is_read_after_the_image_is_recorded(
    deps: Dependencies, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis outage marked during this image's work (after its state was read) must reach its count:
    the mark is read in the transaction that records the image, not with the state before the work."""
    urls = ["https://x.example/a.jpg", "https://x.example/b.jpg"]
    request_id = create(deps, urls)
    process.process_image(deps, message(request_id, 0, urls[0], 2), 1)

    def marked_while_downloading(session: object, url: str, **limits: object) -> bytes:
        deps.store.mark_fanin_reseed(request_id)  # another worker fell back to the database meanwhile
        return images.jpeg(64, 48)

    monkeypatch.setattr(process, "download", marked_while_downloading)
    reseeds = recorded_reseeds(deps, monkeypatch)
    assert process.process_image(deps, message(request_id, 1, urls[1], 2), 1).outcome is process.Outcome.DONE
    assert reseeds == [True]


def test_a_sqlite_without_returning_is_refused_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database.sqlite3, "sqlite_version_info", (3, 34, 1))
    with pytest.raises(ConfigError, match="SQLite .* too old: the store needs 3.35"):
        sqlite_connector(tmp_path / "db.sqlite3")


def test_an_image_cancelled_after_its_read_is_not_worked_and_reads_the_mark_again(
    deps: Dependencies, traced: Traced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel race: the image was Pending when read, skipped before mark_started. It is not
    worked, and its count re-reads the re-seed mark (the cancel set it after the first read)."""
    urls = ["https://x.example/a.jpg", "https://x.example/b.jpg"]
    request_id = create(deps, urls)
    store = deps.store
    mark_started = store.mark_started

    def cancelled_first(request_id: str, seq: int) -> bool:
        assert store.cancel_request(request_id)
        store.mark_fanin_reseed(request_id)  # as shared.cancel does
        return mark_started(request_id, seq)

    monkeypatch.setattr(store, "mark_started", cancelled_first)
    reseeds = recorded_reseeds(deps, monkeypatch)
    result = process.process_image(deps, message(request_id, 0, urls[0], 2), 1)
    assert result.outcome is process.Outcome.ALREADY and reseeds == [True]
    assert store.image_status(request_id, 0) is ImageStatus.SKIPPED
