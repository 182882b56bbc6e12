"""CPU per stage of ``process_image``, each stage timed with ``time.process_time`` in one process.

Fans out ``--count`` 2 MP images with processing disabled, then receives the messages itself and
runs the stages of ``shared.process`` one by one on the same Azurite, Redis and SQLite (the
figures in BENCHMARKS.md's "Where the time and the CPU go"). One thread, so process time is the
stage's own CPU: steady even on a loaded machine.

Usage: ``python -m bench.prototypes.stage_cpu --count 200``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.fanout import DISABLE_PROCESSING
from bench.harness import bench_stack, photos_dir
from bench.pipeline import photo_names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(argv)
    names = photo_names(2.0, args.count)
    with bench_stack("stage-cpu", photos_dir(2.0), DISABLE_PROCESSING) as stack:
        stack.run_accept_only(stack.urls(names))
        from shared import process
        from shared.container import build_dependencies
        from shared.imaging import compress_image
        from shared.models import ImageOutcome
        from shared.outbound import download
        from shared.queues import queue_client
        from shared.settings import Settings

        settings = Settings.from_env(stack.app.env)
        deps = build_dependencies(settings)
        queue = queue_client(settings.storage_connection_string, settings.image_queue)
        messages: list[Any] = []
        while len(messages) < args.count:
            page = list(next(queue.receive_messages(messages_per_page=32, visibility_timeout=600).by_page(), []))
            if not page:
                break
            messages += page
        totals: dict[str, float] = {}

        def timed(name: str, call: Callable[..., Any], *call_args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            result = call(*call_args, **kwargs)
            totals[name] = totals.get(name, 0.0) + time.process_time() - started
            return result

        store = deps.store
        for message in messages:
            task = timed("parse", process.parse_task, message.content)
            timed("image_status", store.image_status, task.request_id, task.seq)
            timed("mark_started", store.mark_started, task.request_id, task.seq)
            data = timed(
                "download",
                download,
                deps.http,
                task.url,
                max_bytes=settings.max_image_bytes,
                connect_timeout_s=5,
                read_timeout_s=20,
            )
            image = timed(
                "compress",
                compress_image,
                data,
                quality=settings.jpeg_quality,
                max_pixels=settings.max_image_pixels,
                size_target_ratio=0.0,
            )
            url = timed(
                "output put",
                deps.output.put,
                f"{task.request_id}/{task.seq:05d}.jpg",
                image.data,
                image.content_type,
            )
            outcome = ImageOutcome(
                output_url=url,
                bytes_in=len(data),
                bytes_out=len(image.data),
                width=image.width,
                height=image.height,
                format=image.format,
                quality=image.quality,
                download_ms=0,
                process_ms=0,
                store_ms=0,
            )
            timed("record_done", store.record_done, task.request_id, task.seq, outcome)
            timed(
                "redis fan-in",
                deps.completion.record,
                task.request_id,
                task.seq,
                task.total,
                seed=lambda request_id=task.request_id: store.terminal_seqs(request_id),
            )
            timed("queue delete (client)", queue.delete_message, message.id, message.pop_receipt)
        queue.close()
        deps.close()
    for name, seconds in totals.items():
        print(f"{name:24} {seconds * 1000 / max(1, len(messages)):7.2f} ms CPU per image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
