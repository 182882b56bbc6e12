"""Measure the images-per-message prototype: the same job with 1 and with N images per message.

Run it in a scratch copy of the repository with ``images_per_message.patch`` applied (the
patched fan-out reads ``PROTO_IMAGES_PER_MESSAGE``; unpatched code ignores it, so both runs
would match): ``python -m bench.prototypes.images_per_message --count 600 --per 1,8``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from bench.harness import bench_stack, photos_dir, warm_up
from bench.pipeline import measure_job, photo_names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--per", default="1,8", help="images per message to compare")
    args = parser.parse_args(argv)
    names = photo_names(2.0, args.count)
    for per in args.per.split(","):
        with bench_stack(f"proto-{per}", photos_dir(2.0), {"PROTO_IMAGES_PER_MESSAGE": per}) as stack:
            warm_up(stack, names)
            run = measure_job(stack, stack.urls(names))
        keys = ("accept_s", "total_s", "images_per_s", "app_cpu_s_per_image", "cpu_s_per_image", "load_average_1m")
        print(json.dumps({"images_per_message": int(per), **{k: run[k] for k in keys}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
