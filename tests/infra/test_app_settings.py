"""The template's app settings against what the functions and the app need in Azure.

The list of settings lives in infra/app-settings.json (name, meaning, default, required in Azure);
the README's table and the template are checked against it, and every local setting must be in it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra.bicep_model import FUNCTION_APP as TEMPLATE
from tests.infra.bicep_model import ROOT, app_settings, resolve, settings_registry

_BINDING_EXPRESSION = re.compile(r"%([^%]+)%")


def _function_json_files() -> list[Path]:
    # Every function folder, including ones added later: a function is a folder holding function.json.
    return sorted(p for p in ROOT.glob("*/function.json") if not p.parent.name.startswith("."))


def _percent_settings(value: object) -> set[str]:
    if isinstance(value, str):
        return set(_BINDING_EXPRESSION.findall(value))
    if isinstance(value, dict):
        return set().union(*(_percent_settings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_percent_settings(v) for v in value)) if value else set()
    return set()


def test_the_functions_use_app_setting_expressions() -> None:
    files = _function_json_files()
    assert len(files) >= 4
    assert "IMAGE_QUEUE_NAME" in set().union(*(_percent_settings(json.loads(f.read_text())) for f in files))


@pytest.mark.parametrize("path", _function_json_files(), ids=lambda p: p.parent.name)
def test_every_percent_setting_of_a_function_is_set_by_the_template(path: Path) -> None:
    # The host resolves %NAME% from app settings when it indexes the functions; one missing name
    # and the function does not load in Azure.
    needed = _percent_settings(json.loads(path.read_text()))
    missing = needed - set(app_settings())
    assert not missing, f"{path.parent.name}/function.json uses {sorted(missing)}, which the template does not set"


def test_every_setting_required_in_azure_is_set_by_the_template() -> None:
    required = {entry["name"] for entry in settings_registry() if entry["required_in_azure"]}
    missing = required - set(app_settings())
    assert not missing, f"{TEMPLATE.name} does not set {sorted(missing)}"


def test_the_template_sets_only_known_settings() -> None:
    known = {entry["name"] for entry in settings_registry()}
    unknown = set(app_settings()) - known
    assert not unknown, f"add {sorted(unknown)} to infra/app-settings.json (and the README table)"


def test_every_local_setting_is_listed() -> None:
    local = json.loads((ROOT / "local.settings.json").read_text())["Values"]
    known = {entry["name"] for entry in settings_registry()}
    missing = set(local) - known
    assert not missing, f"add {sorted(missing)} to infra/app-settings.json (and the README table)"


def test_registry_entries_are_complete_and_unique() -> None:
    names = [entry["name"] for entry in settings_registry()]
    assert len(names) == len(set(names))
    for entry in settings_registry():
        assert set(entry) == {"name", "meaning", "default", "required_in_azure"}, entry["name"]
        assert isinstance(entry["required_in_azure"], bool) and entry["meaning"].strip(), entry["name"]


def test_the_readme_table_lists_every_setting_with_its_requirement() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Deploy to Azure\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 4:
            rows[cells[0].strip("`")] = cells
    for entry in settings_registry():
        assert entry["name"] in rows, f"README 'Deploy to Azure' table lacks {entry['name']}"
        required = rows[entry["name"]][3].lower()
        assert required.startswith("yes" if entry["required_in_azure"] else "no"), entry["name"]


# Not valid on Flex Consumption (learn.microsoft.com/azure/azure-functions/functions-app-settings,
# "Flex Consumption plan deprecations"): the platform rejects or ignores them.
FLEX_INVALID = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "WEBSITE_NODE_DEFAULT_VERSION",
}


def test_no_setting_that_flex_consumption_rejects() -> None:
    assert not FLEX_INVALID & set(app_settings())


def test_no_storage_connection_string_or_key_in_azure() -> None:
    settings = app_settings()
    assert "AzureWebJobsStorage" not in settings  # identity-based: the __ settings replace it
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    for name, value in settings.items():
        assert "AccountKey=" not in repr(value) and "InstrumentationKey=" not in repr(value), name


def test_sql_connection_names_the_user_assigned_identity() -> None:
    value = str(app_settings()["SQLSERVER_CONNECTION_STRING"])
    assert "Authentication=ActiveDirectoryMsi" in value
    assert "UID=${identityClientId}" in value  # without UID the driver asks for a system identity
    assert "Pwd=" not in value and "Password=" not in value


def test_redis_url_is_tls_on_the_cache_port_with_entra_auth() -> None:
    settings = app_settings()
    assert str(settings["REDIS_URL"]).startswith("rediss://")
    assert ":${redisSslPort}/0" in str(settings["REDIS_URL"])
    assert settings["REDIS_CREDENTIAL"] == "managedidentity"


def test_outputs_are_private_blobs_handed_out_as_sas() -> None:
    settings = app_settings()
    assert settings["OUTPUT_STORAGE"] == "blob"
    assert "'sas'" in repr(settings["OUTPUT_URL_MODE"])
    assert resolve(settings["OUTPUT_CONTAINER"], TEMPLATE) == "processed-images"


def test_webhook_secret_is_a_key_vault_reference() -> None:
    value = str(app_settings()["WEBHOOK_SECRET"])
    assert re.fullmatch(r"@Microsoft\.KeyVault\(VaultName=[^;]+;SecretName=[^)]+\)", value), value


def test_identity_settings_name_the_same_identity() -> None:
    settings = app_settings()
    assert settings["AZURE_CLIENT_ID"] == settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"


def test_max_dequeue_count_matches_host_json() -> None:
    host = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]["maxDequeueCount"]
    assert int(app_settings()["MAX_DEQUEUE_COUNT"]) == host
