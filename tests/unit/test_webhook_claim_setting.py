"""A webhook claim must outlive a live sender: its expiry is at least twice the POST timeout.

A claim younger than the expiry is taken for a live sender's; one older is taken over. If the
expiry were shorter than a slow but live POST, a redelivered notify could take over a claim whose
sender is still waiting for its answer, and the webhook would be posted twice.
"""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import Settings

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_a_claim_expiry_under_twice_the_timeout_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="at least twice WEBHOOK_TIMEOUT_SECONDS"):
        Settings.from_env({**BASE, "WEBHOOK_TIMEOUT_SECONDS": "10", "WEBHOOK_CLAIM_EXPIRY_SECONDS": "19.9"})


def test_a_claim_expiry_of_exactly_twice_the_timeout_is_accepted() -> None:
    settings = Settings.from_env({**BASE, "WEBHOOK_TIMEOUT_SECONDS": "10", "WEBHOOK_CLAIM_EXPIRY_SECONDS": "20"})
    assert settings.webhook_claim_expiry_s == 20.0


def test_the_default_expiry_fits_a_raised_timeout_only_up_to_half_of_it() -> None:
    assert Settings.from_env({**BASE, "WEBHOOK_TIMEOUT_SECONDS": "45"}).webhook_claim_expiry_s == 90.0
    with pytest.raises(ConfigError):
        Settings.from_env({**BASE, "WEBHOOK_TIMEOUT_SECONDS": "46"})
