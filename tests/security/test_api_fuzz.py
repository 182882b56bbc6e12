"""Schemathesis over openapi.yaml against the running host: no 5xx, and every answer as documented.

The stack runs with keys enforced (so schemathesis' ``ignored_auth`` check proves a missing key is
refused) and with no queue function enabled: generated uploads may name any host as image or
webhook URL, and nothing may ever be fetched from them. A bounded number of examples keeps the run
under a minute.
"""

from __future__ import annotations

import secrets

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from devtools.openapi_check import SPEC_PATH
from tests.security.conftest import NO_QUEUE_FUNCTIONS

pytestmark = pytest.mark.integration

FUNCTION_KEY = "fk-" + secrets.token_hex(12)
schema = schemathesis.openapi.from_path(str(SPEC_PATH))


@pytest.fixture()
def fuzz_stack(secure_stack):
    return secure_stack(extra_args=["--enforce-keys"], DEVHOST_FUNCTION_KEY=FUNCTION_KEY, **NO_QUEUE_FUNCTIONS)


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_spec_and_never_answers_5xx(case, fuzz_stack) -> None:
    base_url = fuzz_stack.base_url.removesuffix("/api")
    if case.method.upper() != case.operation.method.upper():
        # Schemathesis also probes undeclared methods (TRACE, PATCH...): the tests below cover them.
        return
    # A schema cannot say which CSVs are valid (serials, URLs...): a schema-valid upload may fairly be
    # refused with 400, so "positive data must be accepted" does not apply here.
    case.call_and_validate(base_url=base_url, headers={"x-functions-key": FUNCTION_KEY}, timeout=30,
                           excluded_checks=[checks.positive_data_acceptance])


UNDECLARED = ["TRACE", "PROPFIND", "PURGE", "PATCH", "PUT", "DELETE"]


@pytest.fixture()
def plain_stack(secure_stack):
    return secure_stack(**NO_QUEUE_FUNCTIONS)


def _paths(stack) -> list[str]:
    return [f"{stack.base_url}/upload", f"{stack.base_url}/status/00000000-0000-4000-8000-000000000000"]


def test_undeclared_methods_are_404_not_5xx(plain_stack) -> None:
    """The real host registers a function's ``methods`` as a route constraint: another method does not match
    the route at all, so it is a 404 (no 405, no Allow header); see tests/devhost/test_conformance_http.py."""
    import requests

    answers = {(method, url.rsplit("/", 2)[1]): requests.request(method, url, timeout=10).status_code
               for url in _paths(plain_stack) for method in UNDECLARED}
    assert answers == {key: 404 for key in answers}
