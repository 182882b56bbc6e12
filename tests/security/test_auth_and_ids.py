"""Function keys on the HTTP functions, and request ids that cannot be guessed or abused."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

import pytest
import requests

from devtools.samples import csv_for

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_KEY = "fk-" + secrets.token_urlsafe(24)


def function_bindings() -> dict[str, list[dict]]:
    return {
        path.parent.name: json.loads(path.read_text())["bindings"]
        for path in sorted(ROOT.glob("*/function.json"))
    }


def test_every_http_function_requires_a_function_key() -> None:
    """Every API function needs a key; only the static upload page is anonymous (it holds no data,
    and the calls it makes send the key the user types into it)."""
    http_triggers = {name: binding for name, bindings in function_bindings().items()
                     for binding in bindings if binding["type"] == "httpTrigger"}
    # health_http too: its reasons name the deployment's queues and settings (README, Health).
    assert {name: b.get("authLevel") for name, b in http_triggers.items()} == {
        "upload_http": "function", "status_http": "function", "cancel_http": "function", "health_http": "function",
        "page_http": "anonymous"}


@pytest.mark.integration
def test_keys_are_enforced_on_upload_and_status(secure_stack, image_server) -> None:
    stack = secure_stack(extra_args=["--enforce-keys"], DEVHOST_FUNCTION_KEY=FUNCTION_KEY)
    body = csv_for([[image_server.url("/img/1.jpg")]]).encode()
    upload_url = f"{stack.base_url}/upload"

    def upload(headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> requests.Response:
        return requests.post(upload_url, data=body, headers={"Content-Type": "text/csv", **(headers or {})},
                             params=params, timeout=30)

    refused = {
        "no key": upload(),
        "wrong header": upload({"x-functions-key": "wrong"}),
        "empty header": upload({"x-functions-key": ""}),
        "key prefix": upload({"x-functions-key": FUNCTION_KEY[:-1]}),
        "key with suffix": upload({"x-functions-key": FUNCTION_KEY + "x"}),
        "other case": upload({"x-functions-key": FUNCTION_KEY.upper()}),
        "wrong code": upload(params={"code": "wrong"}),
        "empty code": upload(params={"code": ""}),
        "key as bearer": upload({"Authorization": f"Bearer {FUNCTION_KEY}"}),
    }
    assert {name: r.status_code for name, r in refused.items()} == {name: 401 for name in refused}
    assert all(FUNCTION_KEY not in r.text for r in refused.values())
    assert stack.row_counts()["requests"] == 0

    by_header = upload({"x-functions-key": FUNCTION_KEY})
    by_code = upload(params={"code": FUNCTION_KEY})
    assert (by_header.status_code, by_code.status_code) == (202, 202), (by_header.text, by_code.text)
    request_id = by_header.json()["request_id"]

    status_url = f"{stack.base_url}/status/{request_id}"
    assert requests.get(status_url, timeout=30).status_code == 401
    assert requests.get(status_url, headers={"x-functions-key": "wrong"}, timeout=30).status_code == 401
    assert requests.get(status_url, params={"code": "wrong"}, timeout=30).status_code == 401
    assert requests.get(status_url, headers={"x-functions-key": FUNCTION_KEY}, timeout=30).status_code == 200
    assert requests.get(status_url, params={"code": FUNCTION_KEY}, timeout=30).status_code == 200
    assert FUNCTION_KEY not in stack.logs()


@pytest.mark.integration
def test_request_ids_are_random_uuid4s_and_unguessable_ids_never_error(secure_stack, image_server) -> None:
    stack = secure_stack()
    body = csv_for([[image_server.url("/img/1.jpg")]]).encode()
    ids = []
    for _ in range(40):
        response = requests.post(f"{stack.base_url}/upload", data=body, headers={"Content-Type": "text/csv"},
                                 timeout=30)
        assert response.status_code == 202, response.text
        ids.append(response.json()["request_id"])
    parsed = [uuid.UUID(request_id) for request_id in ids]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == i for u, i in zip(parsed, ids))
    assert len(set(ids)) == len(ids)
    # 122 random bits: ids of consecutive uploads share no long prefix (a counter or a clock would).
    assert max(len(_common_prefix(a, b)) for a, b in zip(ids, ids[1:])) < 8

    known = ids[0]
    last_digit = int(known[-1], 16)
    neighbours = [known[:-1] + format((last_digit + step) % 16, "x") for step in (1, 15)]
    other_versions = [str(uuid.uuid1()), str(uuid.uuid3(uuid.NAMESPACE_URL, known)),
                      str(uuid.uuid5(uuid.NAMESPACE_URL, known)), known[:14] + "1" + known[15:],
                      str(uuid.UUID(int=0)), "ffffffff-ffff-ffff-ffff-ffffffffffff",
                      known[:19] + "c" + known[20:]]  # a variant that is not RFC 4122
    malformed = ["not-a-uuid", "1", "00000001", known.replace("-", ""), "{" + known + "}", "urn:uuid:" + known,
                 known + "0", known[:-1], " " + known, known + "%00", "' OR 1=1 --", "..%2f..%2fupload",
                 "%2e%2e", "a" * 5000, "\u0661" * 8 + known[8:], known[:-1] + "\uff41",  # a fullwidth letter
                 "${jndi:ldap://x/a}", "<script>alert(1)</script>", "%ff%fe"]
    for candidate in neighbours + other_versions + malformed:
        response = requests.get(f"{stack.base_url}/status/{candidate}", timeout=30)
        assert response.status_code in {400, 404}, (candidate, response.status_code, response.text)
        if response.content:
            assert known not in response.text and "Traceback" not in response.text
    for candidate in other_versions:
        assert stack.status(candidate).status_code == 400, candidate
    for candidate in neighbours:
        assert stack.status(candidate).status_code == 404, candidate
    assert "Traceback" not in stack.logs()


def _common_prefix(a: str, b: str) -> str:
    size = 0
    while size < min(len(a), len(b)) and a[size] == b[size]:
        size += 1
    return a[:size]
