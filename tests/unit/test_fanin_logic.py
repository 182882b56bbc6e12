"""The fan-in's firing condition, run in the unit suite against the tracker's real Lua script.

fakeredis executes the script with a real Lua interpreter (lupa), so an off-by-one in the script or
in the caller's seeding fails here without a Redis server; tests/integration/test_fanin.py runs the
same tracker against a real Redis.
"""

from __future__ import annotations

import logging
import random

import fakeredis
import pytest

from shared.errors import TransientFailure
from shared.fanin import CompletionTracker, completion_keys


@pytest.fixture()
def tracker() -> CompletionTracker:
    return CompletionTracker(fakeredis.FakeRedis(), ttl_s=600)


@pytest.mark.parametrize("total", [1, 2, 5, 37])
def test_fires_on_the_last_distinct_image_and_not_one_earlier(tracker: CompletionTracker, total: int) -> None:
    order = list(range(total))
    random.Random(total).shuffle(order)
    finished: set[int] = set()
    fired = []
    for seq in order:
        finished.add(seq)
        fired.append(tracker.record("req", seq, total, lambda: sorted(finished)))
    assert fired == [False] * (total - 1) + [True]


def test_duplicates_of_an_unfinished_request_never_fire(tracker: CompletionTracker) -> None:
    finished = {0, 1, 2}
    for _ in range(3):
        for seq in (0, 1, 2):
            assert tracker.record("req", seq, 4, lambda: sorted(finished)) is False
    finished.add(3)
    assert tracker.record("req", 3, 4, lambda: sorted(finished)) is True


def test_only_the_firing_seq_fires_again_on_redelivery(tracker: CompletionTracker) -> None:
    finished: set[int] = set()
    for seq in (0, 1, 2):
        finished.add(seq)
        tracker.record("req", seq, 3, lambda: sorted(finished))
    replays = [tracker.record("req", seq, 3, lambda: sorted(finished)) for seq in (2, 0, 1, 2)]
    assert replays == [True, False, False, True]


def test_seeding_counts_what_the_database_already_holds(tracker: CompletionTracker) -> None:
    # Redis lost everything; the database holds 0..3 as terminal, so image 4 completes the request.
    assert tracker.record("req", 4, 5, lambda: [0, 1, 2, 3]) is True


def test_seeding_with_one_image_missing_does_not_fire(tracker: CompletionTracker) -> None:
    assert tracker.record("req", 4, 6, lambda: [0, 1, 2, 3]) is False
    assert tracker.record("req", 5, 6, lambda: [0, 1, 2, 3, 4]) is True


def test_reseed_adds_images_that_finished_uncounted(tracker: CompletionTracker) -> None:
    assert tracker.record("req", 0, 3, lambda: [0]) is False
    # Images 1 finished while Redis refused clients: only a reseed counts it.
    assert tracker.record("req", 2, 3, lambda: [0, 1, 2]) is False
    assert tracker.record("req", 2, 3, lambda: [0, 1, 2], reseed=True) is True


def test_requests_do_not_share_keys() -> None:
    assert set(completion_keys("a")).isdisjoint(completion_keys("b"))
    assert all("{a}" in key for key in completion_keys("a"))


@pytest.mark.parametrize(
    ("seq", "total", "message"),
    [(-1, 3, "seq -1 is outside 0..2"), (3, 3, "seq 3 is outside 0..2"), (0, 0, "total must be at least 1")],
)
def test_seqs_outside_the_request_are_refused(tracker: CompletionTracker, seq: int, total: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        tracker.record("req", seq, total, list)


def test_seeding_and_firing_are_logged(tracker: CompletionTracker, caplog: pytest.LogCaptureFixture) -> None:
    # The reliability campaign and on-call read these lines: a reseed is how a Redis loss shows.
    caplog.set_level(logging.INFO, logger="shared.fanin")
    tracker.record("req-9", 2, 3, lambda: [0, 1, 2])
    assert [r.getMessage() for r in caplog.records] == [
        "Seeding fan-in of request req-9 with 3 finished images",
        "Image 2 completed request req-9 (3 images)",
    ]


def test_a_redis_outage_is_a_transient_failure_naming_only_the_error_type() -> None:
    server = fakeredis.FakeServer()
    tracker = CompletionTracker(fakeredis.FakeRedis(server=server), ttl_s=600)
    server.connected = False
    with pytest.raises(TransientFailure, match=r"^Redis fan-in failed \(ConnectionError\)$"):
        tracker.record("req", 0, 2, lambda: [0])


def test_requests_in_one_tracker_are_counted_apart(tracker: CompletionTracker) -> None:
    assert tracker.record("a", 0, 2, lambda: [0]) is False
    assert tracker.record("b", 1, 2, lambda: [1]) is False  # b's first image must not complete a
    assert tracker.record("b", 0, 2, lambda: [0, 1]) is True
    assert tracker.record("a", 1, 2, lambda: [0, 1]) is True


def test_a_seed_outside_the_request_is_refused(tracker: CompletionTracker) -> None:
    with pytest.raises(ValueError, match=r"^seed returned seqs outside 0\.\.2: \[3\]$"):
        tracker.record("req", 0, 3, lambda: [0, 3])


def test_the_shortest_ttl_is_one_second() -> None:
    CompletionTracker(fakeredis.FakeRedis(), ttl_s=1)
    with pytest.raises(ValueError, match="^ttl_s must be at least 1 second$"):
        CompletionTracker(fakeredis.FakeRedis(), ttl_s=0)
