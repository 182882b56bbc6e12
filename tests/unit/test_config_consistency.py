"""Settings that must agree across host.json, local.settings.json and shared/settings.py."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_max_dequeue_count_matches_the_hosts() -> None:
    # process_queue records Failed on the host's last attempt; if the two differ, an image whose
    # failures are transient either goes to poison unrecorded or is given up too early.
    host = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]["maxDequeueCount"]
    values = json.loads((ROOT / "local.settings.json").read_text())["Values"]
    assert int(values["MAX_DEQUEUE_COUNT"]) == host
    assert Settings.from_env(values).max_dequeue_count == host


def test_local_settings_cover_every_setting_and_parse() -> None:
    values = json.loads((ROOT / "local.settings.json").read_text())["Values"]
    settings = Settings.from_env(values)
    assert settings.outbound_allowlist  # loopback is opened for local runs only
    assert Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}).outbound_allowlist == ()
    # Every Settings field is fed by some local setting (names differ; count is a cheap proxy).
    assert len(values) >= len(fields(Settings))


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    values = json.loads((ROOT / "local.settings.json").read_text())["Values"]
    values = {**values, "WEBHOOK_SECRET": "s3cr3t-value", "REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0"}
    text = repr(Settings.from_env(values))
    assert "s3cr3t-value" not in text and "hunter2" not in text and "AccountKey" not in text
