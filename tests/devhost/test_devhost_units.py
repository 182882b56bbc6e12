"""Unit tests of the host's pure parts: routing, settings, queue options, message encoding."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from devhost.discovery import Binding, FunctionLoadError, FunctionSpec
from devhost.queue_io import decode, encode
from devhost.queue_options import QueueOptions
from devhost.routing import Router
from devhost.settings import (
    DEV_ACCOUNT_KEY,
    SettingsError,
    load_host_json,
    load_local_settings,
    parse_timespan,
)


def http_spec(name: str, route: str | None = None, methods: list[str] | None = None) -> FunctionSpec:
    properties: dict[str, object] = {"type": "httpTrigger", "name": "req"}
    if route is not None:
        properties["route"] = route
    if methods is not None:
        properties["methods"] = methods
    trigger = Binding("req", "httptrigger", "in", properties)
    return FunctionSpec(name, "/app/" + name, "/app", name, "main", trigger, ())


def test_route_parameters_constraints_and_optional_segments() -> None:
    router = Router([http_spec("items", "items/{id:int}/{name:alpha?}", ["get"])], "api")
    assert router.match("GET", "/api/items/42/abc").route_params == {"id": "42", "name": "abc"}
    assert router.match("GET", "/api/items/42").route_params == {"id": "42"}
    assert router.match("GET", "/api/items/x42").route is None
    assert router.match("GET", "/api/items/42/abc1").route is None


def test_guid_constraint_and_literals_are_case_insensitive() -> None:
    router = Router([http_spec("thing", "things/{tid:guid}")], "api")
    tid = str(uuid.uuid4())
    assert router.match("GET", f"/API/Things/{tid}").route_params == {"tid": tid}
    assert router.match("GET", "/api/things/not-a-guid").route is None


def test_default_route_is_the_function_name_and_the_prefix_can_be_empty() -> None:
    router = Router([http_spec("hello")], "")
    assert router.match("GET", "/hello").route is not None
    assert router.match("GET", "/api/hello").route is None


def test_a_literal_route_wins_over_a_parameter() -> None:
    router = Router([http_spec("by_id", "items/{id}"), http_spec("special", "items/special")], "api")
    match = router.match("GET", "/api/items/special")
    assert match.route is not None and match.route.spec.name == "special"


def test_unknown_constraint_is_a_load_error() -> None:
    with pytest.raises(FunctionLoadError, match="unknown route constraint 'shape'"):
        Router([http_spec("bad", "x/{v:shape}")], "api")


def test_local_settings_do_not_override_the_environment(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps(
            {
                "Values": {
                    "A": "from-file",
                    "B": "from-file",
                    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                }
            }
        )
    )
    environ = {"A": "from-env", "DEVHOST_AZURITE_QUEUE_PORT": "12345"}
    load_local_settings(tmp_path, environ)
    assert environ["A"] == "from-env"
    assert environ["B"] == "from-file"
    storage = environ["AzureWebJobsStorage"]
    assert "QueueEndpoint=http://127.0.0.1:12345/devstoreaccount1;" in storage
    assert f"AccountKey={DEV_ACCOUNT_KEY};" in storage


def test_a_full_connection_string_in_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"S": "UseDevelopmentStorage=true"}}))
    environ = {"S": "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=eA==;QueueEndpoint=http://h:1/x"}
    load_local_settings(tmp_path, environ)
    assert environ["S"].endswith("QueueEndpoint=http://h:1/x")


def test_host_json_values_can_be_overridden_by_settings(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(
        json.dumps(
            {"version": "2.0", "extensions": {"queues": {"batchSize": 16, "messageEncoding": "base64"}}}
        )
    )
    environ = {
        "AzureFunctionsJobHost__extensions__queues__batchSize": "3",
        "AzureFunctionsJobHost__extensions__queues__messageEncoding": "none",
    }
    options = QueueOptions.from_host_json(load_host_json(tmp_path, environ), environ)
    assert (options.batch_size, options.message_encoding) == (3, "none")


def test_queue_option_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("devhost.queue_options.cpu_count", lambda: 4)
    options = QueueOptions.from_host_json({"version": "2.0"}, {})
    assert options.batch_size == 16
    assert options.new_batch_threshold == 32  # batchSize / 2 x cores
    assert options.max_in_flight == 48
    assert options.max_polling_interval == 2.0
    assert options.max_dequeue_count == 5
    assert options.visibility_timeout == 0
    assert options.lease_seconds == 600


def test_bad_queue_options_are_refused() -> None:
    with pytest.raises(SettingsError):
        QueueOptions.from_host_json({"extensions": {"queues": {"messageEncoding": "utf16"}}}, {})
    with pytest.raises(SettingsError):
        QueueOptions.from_host_json({"extensions": {"queues": {"batchSize": 64}}}, {})


@pytest.mark.parametrize(
    ("text", "seconds"), [("00:00:02", 2.0), ("00:00:00.250", 0.25), ("1.00:00:01", 86401.0)]
)
def test_timespans(text: str, seconds: float) -> None:
    assert parse_timespan(text, "x") == seconds


def test_base64_round_trip_and_undecodable_text() -> None:
    assert decode(encode("héllo", "base64"), "base64") == "héllo".encode()
    assert decode(encode(b"\x00\xff", "base64"), "base64") == b"\x00\xff"
    assert decode("not base64!!", "base64") is None
    assert decode("plain", "none") == b"plain"
    assert encode("plain", "none") == "plain"
