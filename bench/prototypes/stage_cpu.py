"""CPU per image of every stage outside (and including) compression, each timed in one process.

Starts the stack with its fan-out and image functions disabled, posts ``--count`` 2 MP images,
then does the work of those functions itself, stage by stage, on the same Azurite, Redis and
SQLite: the fan-out (range handling, as ``fanout_queue`` does, and writing each message it
returns, as the host does for an output binding), then for every image message the stages of
``shared.process``, and the queue delete the host makes after a success. One thread, timed with
``time.process_time``: a stage's own CPU, steady even on a loaded machine (BENCHMARKS.md, "Where
the time and the CPU go", and "Staged fan-out: per-stage CPU").

Usage: ``python -m bench.prototypes.stage_cpu --count 200``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.harness import OUT_DIR, bench_stack, load_average, photos_dir
from bench.pipeline import photo_names

# The host runs neither function: this script does their work, stage by stage.
DISABLED = {"AzureWebJobs.process_queue.Disabled": "true", "AzureWebJobs.fanout_queue.Disabled": "true"}


def _receive_all(queue: Any, count: int) -> list[Any]:
    messages: list[Any] = []
    while len(messages) < count:
        page = list(next(queue.receive_messages(messages_per_page=32, visibility_timeout=600).by_page(), []))
        if not page:
            break
        messages += page
    return messages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out", default=str(OUT_DIR / "stage_cpu.json"))
    args = parser.parse_args(argv)
    names = photo_names(2.0, args.count)
    totals: dict[str, float] = {}

    def timed(name: str, call: Callable[..., Any], *call_args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        result = call(*call_args, **kwargs)
        totals[name] = totals.get(name, 0.0) + time.process_time() - started
        return result

    load = load_average()
    with bench_stack("stage-cpu", photos_dir(2.0), DISABLED) as stack:
        stack.run_accept_only(stack.urls(names))
        from shared import fanout, process
        from shared.container import build_dependencies
        from shared.imaging import compress_image
        from shared.models import ImageOutcome
        from shared.outbound import download
        from shared.queues import queue_client
        from shared.settings import Settings

        settings = Settings.from_env(stack.app.env)
        deps = build_dependencies(settings)
        store = deps.store
        shape = fanout.FanoutShape(settings.fanout_leaf_size, settings.fanout_branching)
        connection = settings.storage_connection_string
        fanout_queue = queue_client(connection, settings.fanout_queue)
        image_queue = queue_client(connection, settings.image_queue)

        pending = [message.content for message in _receive_all(fanout_queue, 1)]
        while pending:
            result = timed("fan-out: range handling (function)", fanout.handle_range, store, pending.pop(), 1, shape)
            for body in result.image_messages:
                timed("fan-out: output write (host)", image_queue.send_message, body)
            pending += result.sub_ranges

        messages = _receive_all(image_queue, args.count)
        for message in messages:
            task = timed("parse", process.parse_task, message.content)
            timed("image_state", store.image_state, task.request_id, task.seq)
            timed("mark_started", store.mark_started, task.request_id, task.seq)
            data = timed(
                "download", download, deps.http, task.url,
                max_bytes=settings.max_image_bytes, connect_timeout_s=5, read_timeout_s=20,
            )  # fmt: skip
            image = timed(
                "compress", compress_image, data,
                quality=settings.jpeg_quality, max_pixels=settings.max_image_pixels, size_target_ratio=0.0,
            )  # fmt: skip
            url = timed(
                "output put", deps.output.put,
                f"{task.request_id}/{task.seq:05d}.jpg", image.data, image.content_type,
            )  # fmt: skip
            outcome = ImageOutcome(url, len(data), len(image.data), image.width, image.height, image.format,
                                   image.quality, 0, 0, 0)  # fmt: skip
            timed("record_done", store.record_done, task.request_id, task.seq, outcome)
            reseed = timed("fan-in re-seed check", store.fanin_reseed_needed, task.request_id)
            timed(
                "redis fan-in", deps.completion.record, task.request_id, task.seq, task.total,
                seed=lambda request_id=task.request_id: store.terminal_seqs(request_id), reseed=reseed,
            )  # fmt: skip
            timed("queue delete (host)", image_queue.delete_message, message.id, message.pop_receipt)
        fanout_queue.close()
        image_queue.close()
        deps.close()
    per_image = {name: round(seconds * 1000 / max(1, len(messages)), 3) for name, seconds in totals.items()}
    outside = round(sum(ms for name, ms in per_image.items() if name != "compress"), 3)
    for name, ms in per_image.items():
        print(f"{name:36} {ms:7.2f} ms CPU per image")
    print(f"{'all but compress':36} {outside:7.2f} ms CPU per image  ({len(messages)} images, load {load})")
    record = {"benchmark": "stage_cpu", "images": len(messages), "load_average_1m": load,
              "ms_cpu_per_image": per_image, "outside_compression_ms": outside}  # fmt: skip
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(record, handle, indent=2)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
