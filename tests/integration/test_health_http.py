"""GET /api/health, a missing queue, and refused development settings, through the local host."""

from __future__ import annotations

import pytest
import requests
from azure.storage.queue import QueueClient

from devtools.apphost import AppStack
from devtools.samples import csv_for

pytestmark = pytest.mark.integration


def test_health_answers_200_with_every_dependency_ok(stack: AppStack) -> None:
    response = requests.get(f"{stack.base_url}/health", timeout=30)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["status"] == "healthy"
    queues = {f"queue:{stack.env[name]}" for name in ("IMAGE_QUEUE_NAME", "NOTIFY_QUEUE_NAME", "FANOUT_QUEUE_NAME")}
    assert set(document["checks"]) == {"database", "redis", "output_storage", *queues}
    assert all(check["status"] == "ok" for check in document["checks"].values())
    assert response.headers["Cache-Control"] == "no-store"


def test_a_missing_image_queue_is_a_503_with_its_reason_for_health_and_upload(make_stack, image_server) -> None:
    stack = make_stack()
    image_queue = stack.env["IMAGE_QUEUE_NAME"]
    QueueClient.from_connection_string(stack.env["AzureWebJobsStorage"], image_queue).delete_queue()
    upload = stack.upload(csv_for([[image_server.url("/img/1.jpg")]]))
    assert upload.status_code == 503, upload.text
    assert upload.json()["reason"] == f"queue '{image_queue}' does not exist (create it with the deployment)"
    health = requests.get(f"{stack.base_url}/health", timeout=30)
    assert health.status_code == 503
    check = health.json()["checks"][f"queue:{image_queue}"]
    assert check["status"] == "failed" and "does not exist" in check["reason"]
    assert image_server.requests == []  # nothing was accepted, so nothing was fetched


def test_in_azure_the_development_settings_are_refused_with_every_problem(azurite, redis_server, tmp_path) -> None:
    stack = AppStack(azurite, redis_server, tmp_path / "azure", {"WEBSITE_INSTANCE_ID": "0a1b2c3d"})
    stack.start_host()
    try:
        health = requests.get(f"{stack.base_url}/health", timeout=30)
        assert health.status_code == 503
        reason = health.json()["checks"]["settings"]["reason"]
        assert reason.startswith("running in Azure (WEBSITE_INSTANCE_ID is set) with development settings:")
        for problem in ("SQLSERVER_CONNECTION_STRING", "Azurite", "loopback Redis", "OUTBOUND_ALLOWLIST",
                        "set OUTPUT_STORAGE=blob"):
            assert problem in reason
        upload = stack.upload("S. No.,Product Name,Input Image Urls\n1,a,https://x.example/a.jpg\n")
        assert upload.status_code == 500  # a ConfigError: no retry helps until an operator fixes it
        assert "configuration error, fix the app settings: running in Azure" in stack.logs()
    finally:
        stack.stop()
