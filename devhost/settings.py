"""App settings and host.json: what the real host reads before it loads any function.

- ``local.settings.json`` ``Values`` go into the environment without overriding variables already set.
- ``UseDevelopmentStorage=true`` is expanded to Azurite's full connection string.
- host.json values can be overridden by settings named ``AzureFunctionsJobHost__a__b`` (as the real
  host allows), which lets a test change e.g. the queue batch size without another fixture app.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
DEV_STORAGE = "UseDevelopmentStorage=true"
DEV_ACCOUNT = "devstoreaccount1"
# The well-known, public Azurite/emulator account key (not a secret).
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_HTTP_PORT = 7071
HOST_OVERRIDE_PREFIX = "AzureFunctionsJobHost__"
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


class SettingsError(Exception):
    """local.settings.json, host.json or a setting value is unusable."""


def load_local_settings(app_dir: Path, environ: MutableMapping[str, str]) -> dict[str, Any]:
    """Put ``Values`` into ``environ`` (existing variables win) and return the whole file's data."""
    path = app_dir / "local.settings.json"
    if not path.exists():
        return {}
    data = _read_json(path)
    values = data.get("Values", {})
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: 'Values' must be an object")
    for name, value in values.items():
        environ.setdefault(str(name), "" if value is None else str(value))
    for name, value in list(environ.items()):
        if value.strip().rstrip(";").lower() == DEV_STORAGE.lower():
            environ[name] = development_storage_connection_string(environ)
    return data


def development_storage_connection_string(environ: Mapping[str, str]) -> str:
    """Azurite's full connection string; host and ports can be moved with DEVHOST_AZURITE_* variables."""
    host = environ.get("DEVHOST_AZURITE_HOST", "127.0.0.1")
    blob = environ.get("DEVHOST_AZURITE_BLOB_PORT", "10000")
    queue = environ.get("DEVHOST_AZURITE_QUEUE_PORT", "10001")
    table = environ.get("DEVHOST_AZURITE_TABLE_PORT", "10002")
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob}/{DEV_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue}/{DEV_ACCOUNT};"
        f"TableEndpoint=http://{host}:{table}/{DEV_ACCOUNT};"
    )


def local_http_port(local_settings: Mapping[str, Any]) -> int:
    host_section = local_settings.get("Host", {})
    port = host_section.get("LocalHttpPort", DEFAULT_HTTP_PORT) if isinstance(host_section, dict) else None
    try:
        return int(port if port is not None else DEFAULT_HTTP_PORT)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"Host.LocalHttpPort is not a port number: {port!r}") from exc


def load_host_json(app_dir: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """host.json with ``AzureFunctionsJobHost__`` overrides applied."""
    path = app_dir / "host.json"
    if not path.exists():
        raise SettingsError(f"no host.json in {app_dir}: is this a Functions app folder?")
    data = _read_json(path)
    for name, value in environ.items():
        if name.startswith(HOST_OVERRIDE_PREFIX):
            _set_path(data, name[len(HOST_OVERRIDE_PREFIX) :].split("__"), value)
    # As the real host's HostJsonFileConfigurationSource: no version, or not 2.0, and it does not start.
    version = lookup(data, "version")
    if version is None:
        raise SettingsError(
            "The host.json file is missing the required 'version' property. "
            "See https://aka.ms/functions-hostjson for steps to migrate the configuration file."
        )
    if str(version) != "2.0":
        raise SettingsError(
            f"'{version}' is an invalid value for host.json 'version' property. "
            "We recommend you set the 'version' property to '2.0'."
        )
    return data


def section(data: Mapping[str, Any], *path: str) -> dict[str, Any]:
    """A nested object of host.json, matched case-insensitively ({} when absent)."""
    current: Any = data
    for key in path:
        if not isinstance(current, dict):
            return {}
        current = next((v for k, v in current.items() if k.lower() == key.lower()), {})
    return current if isinstance(current, dict) else {}


def lookup(data: Mapping[str, Any], key: str, default: Any = None) -> Any:
    return next((v for k, v in data.items() if k.lower() == key.lower()), default)


def parse_timespan(value: object, what: str) -> float:
    """Seconds in a .NET TimeSpan string ("00:00:02", "1.00:00:00") or a plain number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _TIMESPAN.match(str(value).strip())
    if match is None:
        raise SettingsError(f"{what}: not a timespan like 00:00:02: {value!r}")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def parse_int(value: object, what: str) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise SettingsError(f"{what}: not an integer: {value!r}") from exc


def resolve_setting_name(connection: str, environ: Mapping[str, str]) -> str | None:
    """The value of a binding's ``connection`` setting, looked up as the real host does."""
    for name in (connection, f"AzureWebJobs{connection}"):
        value = environ.get(name)
        if value:
            return value
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: cannot read JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a JSON object")
    return data


def _set_path(data: dict[str, Any], keys: list[str], value: str) -> None:
    current = data
    for key in keys[:-1]:
        existing = next((k for k in current if k.lower() == key.lower()), None)
        if existing is None or not isinstance(current[existing], dict):
            existing = existing or key
            current[existing] = {}
        current = current[existing]
    last = next((k for k in current if k.lower() == keys[-1].lower()), keys[-1])
    current[last] = value


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}


def env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number: {raw!r}") from exc


def cpu_count() -> int:
    return os.cpu_count() or 1


MAX_WORKER_PROCESS_COUNT = 10
THREADPOOL_THREAD_COUNT_RANGE = (1, 32)


def worker_process_count(environ: Mapping[str, str]) -> int:
    """FUNCTIONS_WORKER_PROCESS_COUNT as the real host reads it: 1 when unset, not a number or below 1,
    at most 10 (Azure/azure-functions-host RpcFunctionInvocationDispatcher, MaxProcessCount tests)."""
    raw = (environ.get("FUNCTIONS_WORKER_PROCESS_COUNT") or "").strip()
    try:
        count = int(raw)
    except ValueError:
        return 1
    if count > MAX_WORKER_PROCESS_COUNT:
        logger.warning(
            "FUNCTIONS_WORKER_PROCESS_COUNT=%d is above the maximum of %d: using %d",
            count,
            MAX_WORKER_PROCESS_COUNT,
            MAX_WORKER_PROCESS_COUNT,
        )
        return MAX_WORKER_PROCESS_COUNT
    return max(1, count)


def threadpool_thread_count(environ: Mapping[str, str]) -> int | None:
    """PYTHON_THREADPOOL_THREAD_COUNT as the Python worker reads it: unset gives the default (None: the
    executor's own); a value that is not an integer in 1..32 is a warning and the default, not a crash
    (azure-functions-python-worker ``dispatcher.py`` ``_get_sync_tp_max_workers``, ``constants.py``)."""
    raw = (environ.get("PYTHON_THREADPOOL_THREAD_COUNT") or "").strip()
    if not raw:
        return None
    low, high = THREADPOOL_THREAD_COUNT_RANGE
    try:
        count = int(raw)
    except ValueError:
        logger.warning("PYTHON_THREADPOOL_THREAD_COUNT must be an integer; reverting to the default")
        return None
    if not low <= count <= high:
        logger.warning(
            "PYTHON_THREADPOOL_THREAD_COUNT must be set to a value between %d and %d; reverting to the default",
            low,
            high,
        )
        return None
    return count
