"""`make test`'s closing line adds up both pytest runs, and counts a run that left no report as failed."""

from __future__ import annotations

from pathlib import Path

from devtools.suite_summary import totals


def test_totals_add_up_both_runs_and_a_missing_report_fails(tmp_path: Path) -> None:
    first = tmp_path / "a.xml"
    first.write_text('<testsuites><testsuite tests="10" failures="1" errors="1" skipped="2"/></testsuites>')
    second = tmp_path / "b.xml"
    second.write_text('<testsuites><testsuite tests="5" failures="0" errors="0" skipped="0"/></testsuites>')
    assert totals([first, second]) == (11, 2, 2)
    assert totals([first, tmp_path / "missing.xml"]) == (6, 3, 2)
