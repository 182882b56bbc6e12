"""A broken function folder stops start-up with a message naming the function and what is wrong.

One fixture app per failure mode under tests/devhost/broken/ (no storage needed: HTTP-only apps).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.devhost.conftest import BROKEN, run_host


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("binding_not_parameter", ["greet", "declared in function.json but not in Python: ['req']"]),
        ("parameter_not_binding", ["greet", "declared in Python but not in function.json: ['extra']"]),
        ("import_error", ["greet", "module_that_does_not_exist_anywhere"]),
        ("missing_entry_point", ["greet", "entry point 'run' not found"]),
        ("missing_script", ["greet", "script file not found: nowhere.py"]),
        ("bad_function_json", ["greet", "cannot read function.json"]),
        ("unresolved_setting", ["greet", "binding 'out'", "DEVHOST_TEST_UNSET_SETTING"]),
    ],
)
def test_broken_folder_stops_start_up(tmp_path: Path, mode: str, expected: list[str]) -> None:
    host = run_host(tmp_path, BROKEN / mode, {})
    exit_code = host.wait_exit(timeout=60)
    output = host.output()
    assert exit_code == 2, output
    assert "Host failed to start" in output
    for text in expected:
        assert text in output, output
    assert "Host started" not in output
