"""openapi.yaml is a valid OpenAPI 3.1 document and describes what the app really answers."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Mapping
from typing import Any

import azure.functions as func
import pytest
import requests
from openapi_spec_validator import validate as validate_openapi
from requests.adapters import BaseAdapter

from devtools.openapi_check import SpecMismatch, assert_matches, assert_webhook_matches, load_spec
from shared import functions_adapter
from shared.errors import (
    ConfigError,
    DependencyMissing,
    NotFound,
    PayloadTooLarge,
    Problem,
    TransientFailure,
    UnsupportedMediaType,
    ValidationError,
)
from shared.models import ImageStatus, RequestStatus
from shared.report import output_csv, status_document, webhook_payload
from shared.status import StatusAnswer
from shared.upload import UploadAccepted
from shared.webhook import WebhookSender
from tests.unit.test_report import REQUEST_ID, attempt, image, request, sample_images

STATUS = "/api/status/{request_id}"
UPLOAD = "/api/upload"


@pytest.fixture(scope="module")
def spec() -> Mapping[str, Any]:
    return load_spec()


def json_response(status: int, body: object, headers: dict[str, str] | None = None,
                  content_type: str = "application/json; charset=utf-8") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update({"Content-Type": content_type, **(headers or {})})
    response._content = json.dumps(body).encode()
    return response


# --- the document itself ---------------------------------------------------------------------


def test_spec_is_valid_openapi_3_1(spec: Mapping[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    validate_openapi(dict(spec))


@pytest.mark.parametrize("breakage", ["dangling_ref", "bad_field"])
def test_spec_validation_can_fail(spec: Mapping[str, Any], breakage: str) -> None:
    broken = copy.deepcopy(dict(spec))
    accepted = broken["paths"][UPLOAD]["post"]["responses"]["202"]
    if breakage == "dangling_ref":
        accepted["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/NoSuchSchema"}
    else:
        accepted["headers"]["Location"]["required"] = "yes"
    with pytest.raises(Exception):
        validate_openapi(broken)


def test_security_allows_the_function_key_in_header_or_query(spec: Mapping[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {
        ("header", "x-functions-key"), ("query", "code")}


# --- real responses of the function layer ----------------------------------------------------


def test_status_json_without_and_with_images(spec: Mapping[str, Any]) -> None:
    deliveries = [attempt(1, False, 503, "HTTP 503"), attempt(2, True, 200, None)]
    for images in (None, sample_images()):
        document = status_document(request(), images, deliveries)
        response = functions_adapter.status_response(StatusAnswer(document, None))
        assert assert_matches(spec, "GET", STATUS, response) == document


def test_status_json_of_a_pending_request_without_webhook(spec: Mapping[str, Any]) -> None:
    record = request(status=RequestStatus.PENDING, webhook_url=None, done=0, failed=0, completed_at=None)
    pending = [image(0, 1, "A", 0, ImageStatus.PENDING)]
    response = functions_adapter.status_response(StatusAnswer(status_document(record, pending, []), None))
    assert_matches(spec, "GET", STATUS, response)


def test_status_csv(spec: Mapping[str, Any]) -> None:
    csv_text = output_csv(sample_images())
    response = functions_adapter.status_response(StatusAnswer(None, csv_text))
    assert assert_matches(spec, "GET", STATUS, response) == csv_text


def test_upload_accepted(spec: Mapping[str, Any]) -> None:
    req = func.HttpRequest(method="POST", url="http://localhost:7071/api/upload", body=b"")
    accepted = UploadAccepted(REQUEST_ID, RequestStatus.PENDING, 2, 4, replayed=False)
    body = assert_matches(spec, "POST", UPLOAD, functions_adapter.accepted_response(req, accepted))
    assert body == {"request_id": REQUEST_ID, "status": "Pending", "products": 2, "images": 4}


@pytest.mark.parametrize(("method", "path", "error", "status"), [
    ("POST", UPLOAD, ValidationError([Problem("product name is empty", 3, "Product Name")]), 400),
    ("POST", UPLOAD, PayloadTooLarge("the upload is larger than 10 bytes"), 413),
    ("POST", UPLOAD, UnsupportedMediaType("content type 'x' is not CSV"), 415),
    ("POST", UPLOAD, TransientFailure("database down"), 503),
    ("POST", UPLOAD, RuntimeError("bug"), 500),
    ("GET", STATUS, ValidationError([Problem("request_id is not a UUID", column="request_id")]), 400),
    ("GET", STATUS, NotFound("no request"), 404),
    ("GET", STATUS, TransientFailure("redis down"), 503),
    ("POST", UPLOAD, DependencyMissing("queue 'image-jobs' does not exist (create it with the deployment)"), 503),
])
def test_error_responses(spec: Mapping[str, Any], method: str, path: str, error: Exception,
                         status: int) -> None:
    response = functions_adapter.error_response(error)
    assert response.status_code == status
    assert_matches(spec, method, path, response)


HEALTH = "/api/health"


def test_health_answers_match_the_spec(spec: Mapping[str, Any]) -> None:
    from shared.health import HealthMonitor, failed_report

    def missing() -> None:
        raise DependencyMissing("queue 'image-jobs' does not exist (create it with the deployment)")

    healthy = HealthMonitor({"database": lambda: None, "redis": lambda: None})
    unhealthy = HealthMonitor({"database": lambda: None, "queue:image-jobs": missing})
    try:
        body = assert_matches(spec, "GET", HEALTH, functions_adapter.health_response(healthy.report()))
        assert body["status"] == "healthy"  # type: ignore[index]
        response = functions_adapter.health_response(unhealthy.report())
        assert response.status_code == 503
        body = assert_matches(spec, "GET", HEALTH, response)
        assert body["checks"]["queue:image-jobs"]["status"] == "failed"  # type: ignore[index]
    finally:
        healthy.close()
        unhealthy.close()
    refused = functions_adapter.health_response(failed_report("settings", ConfigError("in Azure with ...")))
    assert refused.status_code == 503
    assert_matches(spec, "GET", HEALTH, refused)


def test_unauthorized_has_no_body_to_check(spec: Mapping[str, Any]) -> None:
    response = requests.Response()
    response.status_code = 401
    response._content = b""
    assert assert_matches(spec, "GET", STATUS, response) is None


# --- the webhook as it is really sent --------------------------------------------------------


class CapturingAdapter(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.requests.append(request)
        response = requests.Response()
        response.status_code = 200
        response.raw = io.BytesIO(b"")
        return response

    def close(self) -> None:
        pass


def test_sent_webhook_matches_the_spec(spec: Mapping[str, Any]) -> None:
    adapter = CapturingAdapter()
    session = requests.Session()
    session.mount("https://", adapter)
    payload = webhook_payload(request(), sample_images())
    WebhookSender(session, "spec-secret", 5.0).send("https://hooks.example.test/in", payload, "d-1")
    [sent] = adapter.requests
    assert isinstance(sent.body, bytes)
    assert assert_webhook_matches(spec, dict(sent.headers), sent.body) == payload


# --- the checker fails when it should --------------------------------------------------------


def test_checker_rejects_an_undocumented_status(spec: Mapping[str, Any]) -> None:
    with pytest.raises(SpecMismatch, match="does not document status 418"):
        assert_matches(spec, "GET", STATUS, json_response(418, {"error": "teapot"}))


def test_checker_rejects_an_unknown_operation(spec: Mapping[str, Any]) -> None:
    with pytest.raises(SpecMismatch, match="not in the spec"):
        assert_matches(spec, "DELETE", STATUS, json_response(200, {}))


def test_checker_rejects_a_wrong_content_type(spec: Mapping[str, Any]) -> None:
    with pytest.raises(SpecMismatch, match="text/html"):
        assert_matches(spec, "GET", STATUS, json_response(404, {"error": "x"}, content_type="text/html"))


def test_checker_rejects_a_missing_required_header(spec: Mapping[str, Any]) -> None:
    body = {"request_id": REQUEST_ID, "status": "Pending", "products": 1, "images": 1}
    with pytest.raises(SpecMismatch, match="Location"):
        assert_matches(spec, "POST", UPLOAD, json_response(202, body))


@pytest.mark.parametrize("change", [
    {"done": -1}, {"status": "Finished"}, {"created_at": "2024-05-01T12:00:00+02:00"},
    {"request_id": "not-a-uuid"}, {"surprise": True}, {"webhook": {"url": "https://x/"}},
])
def test_checker_rejects_a_body_off_the_schema(spec: Mapping[str, Any], change: dict[str, object]) -> None:
    document = {**status_document(request(), None, []), **change}
    with pytest.raises(SpecMismatch):
        assert_matches(spec, "GET", STATUS, json_response(200, document))


def test_checker_rejects_a_webhook_without_signature(spec: Mapping[str, Any]) -> None:
    body = json.dumps(webhook_payload(request(), sample_images())).encode()
    headers = {"Content-Type": "application/json", "X-Imgpipe-Timestamp": "1", "X-Imgpipe-Delivery": "d"}
    with pytest.raises(SpecMismatch, match="X-Imgpipe-Signature"):
        assert_webhook_matches(spec, headers, body)
