"""Idempotency-Key scoped to the caller, bound to the upload, and expiring (issue 11, finding 5).

Through ``upload_http.main`` as the worker calls it, over a real SQLite store and in-memory queues.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from shared import functions_adapter
from shared.idempotency import ANONYMOUS, Caller, caller_of, scoped_key, upload_fingerprint
from shared.memory import memory_dependencies
from shared.settings import Settings
from shared.store import Store
from shared.upload import UploadInput

upload_http = importlib.import_module("upload_http")

TTL_S = 3600
CSV_A = "S. No.,Product Name,Input Image Urls\n1,ALICE-SKU,https://alice.example/secret-a.jpg\n"
CSV_B = "S. No.,Product Name,Input Image Urls\n1,BOB-SKU,https://bob.example/b.jpg\n"


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = Settings.from_env({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "IDEMPOTENCY_KEY_TTL_SECONDS": str(TTL_S),
    })
    store = Store.for_sqlite(settings.sqlite_path)
    store.ensure_schema()
    deps = memory_dependencies(settings, store)
    functions_adapter.set_dependencies(deps)
    yield {"store": store, "path": settings.sqlite_path}
    functions_adapter.set_dependencies(None)
    deps.close()


def upload(csv_text: str, key: str | None, *, function_key: str | None = None, code: str | None = None,
           webhook_url: str | None = None) -> func.HttpResponse:  # fmt: skip
    headers = {"content-type": "text/csv"}
    if key is not None:
        headers["idempotency-key"] = key
    if function_key is not None:
        headers["x-functions-key"] = function_key
    params = {"code": code} if code is not None else {}
    if webhook_url is not None:
        params["webhook_url"] = webhook_url
    request = func.HttpRequest(method="POST", url="http://localhost:7071/api/upload", body=csv_text.encode(),
                               headers=headers, params=params)  # fmt: skip
    return upload_http.main(request)


def body(response: func.HttpResponse) -> dict[str, Any]:
    document = json.loads(response.get_body())
    assert isinstance(document, dict)
    return document


def product_names(store: Store, request_id: str) -> set[str]:
    return {image.product_name for image in store.list_images(request_id)}


def test_two_clients_reusing_a_key_each_get_their_own_request(app: dict[str, Any]) -> None:
    alice = upload(CSV_A, "order-1", function_key="alice-function-key")
    bob = upload(CSV_B, "order-1", function_key="bob-function-key")
    assert (alice.status_code, bob.status_code) == (202, 202)
    alice_id, bob_id = body(alice)["request_id"], body(bob)["request_id"]
    # Before the fix Bob got Alice's id: his CSV was dropped and he could read her products and URLs.
    assert bob_id != alice_id
    assert product_names(app["store"], bob_id) == {"BOB-SKU"}
    assert product_names(app["store"], alice_id) == {"ALICE-SKU"}
    assert "Idempotent-Replayed" not in bob.headers


def test_the_key_in_the_header_and_in_code_is_the_same_caller(app: dict[str, Any]) -> None:
    first = upload(CSV_A, "order-1", function_key="alice-function-key")
    again = upload(CSV_A, "order-1", code="alice-function-key")
    assert again.status_code == 202
    assert body(again)["request_id"] == body(first)["request_id"]
    assert again.headers["Idempotent-Replayed"] == "true"


def test_same_key_and_same_upload_answers_the_same_request(app: dict[str, Any]) -> None:
    first = upload(CSV_A, "order-1", webhook_url="https://hooks.example/a")
    again = upload(CSV_A, "order-1", webhook_url="https://hooks.example/a")
    assert (first.status_code, again.status_code) == (202, 202)
    assert body(again) == body(first)
    assert app["store"].get_request(body(first)["request_id"]) is not None


@pytest.mark.parametrize(
    ("csv_text", "webhook_url"),
    [(CSV_B, "https://hooks.example/a"), (CSV_A, "https://hooks.example/other"), (CSV_A, None)],
    ids=["other-csv", "other-webhook", "no-webhook"],
)
def test_same_key_with_a_different_upload_is_a_422_that_stores_nothing(
    app: dict[str, Any], csv_text: str, webhook_url: str | None
) -> None:
    first = upload(CSV_A, "order-1", webhook_url="https://hooks.example/a")
    reused = upload(csv_text, "order-1", webhook_url=webhook_url)
    assert reused.status_code == 422
    document = body(reused)
    assert "different upload" in document["error"]
    assert document["problems"][0]["column"] == "Idempotency-Key"
    assert body(first)["request_id"] not in reused.get_body().decode()
    with sqlite3.connect(app["path"]) as db:
        assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1


def test_anonymous_callers_sharing_a_key_cannot_read_each_other(app: dict[str, Any]) -> None:
    """Without a function key (keys not enforced) every caller shares one scope: the binding protects them."""
    alice = upload(CSV_A, "order-1")
    bob = upload(CSV_B, "order-1")
    assert alice.status_code == 202 and bob.status_code == 422
    assert "ALICE-SKU" not in bob.get_body().decode() and body(alice)["request_id"] not in bob.get_body().decode()


def test_an_expired_key_starts_a_new_request(app: dict[str, Any]) -> None:
    first_id = body(upload(CSV_A, "order-1"))["request_id"]
    assert body(upload(CSV_A, "order-1"))["request_id"] == first_id  # within its lifetime: a replay
    backdate(app["path"], first_id, timedelta(seconds=TTL_S + 1))
    after = upload(CSV_B, "order-1")  # even with another upload: the old binding is gone
    assert after.status_code == 202
    second_id = body(after)["request_id"]
    assert second_id != first_id and product_names(app["store"], second_id) == {"BOB-SKU"}
    assert body(upload(CSV_B, "order-1"))["request_id"] == second_id  # the key now names the new one
    assert upload(CSV_A, "order-1").status_code == 422


def test_a_key_just_inside_its_lifetime_still_replays(app: dict[str, Any]) -> None:
    first_id = body(upload(CSV_A, "order-1"))["request_id"]
    backdate(app["path"], first_id, timedelta(seconds=TTL_S - 60))
    assert body(upload(CSV_A, "order-1"))["request_id"] == first_id
    assert upload(CSV_B, "order-1").status_code == 422


def test_neither_the_function_key_nor_the_client_key_is_stored(app: dict[str, Any]) -> None:
    upload(CSV_A, "client-key-xyz", function_key="function-key-secret-123")
    dump = "\n".join(sqlite3.connect(app["path"]).iterdump())
    assert "client-key-xyz" not in dump and "function-key-secret-123" not in dump


def backdate(path: Path, request_id: str, age: timedelta) -> None:
    created = (datetime.now(UTC) - age).isoformat()
    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT created_at FROM requests WHERE request_id = ?", (request_id,)).fetchone()[0]
        # Keep the stored text format (the dialect's), only the moment changes.
        created = created if "T" in stored else created.replace("T", " ")
        db.execute("UPDATE requests SET created_at = ? WHERE request_id = ?", (created, request_id))


def test_caller_scope_and_digests() -> None:
    principal = caller_of({"X-MS-CLIENT-PRINCIPAL-IDP": "aad", "X-MS-CLIENT-PRINCIPAL-ID": "oid-1"}, {})
    assert principal == Caller(principal="aad/oid-1")
    keyed = caller_of({"x-functions-key": "k"}, {})
    assert keyed.key_sha256 and "k" not in repr(keyed).replace("key_sha256", "")
    assert caller_of({}, {"code": "k"}) == keyed
    assert caller_of({}, {}) == ANONYMOUS
    digests = {scoped_key(caller, "order-1") for caller in (principal, keyed, ANONYMOUS)}
    assert len(digests) == 3 and all(len(d) == 64 for d in digests)
    a = UploadInput(b"csv", "https://h.example/", "k1", keyed)
    assert upload_fingerprint(a) == upload_fingerprint(UploadInput(b"csv", "https://h.example/", "k2", ANONYMOUS))
    assert upload_fingerprint(a) != upload_fingerprint(UploadInput(b"csv2", "https://h.example/", "k1", keyed))
    assert upload_fingerprint(a) != upload_fingerprint(UploadInput(b"csv", None, "k1", keyed))
