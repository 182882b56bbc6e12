"""host.json keeps what Application Insights needs in Azure."""

from __future__ import annotations

import json

from tests.infra.bicep_model import ROOT

QUIET_LEVELS = {"warning", "error", "critical", "none"}


def _logging() -> dict:
    logging: dict = json.loads((ROOT / "host.json").read_text())["logging"]
    return logging


def test_function_results_reach_the_requests_table() -> None:
    # The host writes one request per invocation under the Host.Results category; at Error (or
    # quieter) only failures are kept and the requests table stays empty for successful runs.
    levels = {key.lower(): value.lower() for key, value in _logging()["logLevel"].items()}
    for category in ("host.results", "default"):
        assert levels.get(category, "information") not in QUIET_LEVELS, category


def test_sampling_never_drops_requests_or_exceptions() -> None:
    sampling = _logging()["applicationInsights"]["samplingSettings"]
    assert sampling["isEnabled"] is True
    excluded = {kind.strip().lower() for kind in sampling["excludedTypes"].split(";")}
    assert {"request", "exception"} <= excluded
    assert sampling["maxTelemetryItemsPerSecond"] >= 5
