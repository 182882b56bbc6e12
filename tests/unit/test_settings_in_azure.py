"""In Azure, local outputs without a public base URL would hand clients file:// paths (finding 8)."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import Settings

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
IN_AZURE = {**BASE, "WEBSITE_INSTANCE_ID": "0f1e2d3c4b5a"}  # the App Service platform sets it


def test_local_outputs_without_a_public_url_are_refused_at_start_in_azure() -> None:
    with pytest.raises(ConfigError, match="OUTPUT_STORAGE=blob"):
        Settings.from_env(IN_AZURE)
    with pytest.raises(ConfigError, match="OUTPUT_STORAGE=blob"):
        Settings.from_env({**IN_AZURE, "OUTPUT_STORAGE": "local"})


@pytest.mark.parametrize("extra", [{"OUTPUT_STORAGE": "blob"},
                                   {"OUTPUT_PUBLIC_BASE_URL": "https://cdn.example.com/images"}])
def test_blob_or_a_public_base_url_is_accepted_in_azure(extra) -> None:
    assert Settings.from_env({**IN_AZURE, **extra})


def test_local_defaults_still_start_outside_azure() -> None:
    assert Settings.from_env(BASE).output_storage == "local"
