"""The suite's own hygiene: no statement hides after the raising call inside ``pytest.raises``.

Everything after the call that raises never runs, so an assertion there can never fail (four did,
in test_outbound.py, until this check).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _raises_blocks_with_dead_statements(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.With | ast.AsyncWith):
            continue
        raises = any(
            isinstance(item.context_expr, ast.Call) and getattr(item.context_expr.func, "attr", "") == "raises"
            for item in node.items
        )
        if raises and len(node.body) > 1:
            lines.append(node.lineno)
    return lines


def test_the_check_finds_a_dead_assertion() -> None:
    source = "with pytest.raises(ValueError):\n    f()\n    assert x\n"
    assert _raises_blocks_with_dead_statements(source) == [1]


def test_no_test_has_statements_after_the_raising_call() -> None:
    found = {
        str(path.relative_to(TESTS)): lines
        for path in TESTS.rglob("*.py")
        if (lines := _raises_blocks_with_dead_statements(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_no_two_test_modules_share_a_file_name() -> None:
    # The test folders are not packages, so pytest imports modules by file name: two of the same
    # name in different folders fail collection ("import file mismatch").
    names = [path.name for path in TESTS.rglob("test_*.py")]
    assert sorted({name for name in names if names.count(name) > 1}) == []
