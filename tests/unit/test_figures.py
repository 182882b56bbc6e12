"""Generated tables in the docs equal what their committed JSON renders to (no hand-pasted figures)."""

from __future__ import annotations

import json
import re

import pytest

from devtools import figures


@pytest.mark.parametrize("name", sorted(figures.RENDERERS))
def test_generated_block_matches_its_json(name: str) -> None:
    assert figures.current(name) == figures.rendered(name), f"run: python -m devtools.figures (block {name})"


def test_reliability_table_shows_problems_and_faults() -> None:
    row = {"scenario": "Redis FLUSHALL mid-job", "outcome": "FAIL", "faults": ["FLUSHALL at 11/50"],
           "check": {"images": 50, "lost": 1, "stuck": 0, "duplicates": 0, "failed": 0, "webhook_posts": 1,
                     "webhook_attempts": 2, "notes": ["x | y"], "problems": ["1 images lost"]}}  # fmt: skip
    [cells] = figures.reliability_rows([row])
    assert cells == ["Redis FLUSHALL mid-job", "50", "1", "0", "0", "0", "1/2", "FAIL",
                     "FLUSHALL at 11/50; x | y; 1 images lost"]  # fmt: skip
    assert "x \\| y" in figures.markdown_table(figures.RELIABILITY_COLUMNS, [cells])


def test_the_committed_reliability_run_passed_every_scenario() -> None:
    document = json.loads((figures.FIGURES / "reliability.json").read_text())
    assert document["rows"], "the committed run has no scenarios"
    assert {row["outcome"] for row in document["rows"]} == {"pass"}


def test_every_table_in_benchmarks_md_is_a_generated_block() -> None:
    """Issue 12: BENCHMARKS.md's figures are rendered from committed JSON, none pasted by hand."""
    text = (figures.ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    outside = re.sub(r"<!-- generated:(\w+) -->\n.*?<!-- /generated:\1 -->", "", text, flags=re.DOTALL)
    code_free = re.sub(r"```.*?```", "", outside, flags=re.DOTALL)
    pasted = [line for line in code_free.splitlines() if line.lstrip().startswith("|")]
    assert not pasted, f"tables outside generated blocks: {pasted[:3]}"


def test_every_benchmark_block_has_its_committed_json() -> None:
    blocks = set(re.findall(r"<!-- generated:(\w+) -->", (figures.ROOT / "BENCHMARKS.md").read_text()))
    assert blocks == {name for name in figures.RENDERERS if name.startswith("bench_")}
    assert all((figures.FIGURES / f"{name}.json").exists() for name in blocks)
