"""BENCHMARKS.md's tables as generated blocks, rendered from each benchmark's committed JSON.

Each benchmark's result (``bench/out/NAME.json``, as the benchmark wrote it) is committed as
``docs/figures/bench_NAME.json`` and rendered into the ``<!-- generated:bench_NAME -->`` block of
BENCHMARKS.md by the mechanism in ``devtools.figures`` (which ``tests/unit/test_figures.py`` checks).
The renderers are the benchmarks' own (``bench.report``'s sections, ``bench.targets.markdown``).

Usage: ``python -m bench.figures kernel pipeline ...`` adopts those results of the last run from
``bench/out/`` (``make bench`` does it for every benchmark it ran) and redraws the plots from the
adopted JSON; ``python -m devtools.figures`` re-renders every block from the committed JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from bench import limit_job, queue_costs, report, targets
from bench.harness import OUT_DIR, REPO_ROOT


def _text(lines: list[str]) -> str:
    return "\n".join(lines).rstrip("\n") + "\n"


def _when(document: dict[str, Any]) -> str:
    """When the run was, from whichever field the benchmark recorded it in."""
    date = document.get("run_at") or document.get("environment", {}).get("date_utc")
    if not date and document.get("at"):
        date = str(document["at"])[:16].replace("T", " ")
    return f"{date} UTC" if date else "(date not recorded)"


def _dated(section: Callable[[dict[str, Any]], list[str]]) -> Callable[[dict[str, Any]], str]:
    """A bench.report section, preceded by when it was measured and on what."""

    def render(document: dict[str, Any]) -> str:
        env = document.get("environment", {})
        intro = f"Run {_when(document)}, {env.get('cpus', '?')} CPUs, Python {env.get('python', '?')}."
        return _text([intro, "", *section(document)])

    return render


def _bombs(document: dict[str, Any]) -> str:
    env, params = document["environment"], document["params"]
    lines = [
        f"Run {_when(document)}: `python -m bench.bombs --repeats {params['repeats']}`, "
        f"{env['cpus']} CPUs, Python {env['python']}, Pillow {env['pillow']}; `compress_image` with "
        f"quality {params['quality']} and max_pixels {params['max_pixels']:,} (the production defaults), "
        "each case in a fresh process; peak RSS is the process's VmHWM.",
        "",
        "| case | file bytes | outcome | seconds (median) | peak RSS MiB | growth in the call MiB | load 1m |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['label']} | {r['bytes']:,} | {r['outcome']} | {r['seconds_median']} | {r['rss_peak_mib']} | "
        f"{r['rss_growth_mib']} | {r['load_average_1m']} |"
        for r in document["results"]
    ]
    return _text(lines)


def _csv_shapes(document: dict[str, Any]) -> str:
    env, params = document["environment"], document["params"]
    lines = [
        f"Run {_when(document)}: `python -m bench.csv_shapes --repeats {params['repeats']}`, "
        f"{env['cpus']} CPUs, Python {env['python']}; `parse_products` with MAX_PRODUCTS "
        f"{params['max_products']:,} and MAX_URLS_PER_ROW {params['max_urls_per_row']} unless the row says "
        "the product limit was lifted.",
        "",
        "| shape | MB | lines | outcome | best s | median s | load 1m |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['label']} | {r['bytes'] / 1e6:.1f} | {r['lines']:,} | {r['outcome']} | {r['seconds_best']} | "
        f"{r['seconds_median']} | {r['load_average_1m']} |"
        for r in document["results"]
    ]
    return _text(lines)


def _targets(document: dict[str, Any]) -> str:
    return targets.markdown(document)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "kernel": _dated(report._kernel_section),
    "pipeline": _dated(report._pipeline_section),
    "fanout": _dated(report._fanout_section),
    "scaling": _dated(report._scaling_section),
    "memory": _dated(report._memory_section),
    "bombs": _bombs,
    "csv_shapes": _csv_shapes,
    "targets": _targets,
    "queue_costs": queue_costs.markdown,
    "limit_job": limit_job.markdown,
}

PLOTS = {
    "pipeline": ("bench_breakdown.png", report.plot_breakdown),
    "scaling": ("bench_scaling.png", report.plot_scaling),
}


def adopt(names: Sequence[str]) -> None:
    """Copy these benchmarks' last results into docs/figures, re-render their blocks and plots."""
    import json

    from devtools import figures

    for name in names:
        if name not in RENDERERS:
            continue
        source = OUT_DIR / f"{name}.json"
        if not source.exists():
            print(f"bench.figures: no {source}, block bench_{name} left as it was", file=sys.stderr)
            continue
        figures.adopt(f"bench_{name}", source)
        if name in PLOTS:
            document = json.loads(source.read_text())
            if name == "scaling" and not document["by_workers"]:
                continue
            file_name, plot = PLOTS[name]
            plot(document, REPO_ROOT / "docs" / file_name)


def main(argv: Sequence[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    adopt(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
