"""Settings that must agree across host.json, local.settings.json and shared/settings.py."""

from __future__ import annotations

import json
import re
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


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    values = json.loads((ROOT / "local.settings.json").read_text())["Values"]
    values = {**values, "WEBHOOK_SECRET": "s3cr3t-value", "REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0"}
    text = repr(Settings.from_env(values))
    assert "s3cr3t-value" not in text and "hunter2" not in text and "AccountKey" not in text


class RecordingEnvironment(dict[str, str]):
    """An environment that remembers every name the settings asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key, default=None):  # type: ignore[no-untyped-def, override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


# Read by the Functions host or its Python worker, not by Settings.
HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_PROCESS_COUNT", "PYTHON_THREADPOOL_THREAD_COUNT"}
# Read by Settings only in Azure, where the platform sets them; a local value would be wrong.
PLATFORM_SETTINGS = {"WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME", "WEBSITE_HOSTNAME"}


def test_local_settings_and_the_settings_object_name_the_same_settings() -> None:
    values = json.loads((ROOT / "local.settings.json").read_text())["Values"]
    environment = RecordingEnvironment(values)
    Settings.from_env(environment)
    asked = environment.asked - PLATFORM_SETTINGS
    # Identity-based connection settings (AzureWebJobsStorage__*) are Azure-only alternatives.
    asked = {name for name in asked if "__" not in name}
    assert asked - values.keys() == set(), "read by Settings but missing from local.settings.json"
    binding_names = {
        name for path in ROOT.glob("*/function.json") for name in re.findall(r"%(\w+)%", path.read_text())
    }
    unread = values.keys() - asked - HOST_SETTINGS - binding_names
    assert unread == set(), "in local.settings.json but read by nothing"
