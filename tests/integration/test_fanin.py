"""CompletionTracker against a real Redis server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import pytest
import redis

from shared.errors import TransientFailure
from shared.fanin import CompletionTracker, completion_keys

pytestmark = pytest.mark.integration

TTL_S = 600


class FakeDatabase:
    """The seqs the database holds as terminal, and how often the tracker asked for them."""

    def __init__(self) -> None:
        self.terminal: set[int] = set()
        self.seed_calls = 0
        self._lock = threading.Lock()

    def finish(self, seq: int) -> None:
        with self._lock:
            self.terminal.add(seq)

    def seed(self) -> Iterable[int]:
        with self._lock:
            self.seed_calls += 1
            return sorted(self.terminal)


def finish_image(tracker: CompletionTracker, db: FakeDatabase, request_id: str, seq: int, total: int) -> bool:
    # Processing records the outcome in the database before it records completion in Redis.
    db.finish(seq)
    return tracker.record(request_id, seq, total, db.seed)


def test_fires_once_when_the_last_image_finishes(redis_client: redis.Redis) -> None:
    tracker, db = CompletionTracker(redis_client, TTL_S), FakeDatabase()
    results = [finish_image(tracker, db, "req-a", seq, 4) for seq in (2, 0, 3, 1)]
    assert results == [False, False, False, True]
    done_key, seeded_key, fired_key = completion_keys("req-a")
    assert redis_client.smembers(done_key) == {b"0", b"1", b"2", b"3"}
    assert redis_client.get(fired_key) == b"1"
    assert redis_client.exists(seeded_key) == 1


def test_only_the_first_image_of_a_request_seeds(redis_client: redis.Redis) -> None:
    tracker, db = CompletionTracker(redis_client, TTL_S), FakeDatabase()
    for seq in range(3):
        finish_image(tracker, db, "req-seed", seq, 5)
    assert db.seed_calls == 1


def test_a_single_image_request_fires_on_its_only_image(redis_client: redis.Redis) -> None:
    tracker, db = CompletionTracker(redis_client, TTL_S), FakeDatabase()
    assert finish_image(tracker, db, "req-one", 0, 1) is True


def test_duplicates_never_count_twice(redis_client: redis.Redis) -> None:
    tracker, db = CompletionTracker(redis_client, TTL_S), FakeDatabase()
    assert finish_image(tracker, db, "req-dup", 0, 3) is False
    assert finish_image(tracker, db, "req-dup", 0, 3) is False
    assert finish_image(tracker, db, "req-dup", 1, 3) is False
    assert finish_image(tracker, db, "req-dup", 1, 3) is False
    assert redis_client.scard(completion_keys("req-dup")[0]) == 2
    assert finish_image(tracker, db, "req-dup", 2, 3) is True


def test_redelivery_of_the_firing_image_fires_again_and_no_other_does(redis_client: redis.Redis) -> None:
    tracker, db = CompletionTracker(redis_client, TTL_S), FakeDatabase()
    for seq in (0, 1):
        finish_image(tracker, db, "req-re", seq, 3)
    assert finish_image(tracker, db, "req-re", 2, 3) is True
    assert finish_image(tracker, db, "req-re", 2, 3) is True  # the notify downstream is idempotent
    assert finish_image(tracker, db, "req-re", 0, 3) is False
    assert finish_image(tracker, db, "req-re", 1, 3) is False


def test_requests_are_counted_separately(redis_client: redis.Redis) -> None:
    tracker = CompletionTracker(redis_client, TTL_S)
    db_a, db_b = FakeDatabase(), FakeDatabase()
    assert finish_image(tracker, db_a, "req-x", 0, 2) is False
    assert finish_image(tracker, db_b, "req-y", 1, 2) is False
    assert finish_image(tracker, db_b, "req-y", 0, 2) is True
    assert finish_image(tracker, db_a, "req-x", 1, 2) is True


def test_every_key_gets_the_ttl(redis_client: redis.Redis) -> None:
    tracker, db = CompletionTracker(redis_client, TTL_S), FakeDatabase()
    finish_image(tracker, db, "req-ttl", 0, 2)
    finish_image(tracker, db, "req-ttl", 1, 2)
    for key in completion_keys("req-ttl"):
        assert 0 < redis_client.ttl(key) <= TTL_S, key


def test_concurrent_last_images_fire_exactly_once(redis_client: redis.Redis, redis_server: object) -> None:
    total, rounds, threads_n = 16, 10, 16
    for round_no in range(rounds):
        request_id = f"req-race-{round_no}"
        db = FakeDatabase()
        start = threading.Barrier(threads_n)
        fired: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def worker(seq: int, request_id: str = request_id, db: FakeDatabase = db,
                   start: threading.Barrier = start) -> None:
            # One client per thread: separate connections, so the script calls really interleave.
            client = redis.Redis.from_url(redis_server.url)  # type: ignore[attr-defined]
            try:
                tracker = CompletionTracker(client, TTL_S)
                start.wait()
                # Every image of the request finishes at once, redelivered once as well.
                for _ in range(2):
                    if finish_image(tracker, db, request_id, seq, total):
                        with lock:
                            fired.append(seq)
            except BaseException as exc:
                errors.append(exc)
            finally:
                client.close()

        threads = [threading.Thread(target=worker, args=(seq,)) for seq in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        # The firing seq fires on its redelivery too; no second seq ever fires.
        assert len(set(fired)) == 1, fired
        assert len(fired) in (1, 2)
        winner = int(redis_client.get(completion_keys(request_id)[2]))
        assert set(fired) == {winner}


def test_flushall_mid_request_still_completes_from_the_database(redis_client: redis.Redis) -> None:
    tracker, db = CompletionTracker(redis_client, TTL_S), FakeDatabase()
    for seq in range(3):
        assert finish_image(tracker, db, "req-flush", seq, 5) is False
    redis_client.flushall()
    assert finish_image(tracker, db, "req-flush", 3, 5) is False
    assert db.seed_calls == 2
    assert redis_client.smembers(completion_keys("req-flush")[0]) == {b"0", b"1", b"2", b"3"}
    assert finish_image(tracker, db, "req-flush", 4, 5) is True


def test_flush_before_the_last_image_lets_the_last_image_fire(redis_client: redis.Redis) -> None:
    tracker, db = CompletionTracker(redis_client, TTL_S), FakeDatabase()
    for seq in range(3):
        finish_image(tracker, db, "req-last", seq, 4)
    redis_client.flushall()
    assert finish_image(tracker, db, "req-last", 3, 4) is True


def test_redis_restart_mid_request_still_completes(redis_client: redis.Redis, redis_server: object) -> None:
    tracker, db = CompletionTracker(redis_client, TTL_S), FakeDatabase()
    finish_image(tracker, db, "req-restart", 0, 2)
    redis_server.restart()  # type: ignore[attr-defined]
    redis_client.flushall()  # in case the server persisted the keys across the restart
    # The restarted server no longer knows the script either; the tracker reloads it.
    assert finish_image(tracker, db, "req-restart", 1, 2) is True


def test_redis_errors_become_transient_failures_without_secrets() -> None:
    password = "s3cret-pa55word"
    client = redis.Redis(host="127.0.0.1", port=1, password=password, socket_connect_timeout=1)
    tracker = CompletionTracker(client, TTL_S)
    with pytest.raises(TransientFailure) as caught:
        tracker.record("req-down", 0, 1, lambda: [])
    assert password not in str(caught.value)


@pytest.mark.parametrize(("seq", "total"), [(-1, 3), (3, 3), (0, 0)])
def test_rejects_impossible_positions(redis_client: redis.Redis, seq: int, total: int) -> None:
    tracker = CompletionTracker(redis_client, TTL_S)
    with pytest.raises(ValueError):
        tracker.record("req-bad", seq, total, lambda: [])


def test_rejects_seeds_outside_the_request(redis_client: redis.Redis) -> None:
    tracker = CompletionTracker(redis_client, TTL_S)
    seed: Callable[[], Iterable[int]] = lambda: [0, 7]  # noqa: E731
    with pytest.raises(ValueError):
        tracker.record("req-bad-seed", 0, 3, seed)
