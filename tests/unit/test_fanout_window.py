"""The fan-out window: the decision to send or wait, the wait's delay, and a whole windowed fan-out
simulated over a real SQLite store with in-memory queues (no server)."""

from __future__ import annotations

import importlib
import json
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

from shared import fanout, functions_adapter
from shared.errors import MalformedMessage, TransientFailure
from shared.fanout import FanoutRange, FanoutShape, cut_at_window, handle_range
from shared.fanout_window import MAX_WAIT_S, MIN_WAIT_S, Sighting, wait_delay_s, window_limit
from shared.memory import MemoryQueue, memory_dependencies
from shared.models import ImageOutcome, ProductRow
from shared.settings import Settings
from shared.store import Store

fanout_queue = importlib.import_module("fanout_queue")

SHAPE = FanoutShape(leaf_size=5, branching=3)
OUTCOME = ImageOutcome("memory://o", 10, 5, 1, 1, "JPEG", 50, 0, 0, 0)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    built = Store.for_sqlite(tmp_path / "db.sqlite3")
    built.ensure_schema()
    yield built
    built.close()


def request_of(store: Store, images: int) -> str:
    request_id = str(uuid.uuid4())
    rows = [ProductRow(line=i + 2, serial=i + 1, name=f"p{i}", urls=(f"https://img.example/{i}.jpg",))
            for i in range(images)]  # fmt: skip
    store.create_request(request_id, rows, None, None)
    return request_id


def finish(store: Store, request_id: str, seqs: range | list[int]) -> None:
    for seq in seqs:
        assert store.record_done(request_id, seq, OUTCOME)


# --- the delay of a waiting range -------------------------------------------------------------------


def test_the_delay_is_the_images_still_to_finish_over_the_recent_rate() -> None:
    # 30 images must finish (start 130, limit 101); 20 finished in the last 2 s: 10/s, so 3 s.
    seen = Sighting(finished=61, at=1000.0, waited_s=2)
    assert wait_delay_s(start=130, limit=101, finished=81, now=1002.0, seen=seen) == 3


def test_the_delay_is_clamped_and_whole_seconds() -> None:
    seen = Sighting(finished=0, at=1000.0)
    assert wait_delay_s(start=10_000, limit=100, finished=90, now=1001.0, seen=seen) == MAX_WAIT_S  # far
    assert wait_delay_s(start=101, limit=100, finished=90, now=1001.0, seen=seen) == MIN_WAIT_S  # near
    assert wait_delay_s(start=150, limit=100, finished=90, now=1010.0, seen=Sighting(0, 1000.0)) == 6  # 51/9 s


def test_without_a_rate_it_looks_again_soon_and_backs_off_while_nothing_finishes() -> None:
    assert wait_delay_s(start=500, limit=100, finished=90, now=1000.0, seen=None) == MIN_WAIT_S
    waits = []
    seen = Sighting(finished=90, at=999.0, waited_s=0)
    for step in range(6):
        delay = wait_delay_s(start=500, limit=100, finished=90, now=1000.0 + step, seen=seen)
        waits.append(delay)
        seen = Sighting(90, 1000.0 + step, delay)
    assert waits == [1, 2, 4, 8, MAX_WAIT_S, MAX_WAIT_S]


def test_a_clock_behind_the_last_check_is_no_rate() -> None:
    seen = Sighting(finished=10, at=2000.0, waited_s=4)
    assert wait_delay_s(start=500, limit=100, finished=90, now=1000.0, seen=seen) == 8


def test_no_window_means_no_limit() -> None:
    assert window_limit(70, 0) is None
    assert window_limit(70, 20) == 90


# --- cutting a range at the window -----------------------------------------------------------------


def test_a_range_past_the_limit_keeps_its_head_and_leaves_one_tail_in_resume_mode() -> None:
    whole = FanoutRange("r", 0, 120)
    assert cut_at_window(whole, None, 5) == (whole, None)
    assert cut_at_window(whole, 200, 5) == (whole, None)
    assert cut_at_window(whole, 20, 5) == (FanoutRange("r", 0, 20), FanoutRange("r", 20, 120, resume=True))
    # A range starting just below the limit still sends its whole head.
    near = cut_at_window(FanoutRange("r", 18, 120), 20, 5)
    assert near == (FanoutRange("r", 18, 23), FanoutRange("r", 23, 120, True))


def test_a_range_message_round_trips_its_sighting_and_refuses_a_bad_one() -> None:
    waiting = FanoutRange("r", 20, 120, resume=True, seen=Sighting(7, 1234.5, 2))
    assert FanoutRange.from_message(waiting.to_message()) == waiting
    with pytest.raises(MalformedMessage):
        FanoutRange.from_message('{"request_id": "r", "start": 0, "end": 5, "seen": [1, "x", 2]}')
    with pytest.raises(MalformedMessage):
        FanoutRange.from_message('{"request_id": "r", "start": 0, "end": 5, "seen": 3}')


# --- handling ranges ----------------------------------------------------------------------------------


def test_a_range_beyond_the_window_sends_nothing_and_waits_with_its_sighting(store: Store) -> None:
    request_id = request_of(store, 120)
    body = FanoutRange(request_id, 40, 120, resume=True).to_message()
    result = handle_range(store, body, 1, SHAPE, window=20, now=1000.0)
    assert (result.sub_ranges, result.image_messages) == ([], [])
    assert result.later == [(FanoutRange(request_id, 40, 120, True, Sighting(0, 1000.0, MIN_WAIT_S)), MIN_WAIT_S)]
    assert store.pending_tasks(request_id, 0, 120, unmarked_only=True)[0].seq == 0  # nothing marked

    finish(store, request_id, range(21))  # 40 < 21 + 20: it may go now
    waited = result.later[0][0].to_message()
    result = handle_range(store, waited, 1, SHAPE, window=20, now=1003.0)
    assert [json.loads(m)["seq"] for m in result.image_messages] == [40, 41, 42, 43, 44]
    (tail, delay), = result.later
    assert (tail.start, tail.end, tail.resume) == (45, 120, True)
    assert delay == 1  # 5 to finish at 7/s (21 in the 3 s since the last look)


def test_the_window_bounds_what_is_handed_out_and_not_finished(store: Store) -> None:
    """A whole 120-image fan-out with window 20, leaf 5: never more than 25 out and unfinished."""
    outstanding = simulate(store, images=120, window=20, process_per_step=3)
    assert max(outstanding) <= 20 + SHAPE.leaf_size
    assert max(outstanding) > 20 - SHAPE.leaf_size  # and the window is used, not starved


def test_without_a_window_everything_goes_out_at_once(store: Store) -> None:
    outstanding = simulate(store, images=120, window=0, process_per_step=3)
    assert max(outstanding) > 100  # the old behaviour, which the test above must not see


def simulate(store: Store, images: int, window: int, process_per_step: int) -> list[int]:
    """Run a fan-out to the end: ranges in FIFO order (a waiting range after the work queued before
    it), images processed a few per step; every image must go out exactly once. Returns the images
    out and unfinished after each step."""
    request_id = request_of(store, images)
    ranges: deque[str] = deque([fanout.root_message(request_id, images)])
    image_queue: deque[int] = deque()
    sent: list[int] = []
    outstanding = []
    clock = 1000.0
    while ranges or image_queue:
        for _ in range(len(ranges)):
            result = handle_range(store, ranges.popleft(), 1, SHAPE, window=window, now=clock)
            ranges.extend(result.sub_ranges)
            ranges.extend(waiting.to_message() for waiting, _ in result.later)
            seqs = [json.loads(m)["seq"] for m in result.image_messages]
            image_queue.extend(seqs)
            sent += seqs
        outstanding.append(len(image_queue))
        for _ in range(min(process_per_step, len(image_queue))):
            finish(store, request_id, [image_queue.popleft()])
        clock += 1.0
    assert sorted(sent) == list(range(images))  # each image once
    record = store.get_request(request_id)
    assert record is not None and record.fanout_completed_at is not None and record.done == images
    return outstanding


def test_a_duplicate_tail_skips_what_the_first_one_sent(store: Store) -> None:
    request_id = request_of(store, 120)
    root = handle_range(store, fanout.root_message(request_id, 120), 1, SHAPE, window=20, now=1000.0)
    (tail, _), = root.later
    finish(store, request_id, range(10))
    first = handle_range(store, tail.to_message(), 1, SHAPE, window=20, now=1001.0)
    again = handle_range(store, tail.to_message(), 1, SHAPE, window=20, now=1001.0)  # e.g. after a lost delete
    assert len(first.image_messages) == 5 and again.image_messages == []
    # A redelivery of the tail itself (its host may have died before writing) sends them again.
    assert len(handle_range(store, tail.to_message(), 2, SHAPE, window=20, now=1001.0).image_messages) == 5


def test_a_cancelled_request_stops_its_waiting_range_and_closes_its_fan_out(store: Store) -> None:
    request_id = request_of(store, 120)
    root = handle_range(store, fanout.root_message(request_id, 120), 1, SHAPE, window=20, now=1000.0)
    (tail, _), = root.later
    assert store.cancel_request(request_id)
    result = handle_range(store, tail.to_message(), 1, SHAPE, window=20, now=1001.0)
    assert (result.sub_ranges, result.image_messages, result.later) == ([], [], [])
    for sub_range in root.sub_ranges:  # the in-window ranges stop too
        assert handle_range(store, sub_range, 1, SHAPE, window=20).image_messages == []
    record = store.get_request(request_id)
    assert record is not None and record.fanout_completed_at is not None  # the sweep leaves it alone
    assert store.stalled_fanouts(datetime.now(UTC) + timedelta(hours=1)) == []


# --- the function: delayed sends before success; the sweep -------------------------------------------


@pytest.fixture()
def deps(store: Store, tmp_path: Path) -> Iterator[Any]:
    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                  "SQLITE_PATH": str(tmp_path / "db.sqlite3"), "FANOUT_WINDOW": "20",
                                  "FANOUT_LEAF_SIZE": "5", "FANOUT_BRANCHING": "3"})  # fmt: skip
    built = memory_dependencies(settings, store)
    functions_adapter.set_dependencies(built)
    yield built
    functions_adapter.set_dependencies(None)


class Out:
    value: Any = None

    def set(self, value: Any) -> None:
        self.value = value


def run_function(body: str) -> tuple[Out, Out, Out]:
    ranges, images, poison = Out(), Out(), Out()
    message = QueueMessage(id="m", body=body.encode(), dequeue_count=1)
    fanout_queue.main(message, ranges, images, poison)
    return ranges, images, poison


def test_the_function_sends_the_waiting_tail_delayed_through_the_sdk(deps: Any, store: Store) -> None:
    request_id = request_of(store, 120)
    ranges, images, poison = run_function(fanout.root_message(request_id, 120))
    assert poison.value is None and len(images.value) == 5 and len(ranges.value) == 3  # [5, 20) in window
    queue: MemoryQueue = deps.fanout_queue
    assert [(m["start"], m["end"], m["resume"]) for m in queue.sent] == [(20, 120, True)]
    assert queue.delays == [MIN_WAIT_S]
    assert deps.settings.fanout_window == 20


def test_a_failed_delayed_send_fails_the_invocation_so_the_range_comes_back(deps: Any, store: Store) -> None:
    request_id = request_of(store, 120)
    deps.fanout_queue.fail_after = 0
    with pytest.raises(TransientFailure):
        run_function(fanout.root_message(request_id, 120))


def test_the_sweep_leaves_a_fan_out_that_finishes_images_and_restarts_one_that_does_not(store: Store) -> None:
    waiting, stuck = request_of(store, 120), request_of(store, 120)
    for request_id in (waiting, stuck):
        handle_range(store, fanout.root_message(request_id, 120), 1, SHAPE, window=20)
    cutoff = datetime.now(UTC) + timedelta(milliseconds=1)
    while datetime.now(UTC) <= cutoff:
        pass
    finish(store, waiting, [0])  # finished after the cutoff, nothing handed out since
    restarts = fanout.sweep(store, stale_after_s=0.0, now=cutoff)
    assert [FanoutRange.from_message(m).request_id for m in restarts] == [stuck]


def test_fan_out_settings_default_to_a_window_and_zero_turns_it_off() -> None:
    base = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    assert Settings.from_env(base).fanout_window == 10_000
    assert Settings.from_env({**base, "FANOUT_WINDOW": "0"}).fanout_window == 0
    assert replace(Settings.from_env(base), fanout_window=5).fanout_window == 5
