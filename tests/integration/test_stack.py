"""`make run`'s driver: what it creates before starting the app, and which host it starts."""

from __future__ import annotations

import sqlite3
import sys

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from devtools import stack as run_stack
from devtools.apphost import AppStack

pytestmark = pytest.mark.integration


def test_bootstrap_creates_queues_poison_queues_container_and_schema(azurite, redis_server, tmp_path) -> None:
    app = AppStack(azurite, redis_server, tmp_path, {"OUTPUT_STORAGE": "blob", "OUTPUT_CONTAINER": "boot-out"})
    run_stack.bootstrap(app.env)
    queues = {q.name for q in QueueServiceClient.from_connection_string(azurite.connection_string).list_queues()}
    image, notify = app.env["IMAGE_QUEUE_NAME"], app.env["NOTIFY_QUEUE_NAME"]
    assert {image, f"{image}-poison", notify, f"{notify}-poison"} <= queues
    containers = {c.name for c in BlobServiceClient.from_connection_string(azurite.connection_string).list_containers()}
    assert "boot-out" in containers
    with sqlite3.connect(app.env["SQLITE_PATH"]) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"requests", "products", "images", "webhook_deliveries"} <= tables
    run_stack.bootstrap(app.env)  # re-runnable: a second make run finds everything in place


def test_the_app_runs_under_func_start_where_core_tools_is_installed(monkeypatch) -> None:
    monkeypatch.setattr(run_stack.shutil, "which", lambda name: "/usr/local/bin/func" if name == "func" else None)
    assert run_stack.app_command(7071, []) == ["/usr/local/bin/func", "start", "--port", "7071"]
    monkeypatch.setattr(run_stack.shutil, "which", lambda name: None)
    command = run_stack.app_command(7071, [])
    assert command[:3] == [sys.executable, "-m", "devhost"] and command[-2:] == ["--port", "7071"]


def test_local_settings_are_loaded_without_overriding_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("JPEG_QUALITY", "60")
    settings = run_stack.load_local_settings()
    assert settings["JPEG_QUALITY"] == "60"
    assert settings["FUNCTIONS_WORKER_RUNTIME"] == "python"
