"""Tables in the Markdown docs that are written by code from a run's JSON, never pasted by hand.

A generated block sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``; its
content is rendered from ``docs/figures/NAME.json``, which is committed with it. ``tests/unit/
test_figures.py`` fails when a block no longer equals what its JSON renders to.

BENCHMARKS.md's blocks (``bench_kernel``, ``bench_pipeline``, ...) are rendered by the benchmarks'
own functions (``bench.figures``); ``make bench`` adopts each result it produces.

Usage:
    python -m devtools.figures reliability .data/reliability.json   # adopt a run's results
    python -m devtools.figures bench_kernel bench/out/kernel.json     # the same for a benchmark
    python -m devtools.figures                                        # re-render every block
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"

RELIABILITY_COLUMNS = ["scenario", "images", "lost", "stuck", "duplicates", "failed", "webhook posts/attempts",
                       "outcome", "faults and notes"]  # fmt: skip


def reliability_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """One table row per scenario: the checker's counts, the outcome, the faults, notes and problems."""
    table = []
    for row in rows:
        check = row.get("check")
        if check is None:
            cells = ["-"] * 6
        else:
            cells = [str(check["images"]), str(check["lost"]), str(check["stuck"]), str(check["duplicates"]),
                     str(check["failed"]), f"{check['webhook_posts']}/{check['webhook_attempts']}"]  # fmt: skip
        notes = row["faults"] + ((check["notes"] + check["problems"]) if check else [])
        table.append([row["scenario"], *cells, row["outcome"], "; ".join(notes)])
    return table


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_reliability(document: dict[str, Any]) -> str:
    run = document["run"]
    counts = ", ".join(f"{n} {word}" for word, n in run["outcomes"].items())
    intro = (f"From the run of {run['date']} (`{run['command']}`, {run['python']}, load {run['load_1m']}): "
             f"{counts}, {run['wall_s']:.0f} s.\n\n")  # fmt: skip
    return intro + markdown_table(RELIABILITY_COLUMNS, reliability_rows(document["rows"]))


def _renderers() -> dict[str, tuple[Path, Callable[[dict[str, Any]], str]]]:
    from bench import figures as bench_figures  # the benchmarks render their own tables

    renderers = {"reliability": (ROOT / "README.md", render_reliability)}
    for name, render in bench_figures.RENDERERS.items():
        renderers[f"bench_{name}"] = (ROOT / "BENCHMARKS.md", render)
    return renderers


RENDERERS = _renderers()


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated:{name} -->\n)(.*?)(<!-- /generated:{name} -->)", re.DOTALL)


def rendered(name: str) -> str:
    _, render = RENDERERS[name]
    return render(json.loads((FIGURES / f"{name}.json").read_text(encoding="utf-8")))


def current(name: str) -> str:
    path, _ = RENDERERS[name]
    match = _block(name).search(path.read_text(encoding="utf-8"))
    if match is None:
        raise LookupError(f"{path.name} has no generated:{name} block")
    return match.group(2)


def rewrite(name: str) -> None:
    path, _ = RENDERERS[name]
    text = path.read_text(encoding="utf-8")
    content = rendered(name)
    updated, count = _block(name).subn(lambda m: m.group(1) + content + m.group(3), text)
    if count != 1:
        raise LookupError(f"{path.name} must hold exactly one generated:{name} block, found {count}")
    path.write_text(updated, encoding="utf-8")


def adopt(name: str, source: Path | str) -> None:
    """Commit-ready: copy a run's JSON to docs/figures/NAME.json and re-render its block."""
    if name not in RENDERERS:
        raise LookupError(f"no generated block is called {name!r}")
    FIGURES.mkdir(parents=True, exist_ok=True)
    target = FIGURES / f"{name}.json"
    if Path(source).resolve() != target.resolve():  # re-rendering the committed JSON itself
        shutil.copyfile(source, target)
    rewrite(name)


def main(argv: list[str]) -> int:
    if len(argv) == 2:
        adopt(*argv)
    elif not argv:
        for name in RENDERERS:
            rewrite(name)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
