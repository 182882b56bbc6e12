"""Running in Azure (WEBSITE_INSTANCE_ID set), development defaults are refused in one error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.deploy_safety import DEVELOPMENT_WEBHOOK_SECRET
from shared.errors import ConfigError
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LOCAL = {k: str(v) for k, v in json.loads((ROOT / "local.settings.json").read_text())["Values"].items()}
AZURE = {  # what the Bicep template sets
    "WEBSITE_INSTANCE_ID": "8b1f0d9c",
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": "0d9b4e31-6f1c-4b9a-8a57-2f4e1c3d5b6a",
    "AzureWebJobsStorage__blobServiceUri": "https://stimg.blob.core.windows.net",
    "AzureWebJobsStorage__queueServiceUri": "https://stimg.queue.core.windows.net",
    "AZURE_CLIENT_ID": "0d9b4e31-6f1c-4b9a-8a57-2f4e1c3d5b6a",
    "SQLSERVER_CONNECTION_STRING": "Driver={ODBC Driver 18 for SQL Server};"
    "Server=tcp:sql-img.database.windows.net,1433;Database=imgpipe;Encrypt=yes;Authentication=ActiveDirectoryMsi;UID=0d9b4e31-6f1c-4b9a-8a57-2f4e1c3d5b6a",
    "REDIS_URL": "rediss://5f0c8e3a-1b7d-4c55-9e8b-3b0e3f2a9d10@redis-img.redis.cache.windows.net:6380/0",
    "REDIS_CREDENTIAL": "managedidentity",
    "OUTPUT_STORAGE": "blob",
    "OUTPUT_CONTAINER": "processed-images",
    "OUTPUT_URL_MODE": "sas",
    "WEBHOOK_SECRET": "resolved-from-key-vault-4e1c9a",
}


def test_the_local_settings_use_the_secret_the_check_refuses() -> None:
    assert LOCAL["WEBHOOK_SECRET"] == DEVELOPMENT_WEBHOOK_SECRET


def test_the_templates_settings_pass() -> None:
    settings = Settings.from_env(AZURE)
    assert settings.running_in_azure and settings.output_storage == "blob"


def test_local_settings_in_azure_fail_once_listing_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**LOCAL, "WEBSITE_INSTANCE_ID": "8b1f0d9c"})
    message = str(caught.value)
    assert message.startswith("running in Azure (WEBSITE_INSTANCE_ID is set) with development settings:")
    for expected in [
        "SQLSERVER_CONNECTION_STRING is not set",
        "AzureWebJobsStorage is the Azurite emulator",
        "REDIS_URL points at a loopback Redis",
        "WEBHOOK_SECRET is the development secret",
        "OUTBOUND_ALLOWLIST opens loopback",
        "set OUTPUT_STORAGE=blob",
    ]:
        assert expected in message
    assert DEVELOPMENT_WEBHOOK_SECRET not in message  # names the problem, never the value


def test_the_same_settings_outside_azure_are_fine() -> None:
    assert not Settings.from_env(LOCAL).running_in_azure


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"WEBHOOK_SECRET": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/w/)"},
         "unresolved Key Vault reference"),
        ({"WEBHOOK_SECRET": ""}, "WEBHOOK_SECRET is not set"),
        ({"REDIS_URL": "redis://redis-img.redis.cache.windows.net:6379/0"}, "REDIS_URL is not TLS"),
        ({"REDIS_CREDENTIAL": ""}, "REDIS_URL has no password"),
        ({"OUTBOUND_ALLOWLIST": "169.254.169.254/32"}, "OUTBOUND_ALLOWLIST opens"),
        ({"AzureWebJobsStorage__blobServiceUri": "https://127.0.0.1:10000/devstoreaccount1"}, "loopback address"),
        ({"SQLSERVER_CONNECTION_STRING": "Driver={ODBC Driver 18 for SQL Server};Server=tcp:s,1433;"
          "Authentication=ActiveDirectoryMsi"}, "without UID"),
    ],
)
def test_each_development_or_broken_setting_is_named(override: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Settings.from_env({**AZURE, **override})
