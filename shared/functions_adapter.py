"""The one module that speaks ``azure.functions``: requests in, responses out, errors mapped.

Function folders bind, call one use case with ``dependencies()``, and hand the result or the
error to a function here. It is also the one place with process-wide state: the ``Dependencies``
of this worker process, built from ``Settings`` on the first invocation (not at import, so a
missing setting fails an invocation with a clear log line rather than the worker's start).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin

import azure.functions as func
from opentelemetry.trace import SpanKind

from shared import telemetry
from shared.cancel import CancelAnswer
from shared.container import Dependencies, build_dependencies
from shared.errors import (
    ConfigError,
    Conflict,
    DependencyMissing,
    ImgpipeError,
    MalformedMessage,
    NotFound,
    PayloadTooLarge,
    Problem,
    UnsupportedMediaType,
    ValidationError,
)
from shared.health import HealthMonitor, HealthReport, dependency_checks, failed_report
from shared.idempotency import caller_of
from shared.options import FIELD_NAMES as OPTION_FIELDS
from shared.settings import Settings
from shared.status import StatusAnswer, StatusQuery
from shared.upload import UploadAccepted, UploadInput
from shared.upload_page import Page

logger = logging.getLogger(__name__)

# Function folders name the one error they map themselves through this module.
__all__ = ["MalformedMessage"]

CSV_CONTENT_TYPES = {"text/csv", "application/csv", "application/vnd.ms-excel", "text/plain"}
# Room for the multipart envelope around a CSV that is just under the limit.
MULTIPART_OVERHEAD = 64 * 1024

_lock = threading.Lock()
_dependencies: Dependencies | None = None
_built_here = False  # whether this module built _dependencies (and so must close them)
_health: HealthMonitor | None = None  # over _dependencies; shares one round of checks per few seconds


def dependencies() -> Dependencies:
    """This worker process's dependencies, built on first use; a failed build is tried again next time."""
    global _dependencies, _built_here
    if _dependencies is None:
        with _lock:
            if _dependencies is None:
                _dependencies = build_dependencies(Settings.from_env())
                _built_here = True
    return _dependencies


def set_dependencies(replacement: Dependencies | None) -> None:
    """Use ``replacement`` from now on (a test hands in fakes); ``None`` builds afresh on next use.

    Dependencies this module built are closed when replaced; the caller closes what it handed in.
    """
    global _dependencies, _built_here, _health
    with _lock:
        previous, built_here = _dependencies, _built_here
        _dependencies, _built_here = replacement, False
        monitor, _health = _health, None
    if monitor is not None:
        monitor.close()
    if previous is not None and built_here:
        previous.close()


def health_report() -> HealthReport:
    """This process's health; settings that are refused (or any failed build) are the failed report."""
    global _health
    try:
        deps = dependencies()
    except Exception as exc:  # refused settings (ConfigError, with its reasons) or a client that cannot be built
        logger.error("health: the app's dependencies cannot be built", exc_info=True)
        return failed_report("settings", exc)
    with _lock:
        if _health is None:
            _health = HealthMonitor(dependency_checks(deps))
        monitor = _health
    return monitor.report()


def _json(status: int, document: object, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(document, ensure_ascii=False),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers=headers,
    )


def upload_input(req: func.HttpRequest, settings: Settings) -> UploadInput:
    body = req.get_body()
    if len(body) > settings.max_csv_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"the upload is larger than {settings.max_csv_bytes} bytes")
    media_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    webhook_url = req.params.get("webhook_url")
    option_fields = {name: req.params[name] for name in OPTION_FIELDS if req.params.get(name)}
    if media_type == "multipart/form-data":
        try:
            upload = req.files.get("file")
            # A part sent without a filename arrives as a plain form field, not as a file.
            field_text = req.form.get("file")
            webhook_url = req.form.get("webhook_url") or webhook_url
            option_fields.update({name: req.form[name] for name in OPTION_FIELDS if req.form.get(name)})
        except Exception:  # werkzeug raises several types on a broken envelope
            raise ValidationError([Problem("the multipart/form-data body cannot be parsed")]) from None
        if upload is not None:
            csv_data = upload.read(settings.max_csv_bytes + 1)
        elif field_text is not None:
            csv_data = field_text.encode("utf-8")
        else:
            raise ValidationError([Problem("the multipart form has no 'file' field with the CSV", column="file")])
    elif media_type in CSV_CONTENT_TYPES:
        csv_data = body
    else:
        raise UnsupportedMediaType(
            [Problem(f"content type {media_type or '(none)'!r} is not multipart/form-data or text/csv")]
        )
    return UploadInput(
        csv_data=csv_data,
        webhook_url=webhook_url or None,
        idempotency_key=req.headers.get("idempotency-key"),
        option_fields=option_fields,
        caller=caller_of(req.headers, req.params),
    )


def _configure_telemetry() -> None:
    try:
        telemetry.configure_once(dependencies().settings)
    except Exception:  # the invocation meets the same error inside its own handling and answers for it
        logger.debug("telemetry not configured yet: the dependencies cannot be built", exc_info=True)


def _span_options(context: func.Context | None) -> dict[str, str | None]:
    """The host's trace context and invocation id, when the worker passed a context."""
    if context is None:
        return {}
    trace_context = getattr(context, "trace_context", None)
    return {
        "traceparent": getattr(trace_context, "trace_parent", None) or None,
        "tracestate": getattr(trace_context, "trace_state", None) or None,
        "invocation_id": getattr(context, "invocation_id", None) or None,
    }


@contextmanager
def http_invocation(function_name: str, context: func.Context | None = None) -> Iterator[None]:
    """One server span around an HTTP function (telemetry set up on a worker's first invocation)."""
    _configure_telemetry()
    with telemetry.invocation_span(function_name, SpanKind.SERVER, **_span_options(context)):
        yield


@contextmanager
def queue_invocation(
    function_name: str, msg: func.QueueMessage, context: func.Context | None = None, *, webhook: bool = False
) -> Iterator[str]:
    """One consumer span around a queue function, carrying the ids its message names; yields the body.

    ``webhook``: the message is a notify message, whose webhook delivery id derives from its request.
    """
    _configure_telemetry()
    with telemetry.invocation_span(function_name, SpanKind.CONSUMER, **_span_options(context)):
        body = queue_text(msg)  # a body that is not text is MalformedMessage, recorded on the span
        _annotate_from_message(body, webhook)
        yield body


def _annotate_from_message(body: str, webhook: bool) -> None:
    try:
        fields = json.loads(body)
    except ValueError:
        return  # the handler reports the bad message
    if not isinstance(fields, dict) or not isinstance(fields.get("request_id"), str):
        return
    from shared.notify import delivery_id_for

    seq = fields.get("seq")
    telemetry.annotate(
        request_id=fields["request_id"],
        image_seq=seq if isinstance(seq, int) else None,
        delivery_id=delivery_id_for(fields["request_id"]) if webhook else None,
    )


def health_response(report: HealthReport) -> func.HttpResponse:
    # no-store: a cache in front must not answer "healthy" for a dependency that has since failed.
    return _json(200 if report.healthy else 503, report.as_dict(), {"Cache-Control": "no-store"})


def accepted_response(req: func.HttpRequest, accepted: UploadAccepted) -> func.HttpResponse:
    telemetry.annotate(request_id=accepted.request_id)
    location = urljoin(req.url, f"status/{accepted.request_id}")
    document = {
        "request_id": accepted.request_id,
        "status": accepted.status.value,
        "products": accepted.products,
        "images": accepted.images,
    }
    headers = {"Location": location, "Retry-After": "2"}
    if accepted.replayed:  # the answer to an earlier upload with the same Idempotency-Key
        headers["Idempotent-Replayed"] = "true"
    return _json(202, document, headers)


def status_query(req: func.HttpRequest) -> StatusQuery:
    accept = (req.headers.get("accept") or "").lower()
    include = {part.strip() for part in (req.params.get("include") or "").split(",")}
    fmt = (req.params.get("format") or "").lower()
    return StatusQuery(
        request_id=req.route_params.get("request_id", ""),
        include_images="images" in include,
        # An explicit ?format= wins over the Accept header.
        as_csv=fmt == "csv" if fmt else "text/csv" in accept,
    )


def status_response(answer: StatusAnswer) -> func.HttpResponse:
    if answer.csv is not None:
        return func.HttpResponse(answer.csv, status_code=200, mimetype="text/csv", charset="utf-8")
    return _json(200, answer.document)


def cancel_response(answer: CancelAnswer) -> func.HttpResponse:
    """200 once the request is Cancelled; 202 while its started images are still finishing."""
    return _json(200 if answer.finished else 202, answer.document)


def page_response(page: Page) -> func.HttpResponse:
    return func.HttpResponse(page.html, status_code=200, mimetype="text/html", charset="utf-8",
                             headers=page.headers)


def error_response(exc: Exception) -> func.HttpResponse:
    """Map an error to a response that explains client mistakes and hides everything else."""
    if isinstance(exc, ValidationError):
        document = {
            "error": str(exc) or "invalid request",
            "problems": [problem.as_dict() for problem in exc.problems],
            "truncated": exc.truncated,
        }
        return _json(exc.status_code, document)
    if isinstance(exc, NotFound):
        return _json(404, {"error": "not found"})
    if isinstance(exc, DependencyMissing):  # a deployment problem: say which, so it gets fixed
        logger.error("request refused: %s", exc)
        return _json(503, {"error": "temporarily unavailable, retry later", "reason": str(exc)}, {"Retry-After": "30"})
    if isinstance(exc, Conflict):
        return _json(409, {"error": str(exc)})
    if isinstance(exc, ConfigError):
        # Retrying cannot help until an operator fixes the setting; its message names the setting,
        # never its value (a Secret hides itself), and is for the log only.
        logger.error("configuration error, fix the app settings: %s", exc)
        return _json(500, {"error": "internal error"})
    if isinstance(exc, ImgpipeError):
        logger.warning("request failed: %s", type(exc).__name__, exc_info=True)
        return _json(503, {"error": "temporarily unavailable, retry later"}, {"Retry-After": "5"})
    logger.error("unexpected error", exc_info=True)
    return _json(500, {"error": "internal error"})


def queue_text(msg: func.QueueMessage) -> str:
    try:
        return msg.get_body().decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("queue message is not UTF-8 text") from None


def malformed_message(msg: func.QueueMessage, exc: MalformedMessage, poison: func.Out[bytes]) -> None:
    """Park a message that can never succeed in the poison queue now, instead of retrying it.

    Its bytes go out as bytes: a string output that looks like JSON is re-written by the host (an
    array becomes one message per element, an object is re-indented; FunctionBinding.cs), so the
    poison copy would no longer be the message that failed.
    """
    logger.error("queue message %s is malformed (%s): moved to the poison queue without retries", msg.id, exc)
    poison.set(msg.get_body())
