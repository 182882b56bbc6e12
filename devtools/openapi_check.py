"""Check real HTTP responses (and webhook deliveries) against openapi.yaml.

    spec = load_spec()
    body = assert_matches(spec, "GET", "/api/status/{request_id}", response)

``response`` may be a ``requests.Response``, an ``azure.functions.HttpResponse`` or anything with
``status_code``, ``headers`` and ``content`` / ``get_body()``. The check fails unless the status is
documented for the operation, the content type is one the spec lists for that status, required
headers are present, and a JSON body validates against its schema (``$ref``s resolved across the
whole document). It returns the parsed JSON body, the text of a non-JSON body, or None.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"
SPEC_URI = "urn:imgpipe:openapi"

Spec = Mapping[str, Any]


class SpecMismatch(AssertionError):
    """Raised when a response or payload does not match what openapi.yaml says."""


def load_spec(path: Path = SPEC_PATH) -> Spec:
    return _load(str(path))


@lru_cache(maxsize=4)
def _load(path: str) -> Spec:
    with open(path, encoding="utf-8") as handle:
        loaded: Spec = yaml.safe_load(handle)
    return loaded


def _pointer(*segments: str) -> str:
    escaped = (quote(s.replace("~", "~0").replace("/", "~1"), safe="~{}") for s in segments)
    return "/" + "/".join(escaped)


def _registry(spec: Spec) -> Registry[Any]:
    resource: Resource[Any] = DRAFT202012.create_resource(dict(spec))
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


def validate_at(spec: Spec, pointer: str, instance: object) -> None:
    """Validate ``instance`` against the schema at JSON ``pointer`` inside the spec."""
    validator = Draft202012Validator({"$ref": f"{SPEC_URI}#{pointer}"}, registry=_registry(spec),
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        raise SpecMismatch(_describe(pointer, errors))


def validate_component(spec: Spec, name: str, instance: object) -> None:
    """Validate ``instance`` against ``#/components/schemas/<name>``."""
    if name not in spec.get("components", {}).get("schemas", {}):
        raise SpecMismatch(f"no schema {name!r} in the spec")
    validate_at(spec, _pointer("components", "schemas", name), instance)


def _describe(where: str, errors: list[ValidationError]) -> str:
    lines = [f"body does not match {where}:"]
    for error in errors[:10]:
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        lines.append(f"  at {path}: {error.message}")
    return "\n".join(lines)


def _resolve(spec: Spec, node: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[str]]:
    """Follow a local ``$ref`` (to a response or parameter object); return it and its pointer path."""
    path: list[str] = []
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise SpecMismatch(f"only local $refs are supported, got {ref!r}")
        path = [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]
        target: Any = spec
        for part in path:
            target = target[part]
        node = target
    return node, path


def _response_object(spec: Spec, method: str, path_template: str,
                     status: int) -> tuple[Mapping[str, Any], list[str]]:
    operation = spec.get("paths", {}).get(path_template, {}).get(method.lower())
    if operation is None:
        raise SpecMismatch(f"{method.upper()} {path_template} is not in the spec")
    responses: Mapping[str, Any] = operation.get("responses", {})
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            node, ref_path = _resolve(spec, responses[key])
            return node, ref_path or ["paths", path_template, method.lower(), "responses", key]
    raise SpecMismatch(f"{method.upper()} {path_template} does not document status {status}: "
                       f"documented are {sorted(responses)}")


def _headers(response: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in dict(response.headers).items()}


def _body(response: Any) -> bytes:
    if hasattr(response, "get_body"):
        body: bytes = response.get_body()
        return body
    content: bytes = response.content
    return content


def assert_matches(spec: Spec, method: str, path_template: str, response: Any) -> object:
    """Fail unless ``response`` is what the spec documents; return its parsed body."""
    status = int(response.status_code)
    documented, pointer_path = _response_object(spec, method, path_template, status)
    headers = _headers(response)
    for name, header in documented.get("headers", {}).items():
        header, _ = _resolve(spec, header)
        if header.get("required") and name.lower() not in headers:
            raise SpecMismatch(f"status {status} must carry the {name} header")
    body = _body(response)
    content: Mapping[str, Any] = documented.get("content", {})
    if not content:
        return None  # e.g. a 401 from the host: the spec promises no body
    media_type = headers.get("content-type", getattr(response, "mimetype", "") or "").split(";")[0]
    media_type = media_type.strip().lower()
    if media_type not in content:
        raise SpecMismatch(f"status {status} answered {media_type or '(no content type)'}, "
                           f"the spec lists {sorted(content)}")
    if media_type != "application/json" and not media_type.endswith("+json"):
        return body.decode("utf-8")
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise SpecMismatch(f"status {status} claims JSON but the body is not: {exc}") from None
    if "schema" in content[media_type]:
        validate_at(spec, _pointer(*pointer_path, "content", media_type, "schema"), parsed)
    return parsed


def assert_webhook_matches(spec: Spec, headers: Mapping[str, str], body: bytes,
                           name: str = "requestCompleted") -> object:
    """Fail unless a received webhook delivery has the documented headers and body; return the body."""
    operation = spec.get("webhooks", {}).get(name, {}).get("post")
    if operation is None:
        raise SpecMismatch(f"no webhook {name!r} in the spec")
    lowered = {k.lower(): v for k, v in headers.items()}
    for index, declared in enumerate(operation.get("parameters", [])):
        parameter, pointer_path = _resolve(spec, declared)
        pointer_path = pointer_path or ["webhooks", name, "post", "parameters", str(index)]
        if parameter.get("in") != "header":
            continue
        value = lowered.get(parameter["name"].lower())
        if value is None:
            if parameter.get("required"):
                raise SpecMismatch(f"webhook lacks the {parameter['name']} header")
            continue
        validate_at(spec, _pointer(*pointer_path, "schema"), value)
    content_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise SpecMismatch(f"webhook content type is {content_type!r}, not application/json")
    parsed = json.loads(body)
    validate_at(spec, _pointer("webhooks", name, "post", "requestBody", "content", "application/json",
                               "schema"), parsed)
    return parsed
