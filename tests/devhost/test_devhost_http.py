"""The HTTP trigger through a real host process (one host for the module, real Azurite for outputs)."""

from __future__ import annotations

import hashlib
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.devhost.conftest import BASIC_APP, HostProcess, QueueKit, decoded, run_host, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def module_queues(azurite: object) -> QueueKit:
    suffix = uuid.uuid4().hex[:10]
    return QueueKit(azurite.connection_string, f"work-{suffix}", f"out-{suffix}")  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, module_queues: QueueKit) -> Iterator[HostProcess]:
    tmp = tmp_path_factory.mktemp("http-host")
    env = {
        "AzureWebJobsStorage": module_queues.connection_string,
        "WORK_QUEUE": module_queues.work,
        "OUT_QUEUE": module_queues.out,
        "RECORD_DIR": str(tmp),
    }
    process = run_host(tmp, BASIC_APP, env, ["--workers", "2"])
    process.wait_for("Host started")
    yield process
    process.proc.terminate()
    process.wait_exit()


def test_start_up_lists_functions_with_routes_and_queues(host: HostProcess, module_queues: QueueKit) -> None:
    output = host.output()
    assert f"echo: [GET] http://localhost:{host.port}/api/items/{{id:int}}/{{name:alpha?}}" in output
    assert f"work: queueTrigger (queue: {module_queues.work})" in output
    assert "AccountKey" not in output


def test_route_parameters_query_and_headers_reach_the_function(host: HostProcess) -> None:
    response = requests.get(host.url("/api/items/42/abc?color=red"), headers={"X-Test": "yes"}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    seen = response.json()
    assert seen["route_params"] == {"id": "42", "name": "abc"}
    assert seen["params"] == {"color": "red"}
    assert seen["x_test"] == "yes"
    assert seen["url"].endswith("/api/items/42/abc?color=red")


def test_optional_parameter_may_be_left_out(host: HostProcess) -> None:
    response = requests.get(host.url("/api/items/7"), timeout=30)
    assert response.status_code == 200
    assert response.json()["route_params"] == {"id": "7"}


@pytest.mark.parametrize(
    "path", ["/api/items/seven", "/api/items/7/abc9", "/api/things/not-a-guid", "/api/nowhere", "/items/7"]
)
def test_unmatched_routes_and_constraints_are_404(host: HostProcess, path: str) -> None:
    assert requests.get(host.url(path), timeout=30).status_code == 404


def test_guid_route_with_a_named_http_output(host: HostProcess) -> None:
    tid = str(uuid.uuid4())
    response = requests.delete(host.url(f"/api/things/{tid}"), timeout=30)
    assert response.status_code == 200
    assert response.json() == {"function": "thing", "tid": tid, "method": "DELETE"}


def test_default_route_context_and_status(host: HostProcess) -> None:
    response = requests.post(host.url("/api/default_route"), data=b"ping", timeout=30)
    assert response.status_code == 201
    assert response.text == "default_route:ping"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    uuid.UUID(response.headers["X-Invocation"])
    assert f"Id={response.headers['X-Invocation']}" in host.output()


def test_multipart_upload_is_read_through_req_files(host: HostProcess) -> None:
    content = bytes(range(256)) * 4000
    response = requests.post(
        host.url("/api/upload"),
        files={"file": ("photo.bin", content, "application/octet-stream")},
        data={"note": "hello form"},
        timeout=30,
    )
    assert response.status_code == 202
    assert response.json() == {
        "filename": "photo.bin",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "note": "hello form",
    }
    assert response.raw.headers.getlist("X-Multi") == ["one", "two"]


def test_chunked_body_is_read(host: HostProcess) -> None:
    response = requests.post(host.url("/api/upload"), data=iter([b"abc", b"defg"]), timeout=30)
    assert response.json() == {"size": 7}


def test_body_over_100_mb_is_413(host: HostProcess) -> None:
    with socket.create_connection(("127.0.0.1", host.port), timeout=30) as sock:
        sock.sendall(b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 104857601\r\n\r\n")
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413")


def test_unhandled_exception_is_500_with_empty_body_and_traceback_in_the_log(host: HostProcess) -> None:
    response = requests.get(host.url("/api/boom"), timeout=30)
    assert response.status_code == 500
    assert response.content == b""
    wait_until(lambda: "boom-marker: raised on purpose" in host.output())
    assert "Executed 'Functions.boom' (Failed, Id=" in host.output()


def test_output_binding_is_written_only_when_the_function_succeeds(
    host: HostProcess, module_queues: QueueKit
) -> None:
    failed = requests.post(host.url("/api/enqueue?fail=1"), data=b"lost", timeout=30)
    assert failed.status_code == 500
    ok = requests.post(host.url("/api/enqueue?many=2"), data=b"kept", timeout=30)
    assert ok.status_code == 202
    wait_until(lambda: len(module_queues.peek_texts(module_queues.out)) >= 2)
    assert decoded(module_queues.peek_texts(module_queues.out)) == ["kept#0", "kept#1"]


def test_keys_are_enforced_on_request(tmp_path: Path, azurite: object) -> None:
    env = {
        "AzureWebJobsStorage": azurite.connection_string,  # type: ignore[attr-defined]
        "DEVHOST_FUNCTION_KEY": "k-" + uuid.uuid4().hex,
        "RECORD_DIR": str(tmp_path),
    }
    keyed = run_host(tmp_path, BASIC_APP, env, ["--workers", "1", "--enforce-keys"])
    try:
        keyed.wait_for("Host started")
        url = keyed.url("/api/default_route")
        assert requests.post(url, data=b"x", timeout=30).status_code == 401
        assert (
            requests.post(url, data=b"x", headers={"x-functions-key": "wrong"}, timeout=30).status_code == 401
        )
        assert (
            requests.post(
                url, data=b"x", headers={"x-functions-key": env["DEVHOST_FUNCTION_KEY"]}, timeout=30
            ).status_code
            == 201
        )
        assert (
            requests.post(
                url, params={"code": env["DEVHOST_FUNCTION_KEY"]}, data=b"x", timeout=30
            ).status_code
            == 201
        )
        # anonymous functions stay open
        assert requests.get(keyed.url("/api/items/1"), timeout=30).status_code == 200
        assert env["DEVHOST_FUNCTION_KEY"] not in keyed.output()
    finally:
        keyed.proc.terminate()
        keyed.wait_exit()


def test_keys_are_not_enforced_by_default(host: HostProcess) -> None:
    assert requests.post(host.url("/api/default_route"), data=b"x", timeout=30).status_code == 201


def test_json_body(host: HostProcess) -> None:
    body = json.dumps({"a": 1}).encode()
    assert requests.post(host.url("/api/upload"), data=body, timeout=30).json() == {"size": len(body)}
