"""One closing line for `make test`: ``total: N passed, N failed, N skipped``, from JUnit XML files.

`make test` is one pytest run now (xdist, the campaign as one group), whose own summary comes before
the wall time; this line stays last so a reader of the last line (a person, or CI) sees the totals.
It takes any number of files, so a run split in several still adds up.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path


def totals(paths: list[Path]) -> tuple[int, int, int]:
    passed = failed = skipped = 0
    for path in paths:
        if not path.exists():  # that run crashed before writing: its failure is in its exit status
            failed += 1
            continue
        for suite in ElementTree.parse(path).getroot().iter("testsuite"):
            tests, errors = int(suite.get("tests", 0)), int(suite.get("errors", 0))
            failures, skips = int(suite.get("failures", 0)), int(suite.get("skipped", 0))
            failed += failures + errors
            skipped += skips
            passed += tests - failures - errors - skips
    return passed, failed, skipped


def main(argv: list[str]) -> int:
    passed, failed, skipped = totals([Path(arg) for arg in argv])
    print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
