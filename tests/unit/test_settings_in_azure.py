"""In Azure, local outputs would hand clients file:// paths of one instance's disk (finding 8).

They are refused at start with the other development defaults (shared/deploy_safety.py), whether
or not OUTPUT_PUBLIC_BASE_URL is set: an instance's disk is neither shared nor kept.
"""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import Settings
from tests.unit.test_deploy_safety import AZURE

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
IN_AZURE = {**BASE, "WEBSITE_INSTANCE_ID": "0f1e2d3c4b5a"}  # the App Service platform sets it


def test_local_outputs_without_a_public_url_are_refused_at_start_in_azure() -> None:
    with pytest.raises(ConfigError, match="OUTPUT_STORAGE=blob"):
        Settings.from_env(IN_AZURE)
    with pytest.raises(ConfigError, match="OUTPUT_STORAGE=blob"):
        Settings.from_env({**IN_AZURE, "OUTPUT_STORAGE": "local"})


def test_blob_outputs_are_accepted_in_azure_and_a_local_folder_is_not_even_with_a_public_url() -> None:
    assert Settings.from_env(AZURE).output_storage == "blob"
    with pytest.raises(ConfigError, match="OUTPUT_STORAGE=blob"):
        Settings.from_env({**AZURE, "OUTPUT_STORAGE": "local", "OUTPUT_PUBLIC_BASE_URL": "https://cdn.example.com/i"})


def test_local_defaults_still_start_outside_azure() -> None:
    assert Settings.from_env(BASE).output_storage == "local"
