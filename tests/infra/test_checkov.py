"""checkov scans the Bicep template offline with zero failed checks.

checkov runs from its own venv (.venv-checkov, `make checkov`; see requirements-checkov.txt for why).
Locally a missing checkov skips this test; in CI (CI=true) it fails it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devtools.servers import in_ci
from tests.infra.bicep_model import INFRA, ROOT

# Checks that cannot be skipped by a comment, because checkov 3.3 does not apply skip comments to
# Bicep graph checks (bicep/runner.py add_graph_check_results). Each is justified in a comment next
# to the resource in infra/modules/sql.bicep, which this file checks.
COMMAND_LINE_SKIPS = {
    "CKV_AZURE_23": "per-database auditing; server auditing covers every database (asserted in test_bicep_template)",
    "CKV_AZURE_25": "threat detection needs Microsoft Defender for SQL, a paid plan chosen by the subscription owner",
}


def _checkov() -> Path | None:
    venv = ROOT / ".venv-checkov" / "bin" / "checkov"
    if venv.exists():
        return venv
    found = shutil.which("checkov")
    return Path(found) if found else None


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    exe = _checkov()
    if exe is None:
        reason = "checkov is not installed: run `make checkov` (it lives in .venv-checkov)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    # No network: --skip-download and BC_SKIP_MAPPING keep checkov from asking Prisma Cloud for
    # guidelines, and CKV_SKIP_PACKAGE_UPDATE_CHECK from asking PyPI for a newer version.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE"}
    result = subprocess.run(
        [str(exe), "--directory", str(INFRA), "--framework", "bicep", "--skip-download",
         "--skip-check", ",".join(sorted(COMMAND_LINE_SKIPS)), "--output", "json"],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )
    assert result.stdout.strip(), f"checkov printed nothing (exit {result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_reports_no_failed_check(checkov_report: dict) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): {c['check_name']}"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 20 and summary["resource_count"] > 20  # it really scanned the template
    assert not failed, "\n".join(failed)


def test_every_skip_is_justified_next_to_its_resource(checkov_report: dict) -> None:
    for skipped in checkov_report["results"]["skipped_checks"]:
        comment = skipped.get("check_result", {}).get("suppress_comment", "")
        assert len(comment.strip()) > 20, f"{skipped['check_id']} on {skipped['resource']} is skipped without a reason"
    sql = (INFRA / "modules" / "sql.bicep").read_text()
    for check_id in COMMAND_LINE_SKIPS:
        assert check_id in sql, f"{check_id} is skipped on the command line but not justified in sql.bicep"
