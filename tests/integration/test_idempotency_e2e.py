"""Idempotency-Key through the local host (issue 11, finding 5): two clients, a reused key, expiry.

Keys are not enforced here (as Core Tools runs locally), but the host hands the worker every
header just the same (Azure/azure-functions-host, ``GrpcMessageConversionExtensions.ToRpcHttp``
copies all request headers and query parameters), so each client's ``x-functions-key`` still
names its caller, as it does in Azure where the key is also checked.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from devtools.openapi_check import assert_matches, load_spec
from devtools.samples import csv_for

pytestmark = pytest.mark.integration

UPLOAD = "/api/upload"
TTL_S = 3600


def _upload(stack, csv_text: str, key: str, function_key: str | None = None,  # type: ignore[no-untyped-def]
            webhook_url: str | None = None) -> requests.Response:  # fmt: skip
    headers = {"Idempotency-Key": key}
    if function_key:
        headers["x-functions-key"] = function_key
    return stack.upload(csv_text, webhook_url=webhook_url, headers=headers)


def _products(stack, request_id: str) -> set[str]:  # type: ignore[no-untyped-def]
    document: dict[str, Any] = stack.status(request_id, include="images").json()
    return {result["product_name"] for result in document["results"]}


def test_a_reused_key_through_the_local_host(make_stack, image_server) -> None:
    stack = make_stack(IDEMPOTENCY_KEY_TTL_SECONDS=str(TTL_S))
    spec = load_spec()
    alice_csv = csv_for([[image_server.url("/img/1.jpg")]]).replace("SKU1", "ALICE-PRIVATE")
    bob_csv = csv_for([[image_server.url("/img/2.jpg")]]).replace("SKU1", "BOB")
    assert "ALICE-PRIVATE" in alice_csv and "BOB" in bob_csv

    alice = _upload(stack, alice_csv, "order-1", "alice-key")
    bob = _upload(stack, bob_csv, "order-1", "bob-key")
    assert (alice.status_code, bob.status_code) == (202, 202)
    alice_id, bob_id = alice.json()["request_id"], bob.json()["request_id"]
    assert bob_id != alice_id, "Bob was handed Alice's request"
    stack.wait_for_status(bob_id)
    assert _products(stack, bob_id) == {"BOB"}  # his own CSV was processed, not dropped
    stack.wait_for_status(alice_id)
    assert _products(stack, alice_id) == {"ALICE-PRIVATE"}

    again = _upload(stack, alice_csv, "order-1", "alice-key")
    assert again.status_code == 202 and again.json()["request_id"] == alice_id
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert_matches(spec, "POST", UPLOAD, again)

    changed = _upload(stack, alice_csv, "order-1", "alice-key", webhook_url="https://hooks.example/other")
    assert changed.status_code == 422, changed.text
    body = assert_matches(spec, "POST", UPLOAD, changed)
    assert isinstance(body, dict) and "different upload" in body["error"]
    assert alice_id not in changed.text

    # Past its lifetime the key starts a new request, even for another upload.
    with sqlite3.connect(stack.env["SQLITE_PATH"]) as db:
        created = db.execute("SELECT created_at FROM requests WHERE request_id = ?", (alice_id,)).fetchone()[0]
        old = datetime.fromisoformat(str(created)) - timedelta(seconds=TTL_S + 1)
        db.execute("UPDATE requests SET created_at = ? WHERE request_id = ?", (old.isoformat(sep=" "), alice_id))
    renewed = _upload(stack, bob_csv, "order-1", "alice-key")
    assert renewed.status_code == 202 and renewed.json()["request_id"] not in {alice_id, bob_id}
    with sqlite3.connect(stack.env["SQLITE_PATH"]) as db:
        assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 3
