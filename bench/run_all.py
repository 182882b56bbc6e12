"""Every benchmark in one run, side by side, then the tables and plots (``make bench``).

Runs, each as its own process (a failure is reported and the others still run): the kernel
ceiling, the pipeline (which reads the kernel's result of this run for its ratio), fan-out,
scaling, memory, the decode bombs, the CSV shapes, the queue costs, issue 9's targets (with their
own kernel run; they adopt their result and docs/fanout_timeline.png except in ``--quick``); then
``bench.report``.
Last, every result this run produced is adopted as the committed figures: copied to
``docs/figures/bench_NAME.json`` and rendered into BENCHMARKS.md's generated blocks
(``bench.figures``; ``--no-figures`` leaves them alone), ready to commit with the JSON.
Sized to finish in about 12 minutes on a quiet 2-core machine, photo generation included;
``--quick`` shrinks every size for a smoke run (~3 minutes), ``--full`` runs the job-size series
on 2 MP photos instead of 0.5 MP (about 4 minutes more) and the 10,000 x 20 CSV processed end to
end with tiny images (``bench.limit_job``, about half an hour). ``bench.targets --limit`` (that CSV's
fan-out with processing disabled) is left out: against Azurite, whose sends slow down as messages pile
up, it does not finish in useful time (BENCHMARKS.md).

Usage: ``python -m bench.run_all [--quick | --full] [--only NAMES] [--no-figures]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from bench.harness import REPO_ROOT


def plan(quick: bool, full: bool) -> list[tuple[str, list[str]]]:
    cpus = str(os.cpu_count() or 1)
    if quick:
        return [
            ("kernel", ["--count", "60", "--processes", cpus, "--repeats", "2"]),
            ("pipeline", ["--count", "200", "--repeats", "1"]),
            ("fanout", ["--sizes", "1000", "--repeats", "1"]),
            ("scaling", ["--workers", "1,2", "--count", "200", "--sizes", "100,500"]),
            ("memory", ["--photos", "8", "--threads", "8", "--skip-csv"]),
            ("bombs", ["--repeats", "1"]),
            ("csv_shapes", ["--repeats", "1"]),
            ("queue_costs", ["--ops", "100", "--backlogs", "100,200,1000,5000"]),
            ("targets", ["--count", "60", "--concurrent", "2x30", "--big", "1000", "--repeats", "1", "--no-write"]),
            ("report", []),
        ]
    return [
        ("kernel", ["--count", "200", "--processes", cpus, "--repeats", "3"]),
        ("pipeline", ["--count", "1000", "--repeats", "2"]),
        ("fanout", ["--sizes", "1000,10000", "--repeats", "2"]),
        (
            "scaling",
            [
                "--workers",
                "1,2,4,2x2",
                "--count",
                "1000",
                "--sizes",
                "100,1000,5000",
                "--sizes-mp",
                "2" if full else "0.5",
            ],
        ),
        ("memory", ["--photos", "32", "--threads", "8,2"]),
        ("bombs", ["--repeats", "3"]),
        ("csv_shapes", ["--repeats", "2"]),
        ("queue_costs", []),
        (
            "targets",
            ["--count", "200", "--concurrent", "4x50", "--big", "5000,20000", "--repeats", "2"],
        ),
        *([("limit_job", [])] if full else []),
        ("report", []),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    size.add_argument("--full", action="store_true", help="the job-size series on 2 MP photos")
    parser.add_argument("--only", default="", help="comma-separated benchmark names to run")
    parser.add_argument("--no-figures", action="store_true", help="leave docs/figures and BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    only = {name for name in args.only.split(",") if name}
    failed: list[str] = []
    succeeded: list[str] = []
    started = time.monotonic()
    for name, options in plan(args.quick, args.full):
        if only and name not in only:
            continue
        print(
            f"\n=== bench.{name} {' '.join(options)}  (load {os.getloadavg()[0]:.2f}, "
            f"{time.monotonic() - started:.0f}s elapsed)",
            flush=True,
        )
        code = subprocess.call([sys.executable, "-m", f"bench.{name}", *options], cwd=REPO_ROOT)
        if code != 0:
            failed.append(name)
            print(f"bench.{name} failed with exit code {code}", flush=True)
        else:
            succeeded.append(name)
    # targets adopts its own result (unless --no-write); report only renders bench/out/summary.md.
    adopted = [name for name in succeeded if name not in ("targets", "report")]
    if adopted and not args.no_figures:
        print(f"\n=== bench.figures {' '.join(adopted)}: docs/figures/bench_*.json and BENCHMARKS.md", flush=True)
        if subprocess.call([sys.executable, "-m", "bench.figures", *adopted], cwd=REPO_ROOT) != 0:
            failed.append("figures")
    print(
        f"\nall benchmarks: {time.monotonic() - started:.0f}s; results in bench/out/ "
        f"(summary.md, *.json, *.png){'; FAILED: ' + ', '.join(failed) if failed else ''}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
