"""Fixtures and the report of the reliability campaign.

Each scenario records the ``JobCheck`` of its job with the ``campaign`` fixture; the outcome of the
test is added from its report; at the end of the session the table is written to ``.data/reliability.md``
and ``.data/reliability.json`` by the process that ran the scenarios, and printed.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.apphost import ROOT, TEST_WEBHOOK_SECRET
from devtools.figures import RELIABILITY_COLUMNS, markdown_table, reliability_rows
from devtools.suite_schedule import WORKER_SECTIONS
from devtools.webhook_receiver import WebhookReceiver, running_receiver
from tests.reliability.checker import JobCheck

REPORT_PATH = ROOT / ".data" / "reliability.md"
REPORT_JSON_PATH = ROOT / ".data" / "reliability.json"


@dataclass
class CampaignRow:
    scenario: str
    check: JobCheck | None = None
    faults: list[str] = field(default_factory=list)  # what was injected, and when (e.g. "kill at 12/50")
    outcome: str = "not run"


_ROWS: dict[str, CampaignRow] = {}


class Campaign:
    """The handle a scenario uses to put its measurements in the table."""

    def __init__(self, row: CampaignRow) -> None:
        self.row = row

    def fault(self, text: str) -> None:
        self.row.faults.append(text)

    def record(self, check: JobCheck) -> JobCheck:
        self.row.check = check
        return check


@pytest.fixture()
def campaign(request: pytest.FixtureRequest) -> Campaign:
    row = _ROWS.setdefault(request.node.nodeid, CampaignRow(scenario=_scenario_name(request.node)))
    return Campaign(row)


@pytest.fixture()
def make_webhook() -> Iterator[Callable[..., WebhookReceiver]]:
    """Webhook receivers with a script (statuses or "hang" answered before 200s) and hang time."""
    with ExitStack() as stack:

        def make(**options: Any) -> WebhookReceiver:
            return stack.enter_context(running_receiver(TEST_WEBHOOK_SECRET, **options))

        yield make


@pytest.fixture()
def webhook(make_webhook: Callable[..., WebhookReceiver]) -> WebhookReceiver:
    return make_webhook()


def _scenario_name(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None)
    title = (doc or item.name).strip().splitlines()[0].rstrip(".")
    if "[" in item.name:
        title += f" [{item.name.split('[', 1)[1]}"
    return title


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if item.get_closest_marker("reliability") is None:
        return report
    row = _ROWS.setdefault(item.nodeid, CampaignRow(scenario=_scenario_name(item)))
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            row.outcome = "xfail (bug)" if report.skipped else "XPASS"
        elif report.passed:
            row.outcome = "pass"
        elif report.skipped:
            row.outcome = "skipped"
        else:
            row.outcome = "FAIL"
    return report


def render_table(rows: list[CampaignRow]) -> str:
    return markdown_table(RELIABILITY_COLUMNS, reliability_rows([_as_json(row) for row in rows]))


def _as_json(row: CampaignRow) -> dict[str, Any]:
    return {"scenario": row.scenario, "outcome": row.outcome, "faults": row.faults,
            "check": None if row.check is None else asdict(row.check)}  # fmt: skip


_STARTED = time.monotonic()
_REPORT = pytest.StashKey[str]()
_OUTCOME_WORDS = {"pass": "passed", "FAIL": "failed", "skipped": "skipped", "xfail (bug)": "xfailed",
                  "XPASS": "xpassed", "not run": "not run"}  # fmt: skip


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the report where the scenarios ran; under xdist that is a worker, not the controller.

    The table goes to the terminal from ``pytest_terminal_summary`` below in a serial run, and through
    ``config.workeroutput`` to the controller under xdist (printed by ``devtools.suite_schedule``).
    """
    rows = list(_ROWS.values())
    if not rows:
        return
    table = render_table(rows)
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text("# Reliability campaign\n\n" + table)
    outcomes = dict(Counter(_OUTCOME_WORDS.get(row.outcome, row.outcome) for row in rows))
    run = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "pytest " + " ".join(session.config.invocation_params.args),
        "python": platform.python_version(),
        "load_1m": round(os.getloadavg()[0], 1),
        "outcomes": outcomes,
        "wall_s": time.monotonic() - _STARTED,
    }
    REPORT_JSON_PATH.write_text(json.dumps({"run": run, "rows": [_as_json(row) for row in rows]}, indent=1))
    report = table + (
        f"(written to {REPORT_PATH.relative_to(ROOT)} and {REPORT_JSON_PATH.relative_to(ROOT)}; "
        "`python -m devtools.figures reliability .data/reliability.json` puts it in the README)\n"
    )
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output.setdefault(WORKER_SECTIONS, []).append(["reliability campaign", report])
    else:
        session.config.stash[_REPORT] = report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    report = terminalreporter.config.stash.get(_REPORT, None)
    if report is not None:
        terminalreporter.write_sep("=", "reliability campaign")
        terminalreporter.write(report)
