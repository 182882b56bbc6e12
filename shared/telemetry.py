"""OpenTelemetry: one span per invocation, and the ids that tie a request together on spans and logs.

``configure_once`` sends spans and logs to Azure Monitor (azure-monitor-opentelemetry) when
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set; it runs once per worker process, from the
adapter layer. Without it, spans go to whatever tracer provider is installed (none: no-ops; the
tests install in-memory exporters).

The request id, image seq and webhook delivery id are kept in a context variable for the length
of an invocation: ``annotate`` puts them on the invocation's span, and ``ContextAttributes`` (a
logging filter on the exporting handler) copies them onto every log record, so a log query can
filter on ``imgpipe.request_id`` instead of parsing message text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from shared.settings import Settings

logger = logging.getLogger(__name__)

TRACER_NAME = "imgpipe"
# The logger whose records are exported: the app's own modules (the host forwards the rest).
APP_LOGGER = "shared"
REQUEST_ID = "imgpipe.request_id"
IMAGE_SEQ = "imgpipe.image_seq"
DELIVERY_ID = "imgpipe.webhook_delivery_id"
FUNCTION_NAME = "faas.name"
INVOCATION_ID = "faas.invocation_id"

_NONE: Mapping[str, str | int] = MappingProxyType({})
# None outside an invocation: ids annotated there (a direct call in a test or a script) would
# otherwise stick to every later record of the thread.
_attributes: ContextVar[Mapping[str, str | int] | None] = ContextVar("imgpipe_telemetry_attributes", default=None)
_configure_lock = threading.Lock()
_configured = False


def annotate(*, request_id: str | None = None, image_seq: int | None = None, delivery_id: str | None = None) -> None:
    """Attach ids to the current invocation's span and to every log record it writes from now on."""
    values: dict[str, str | int] = {}
    if request_id:
        values[REQUEST_ID] = request_id
    if image_seq is not None:
        values[IMAGE_SEQ] = image_seq
    if delivery_id:
        values[DELIVERY_ID] = delivery_id
    current = _attributes.get()
    if not values or current is None:
        return
    _attributes.set({**current, **values})
    span = trace.get_current_span()
    for key, value in values.items():
        span.set_attribute(key, value)


def current_attributes() -> Mapping[str, str | int]:
    return _attributes.get() or _NONE


@contextmanager
def invocation_span(
    function_name: str,
    kind: SpanKind = SpanKind.SERVER,
    *,
    traceparent: str | None = None,
    tracestate: str | None = None,
    invocation_id: str | None = None,
) -> Iterator[trace.Span]:
    """One span for one function invocation; ids annotated inside it stay inside it.

    ``traceparent``/``tracestate`` (the host's W3C trace context, from ``context.trace_context``)
    make the span a child of the host's request or dependency, so both land in one trace.
    """
    token = _attributes.set(_NONE)
    tracer = trace.get_tracer(TRACER_NAME)
    carrier = {"traceparent": traceparent or "", "tracestate": tracestate or ""}
    parent = TraceContextTextMapPropagator().extract(carrier) if traceparent else None
    attributes: dict[str, str] = {FUNCTION_NAME: function_name}
    if invocation_id:
        attributes[INVOCATION_ID] = invocation_id
    try:
        with tracer.start_as_current_span(
            function_name, context=parent, kind=kind, attributes=attributes, record_exception=False,
            set_status_on_exception=False,
        ) as span:  # fmt: skip
            try:
                yield span
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
    finally:
        _attributes.reset(token)


class ContextAttributes(logging.Filter):
    """Copies the invocation's ids onto each record (as ``extra=`` would), so exporters send them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_attributes.get() or _NONE).items():
            setattr(record, key, value)
        return True


def ingestion_credential(authentication_string: str) -> TokenCredential | None:
    """The credential ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` asks for (``Authorization=AAD;ClientId=...``),
    for an Application Insights resource with local (key) authentication disabled."""
    parts = dict(
        (key.strip().lower(), value.strip())
        for key, _, value in (part.partition("=") for part in authentication_string.split(";") if part.strip())
    )
    if parts.get("authorization", "").lower() != "aad":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=parts.get("clientid") or None)


def configure_once(settings: Settings) -> bool:
    """Set up export to Azure Monitor once per process; returns whether export is on."""
    global _configured
    with _configure_lock:
        if _configured:
            return bool(settings.appinsights_connection_string)
        _configured = True
        if not settings.appinsights_connection_string:
            return False
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=str(settings.appinsights_connection_string),
            credential=ingestion_credential(settings.appinsights_authentication_string),
            logger_name=APP_LOGGER,
        )
        for handler in logging.getLogger(APP_LOGGER).handlers:
            handler.addFilter(ContextAttributes())
        logger.info("telemetry: exporting spans and logs to Azure Monitor")
        return True
