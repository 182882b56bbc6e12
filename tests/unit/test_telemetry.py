"""One span per invocation carrying the request id (and seq / delivery id); the same ids on logs.

The function folders' main() are called as the worker calls them, with opentelemetry-sdk's
in-memory exporters installed where configure_azure_monitor would install Azure Monitor's.
"""

from __future__ import annotations

import importlib
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from opentelemetry import trace
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shared import functions_adapter, telemetry
from shared.errors import TransientFailure
from shared.memory import memory_dependencies
from shared.notify import delivery_id_for
from shared.settings import Settings
from shared.store import Store

ROOT = Path(__file__).resolve().parents[2]
process_queue = importlib.import_module("process_queue")
notify_queue = importlib.import_module("notify_queue")
status_http = importlib.import_module("status_http")


@pytest.fixture(scope="module")
def span_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture()
def spans(span_exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    span_exporter.clear()
    return span_exporter


@pytest.fixture()
def logs() -> Iterator[InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    handler.addFilter(telemetry.ContextAttributes())  # as configure_once does to Azure Monitor's handler
    app_logger = logging.getLogger(telemetry.APP_LOGGER)
    app_logger.addHandler(handler)
    previous = app_logger.level
    app_logger.setLevel(logging.INFO)
    yield exporter
    app_logger.removeHandler(handler)
    app_logger.setLevel(previous)


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[None]:
    settings = Settings.from_env({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true", "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
    })
    store = Store.for_sqlite(settings.sqlite_path)
    store.ensure_schema()
    deps = memory_dependencies(settings, store)
    functions_adapter.set_dependencies(deps)
    yield
    functions_adapter.set_dependencies(None)
    deps.close()


def queue_message(body: dict[str, object]) -> QueueMessage:
    return QueueMessage(id="m1", body=json.dumps(body).encode(), dequeue_count=1)


class Out:
    def set(self, value: str) -> None:
        self.value = value


def test_an_image_invocation_is_one_consumer_span_with_its_request_id_and_seq(app, spans, logs) -> None:
    request_id = str(uuid.uuid4())
    process_queue.main(queue_message({"request_id": request_id, "seq": 3, "url": "https://x/a.jpg", "total": 5}),
                       Out(), Out())
    finished = spans.get_finished_spans()
    invocations = [s for s in finished if s.name == "process_queue"]
    assert len(invocations) == 1
    span = invocations[0]
    assert span.kind is SpanKind.CONSUMER
    assert span.attributes[telemetry.REQUEST_ID] == request_id
    assert span.attributes[telemetry.IMAGE_SEQ] == 3
    # The handler logged that the image is unknown; the record carries the ids as attributes and
    # belongs to the invocation's trace.
    records = [r for r in logs.get_finished_logs() if "not in the database" in str(r.log_record.body)]
    assert len(records) == 1
    assert records[0].log_record.attributes[telemetry.REQUEST_ID] == request_id
    assert records[0].log_record.attributes[telemetry.IMAGE_SEQ] == 3
    assert records[0].log_record.trace_id == span.context.trace_id


def test_a_notify_invocation_carries_the_webhook_delivery_id(app, spans) -> None:
    request_id = str(uuid.uuid4())
    notify_queue.main(queue_message({"request_id": request_id}), Out())
    (span,) = [s for s in spans.get_finished_spans() if s.name == "notify_queue"]
    assert span.attributes[telemetry.REQUEST_ID] == request_id
    assert span.attributes[telemetry.DELIVERY_ID] == delivery_id_for(request_id)
    assert telemetry.IMAGE_SEQ not in span.attributes


def test_ids_do_not_leak_from_one_invocation_into_the_next(app, spans, logs) -> None:
    request_id = str(uuid.uuid4())
    notify_queue.main(queue_message({"request_id": request_id}), Out())
    logging.getLogger("shared.test").warning("between invocations")
    (record,) = [r for r in logs.get_finished_logs() if r.log_record.body == "between invocations"]
    assert telemetry.REQUEST_ID not in record.log_record.attributes
    assert telemetry.current_attributes() == {}


def test_a_failed_invocation_is_an_error_span(app, spans) -> None:
    class DatabaseDown:
        def __getattr__(self, name: str) -> object:  # whatever the use case asks the store first
            def unavailable(*args: object, **kwargs: object) -> None:
                raise TransientFailure("database unavailable or busy (OperationalError)")

            return unavailable

    functions_adapter.set_dependencies(replace(functions_adapter.dependencies(), store=DatabaseDown()))
    message = queue_message({"request_id": str(uuid.uuid4()), "seq": 0, "url": "https://x/a.jpg", "total": 1})
    with pytest.raises(TransientFailure):  # raised, so the queue retries it
        process_queue.main(message, Out(), Out())
    (span,) = [s for s in spans.get_finished_spans() if s.name == "process_queue"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.events and span.events[0].name == "exception"


def test_an_http_invocation_is_one_server_span(app, spans) -> None:
    request = func.HttpRequest(method="GET", url="http://localhost/api/status/x", body=b"",
                               route_params={"request_id": str(uuid.uuid4())})
    assert status_http.main(request).status_code == 404
    (span,) = [s for s in spans.get_finished_spans() if s.name == "status_http"]
    assert span.kind is SpanKind.SERVER


def test_azure_monitor_is_configured_once_per_process_when_its_connection_string_is_set(tmp_path) -> None:
    # A separate interpreter: configuring installs process-wide providers. The ingestion endpoint is
    # a closed loopback port, so nothing leaves the machine.
    script = """
import logging, os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from shared import telemetry
from shared.settings import Settings
settings = Settings.from_env({
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "APPLICATIONINSIGHTS_CONNECTION_STRING":
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;ClientId=0d9b4e31",
})
assert telemetry.configure_once(settings) is True
provider = trace.get_tracer_provider()
assert isinstance(provider, TracerProvider), provider
handlers = [h for h in logging.getLogger("shared").handlers if isinstance(h, LoggingHandler)]
assert len(handlers) == 1 and any(isinstance(f, telemetry.ContextAttributes) for f in handlers[0].filters)
assert telemetry.configure_once(settings) is True
assert len([h for h in logging.getLogger("shared").handlers if isinstance(h, LoggingHandler)]) == 1
assert trace.get_tracer_provider() is provider
print("configured-once", flush=True)
os._exit(0)  # skip the exporters' flush at exit: there is nowhere to send to
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
                                 "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "configured-once" in result.stdout


def test_the_aad_authentication_string_names_the_managed_identity() -> None:
    from azure.identity import ManagedIdentityCredential

    credential = telemetry.ingestion_credential("Authorization=AAD;ClientId=0d9b4e31-6f1c")
    assert isinstance(credential, ManagedIdentityCredential)
    assert telemetry.ingestion_credential("") is None


def test_host_json_keeps_the_requests_table() -> None:
    # Application Insights fills its requests table from the host's "Host.Results" category; at
    # "Error" only failed invocations were recorded (MicrosoftDocs/azure-docs,
    # articles/azure-functions/configure-monitoring.md: log categories, Host.Results -> requests).
    levels = json.loads((ROOT / "host.json").read_text())["logging"]["logLevel"]
    assert levels["Host.Results"] in {"Trace", "Debug", "Information"}


class HostContext:
    """What the worker passes as ``context``: the invocation id and the host's W3C trace context."""

    class trace_context:  # noqa: N801 - mirrors azure.functions.Context
        trace_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        trace_state = "congo=t61rcWkgMzE"

    invocation_id = "5b1f7c0e-0d5f-4b57-9a0e-3c2b1a0f9e8d"


def test_the_invocation_span_continues_the_hosts_trace(app, spans) -> None:
    request_id = str(uuid.uuid4())
    process_queue.main(queue_message({"request_id": request_id, "seq": 0, "url": "https://x/a.jpg", "total": 1}),
                       Out(), Out(), HostContext())
    (span,) = [s for s in spans.get_finished_spans() if s.name == "process_queue"]
    assert span.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7
    assert span.attributes[telemetry.INVOCATION_ID] == HostContext.invocation_id


def test_an_upload_span_carries_the_request_id_it_answers_with(app, spans) -> None:
    upload_http = importlib.import_module("upload_http")
    csv = b"S. No.,Product Name,Input Image Urls\n1,SKU1,https://img.example/a.jpg\n"
    request = func.HttpRequest(method="POST", url="http://localhost/api/upload", body=csv,
                               headers={"content-type": "text/csv"})
    response = upload_http.main(request, Out())
    assert response.status_code == 202
    (span,) = [s for s in spans.get_finished_spans() if s.name == "upload_http"]
    assert span.attributes[telemetry.REQUEST_ID] == json.loads(response.get_body())["request_id"]
