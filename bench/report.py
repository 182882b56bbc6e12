"""Collect the benchmarks' JSON into Markdown tables and two PNG plots.

Reads ``bench/out/{kernel,pipeline,fanout,scaling,memory}.json`` (whichever exist), writes
``bench/out/summary.md`` (the tables BENCHMARKS.md quotes), ``bench/out/bench_scaling.png``
(images/s against worker processes, with the kernel ceiling) and ``bench/out/bench_breakdown.png``
(where an image's time and the machine's CPU go).

Usage: ``python -m bench.report`` (``make bench`` runs it last).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.harness import OUT_DIR


def _load(name: str) -> dict[str, Any] | None:
    path = OUT_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _kernel_section(kernel: dict[str, Any]) -> list[str]:
    s = kernel["summary"]
    title = (
        f"### Kernel ceiling ({s['images']} photos of {kernel['params']['megapixels_per_photo']:g} MP, "
        f"{s['processes']} processes, load {kernel['environment']['load_average_1m']})"
    )
    rows = [
        [label, s[label]["images_per_s"], s[label]["mp_per_s"], s[label]["images_per_s_per_process"]]
        for label in ("best", "median")
    ]
    return [title, "", *_table(["", "images/s", "MP/s", "images/s per process"], rows)]


def _pipeline_section(p: dict[str, Any]) -> list[str]:
    params = p["params"]
    lines = [
        f"### Pipeline ({params['count']} photos of {params['megapixels']:g} MP, {params['workers']} worker "
        "processes, POST to webhook)",
        "",
    ]
    rows = []
    for n, r in enumerate(p["runs"], 1):
        rows.append(
            [
                n,
                r["accept_s"],
                r["total_s"],
                r["images_per_s"],
                r["app_cpu_s_per_image"],
                r["cpu_s_per_image"]["host workers"],
                r["cpu_s_per_image"]["host"],
                r["cpu_s_per_image"]["azurite"],
                r["cpu_s_per_image"]["redis"],
                r["load_average_1m"],
            ]
        )
    lines += _table(
        [
            "run",
            "to 202 s",
            "to webhook s",
            "images/s",
            "app CPU s/image",
            "workers",
            "host",
            "Azurite",
            "Redis",
            "load 1m",
        ],
        rows,
    )
    kernel = p.get("kernel")
    if kernel:
        ratio = p["ratio_to_kernel"]
        lines += [
            f"Kernel ceiling in the same run: {kernel['images_per_s_best']} images/s best, "
            f"{kernel['images_per_s_median']} median (load {kernel['load_average_1m']}). "
            f"Ratio pipeline/kernel: **{ratio['best_vs_best']}** best vs best, {ratio['median_vs_median']} "
            "median vs median.",
            "",
        ]
    if p.get("kernel_cpu_s_per_image"):
        lines += [
            f"CPU per image: one compression takes {p['kernel_cpu_s_per_image']} s of CPU (measured in this run, "
            f"one thread); CPU efficiency (that / the whole app's CPU per image, servers included): "
            f"**{p['cpu_efficiency']}**; the worker processes alone: **{p['cpu_efficiency_workers_only']}**.",
            "",
        ]
    breakdown = p.get("breakdown")
    if breakdown:
        lines += ["Per-image stages (latency under load, ms):", ""]
        rows = [
            [stage, f.get("median_ms"), f.get("mean_ms"), f.get("p95_ms")]
            for stage, f in breakdown.items()
            if "median_ms" in f
        ]
        lines += _table(["stage", "median", "mean", "p95"], rows)
        unloaded = breakdown["unloaded costs (measured separately, same servers)"]
        lines += [
            "Unloaded per-call costs on the same servers (ms): "
            + ", ".join(f"{k.removesuffix('_ms')} {v}" for k, v in unloaded.items()),
            "",
        ]
    return lines


def _fanout_section(f: dict[str, Any]) -> list[str]:
    rows = [
        [
            r["images"],
            r["raw_send_s"]["min"],
            r["raw_messages_per_s"],
            r["app_accept_s"]["min"],
            r["app_accept_s"]["median"],
            r["app_fanout_only_s"]["min"],
            r["app_messages_per_s_fanout_only"],
            r["ratio_fanout_only_vs_raw"],
            r["load_average_1m"],
        ]
        for r in f["results"]
    ]
    header = [
        "images",
        "raw s (min)",
        "raw msg/s",
        "to 202 s (min)",
        "to 202 s (median)",
        "fan-out only s",
        "app msg/s (fan-out only)",
        "app/raw (fan-out only)",
        "load 1m",
    ]
    title = "### Fan-out (staged: created to fan-out completed, processing disabled) vs a raw 32-thread send loop"
    return [title, "", *_table(header, rows)]


def _scaling_section(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    kernel_cpu = s.get("kernel_cpu_s_per_image")
    if s["by_workers"]:
        ceiling = (s.get("kernel") or {}).get("images_per_s_best")
        lines += [f"### Worker processes ({s['params']['count']} photos of 2 MP)", ""]
        header = [
            "processes x threads",
            "images/s",
            "vs kernel images/s",
            "CPU efficiency",
            "to 202 s",
            "app CPU s/image",
            "workers",
            "host",
            "Azurite",
            "load 1m",
        ]
        rows = [
            [
                f"{r['workers']} x {r.get('threads')}",
                r["images_per_s"],
                round(r["images_per_s"] / ceiling, 2) if ceiling else "",
                round(kernel_cpu / r["app_cpu_s_per_image"], 2) if kernel_cpu else "",
                r["accept_s"],
                r["app_cpu_s_per_image"],
                r["cpu_s_per_image"]["host workers"],
                r["cpu_s_per_image"]["host"],
                r["cpu_s_per_image"]["azurite"],
                r["load_average_1m"],
            ]
            for r in s["by_workers"]
        ]
        lines += _table(header, rows)
    if s["by_job_size"]:
        size_cpu = s.get("kernel_cpu_s_per_image_sizes_mp")
        lines += [
            f"### Job size ({s['params']['sizes_mp']:g} MP photos, 2 worker processes, one stack"
            + (f"; one compression: {size_cpu} CPU s)" if size_cpu else ")"),
            "",
        ]
        header = [
            "images",
            "images/s",
            "CPU efficiency",
            "to 202 s",
            "app CPU s/image",
            "workers",
            "host",
            "Azurite",
            "load 1m",
        ]
        rows = [
            [
                r["size"],
                r["images_per_s"],
                round(size_cpu / r["app_cpu_s_per_image"], 2) if size_cpu else "",
                r["accept_s"],
                r["app_cpu_s_per_image"],
                r["cpu_s_per_image"]["host workers"],
                r["cpu_s_per_image"]["host"],
                r["cpu_s_per_image"]["azurite"],
                r["load_average_1m"],
            ]
            for r in s["by_job_size"]
        ]
        lines += _table(header, rows)
    return lines


def _memory_section(m: dict[str, Any]) -> list[str]:
    lines = ["### Memory (RSS summed over the host's process tree)", ""]
    rows = []
    for photos in m.get("large_photos", []):
        b = photos["bound"]
        rows.append(
            [
                f"{photos['photos']} photos of {photos['megapixels']} MP, {photos['workers']} processes x "
                f"{photos['threads']} threads ({photos['images_per_s']} images/s)",
                photos["idle_rss_mb"],
                photos["peak_rss_mb"],
                photos["growth_mb"],
                f"{b['decoding_at_once']} x {b['per_image_mb']} = {b['bound_growth_mb']}",
                photos["load_average_1m"],
            ]
        )
    csv_case = m.get("large_csv")
    if csv_case:
        rows.append(
            [
                f"{csv_case['csv_bytes'] / 1e6:.1f} MB CSV, {csv_case['images']} images (202 after "
                f"{csv_case['accept_s']} s)",
                csv_case["idle_rss_mb"],
                csv_case["peak_rss_mb"],
                csv_case["growth_mb"],
                "",
                csv_case["load_average_1m"],
            ]
        )
    return lines + _table(["case", "idle MB", "peak MB", "growth MB", "bound: images at once x MB", "load 1m"], rows)


def plot_scaling(s: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plain = [r for r in s["by_workers"] if "x" not in r.get("config", "")]
    workers = [r["workers"] for r in plain]
    rates = [r["images_per_s"] for r in plain]
    fig, ax = plt.subplots(figsize=(7.5, 3.2), dpi=100)
    ax.plot(workers, rates, marker="o", label=f"pipeline, POST to webhook ({plain[0]['threads']} threads each)")
    for r in plain:
        ax.annotate(
            f"load {r['load_average_1m']:g}",
            (r["workers"], r["images_per_s"]),
            fontsize=6,
            textcoords="offset points",
            xytext=(4, 4),
        )
    for r in s["by_workers"]:
        if "x" in r.get("config", ""):
            ax.annotate(
                f"load {r['load_average_1m']:g}",
                (r["workers"], r["images_per_s"]),
                fontsize=6,
                textcoords="offset points",
                xytext=(6, -3),
            )
            ax.plot(
                [r["workers"]],
                [r["images_per_s"]],
                marker="s",
                linestyle="",
                color="tab:green",
                label=f"{r['workers']} processes x {r['threads']} threads",
            )
    kernel = s.get("kernel")
    if kernel:
        ax.axhline(kernel["images_per_s_best"], color="grey", linestyle="--", label="kernel ceiling (bare Pillow)")
        ax.axhline(0.85 * kernel["images_per_s_best"], color="grey", linestyle=":", label="target 0.85 x ceiling")
    ax.set_xticks(workers)
    ax.set_xlabel("worker processes (FUNCTIONS_WORKER_PROCESS_COUNT)")
    ax.set_ylabel("images/s (2 MP)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{s['params']['count']} photos, {s['environment']['cpus']} cores", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_breakdown(p: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = max(p["runs"], key=lambda r: r["images_per_s"])
    cpu = {k: v * 1000 for k, v in best["cpu_s_per_image"].items() if k != "benchmark driver"}
    compression = (p.get("kernel_cpu_s_per_image") or 0) * 1000
    if compression:  # split the workers' CPU into the compression itself and the rest of the work
        workers = cpu.pop("host workers")
        cpu = {"workers: compression": compression, "workers: the rest": workers - compression, **cpu}
    breakdown = p["breakdown"]
    latency = {
        k: breakdown[k]["mean_ms"]
        for k in (
            "download",
            "decode+encode",
            "store output",
            "started..finished, rest (record_done)",
            "invocation outside started..finished",
        )
        if k in breakdown
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.4), dpi=100)
    left.barh(list(cpu), list(cpu.values()), color="tab:blue")
    left.set_xlabel("CPU ms per 2 MP image, by process")
    right.barh(list(latency), list(latency.values()), color="tab:orange")
    right.set_xlabel("mean latency ms per image, by stage")
    for ax in (left, right):
        ax.tick_params(axis="y", labelsize=7)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    lines: list[str] = []
    kernel, pipeline, fanout, scaling, memory = (
        _load(n) for n in ("kernel", "pipeline", "fanout", "scaling", "memory")
    )
    if kernel:
        lines += _kernel_section(kernel)
    if pipeline:
        lines += _pipeline_section(pipeline)
        if pipeline.get("breakdown"):
            plot_breakdown(pipeline, OUT_DIR / "bench_breakdown.png")
    if fanout:
        lines += _fanout_section(fanout)
    if scaling:
        lines += _scaling_section(scaling)
        if scaling["by_workers"]:
            plot_scaling(scaling, OUT_DIR / "bench_scaling.png")
    if memory:
        lines += _memory_section(memory)
    text = "\n".join(lines)
    (OUT_DIR / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
