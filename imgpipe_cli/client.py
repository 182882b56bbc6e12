"""The HTTP side of the CLI: one ``requests.Session`` that knows the base URL and the function key.

The key travels only in the ``x-functions-key`` header; nothing here puts it in a URL, a message or
an exception, and ``ApiClient``'s ``repr`` leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

DEFAULT_BASE_URL = "http://127.0.0.1:7071/api"
KEY_HEADER = "x-functions-key"
TIMEOUT_S = 60.0
UPLOAD_TIMEOUT_S = 300.0


class ApiError(Exception):
    """The service answered with an error (or could not be reached); ``str`` is fit to print."""

    def __init__(self, message: str, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body

    @property
    def problems(self) -> list[dict[str, Any]]:
        if isinstance(self.body, dict) and isinstance(self.body.get("problems"), list):
            return [p for p in self.body["problems"] if isinstance(p, dict)]
        return []


def shown_url(url: str) -> str:
    """A URL as it is safe to print: no credentials, query (``?code=`` keys) or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class UploadOptions:
    quality: int | None = None
    size_target: float | None = None
    format: str | None = None
    max_dimension: int | None = None
    webhook_url: str | None = None

    def form_fields(self) -> dict[str, str]:
        fields = {
            "quality": self.quality,
            "size_target": self.size_target,
            "format": self.format,
            "max_dimension": self.max_dimension,
            "webhook_url": self.webhook_url,
        }
        return {name: str(value) for name, value in fields.items() if value is not None}


@dataclass
class ApiClient:
    base_url: str = DEFAULT_BASE_URL
    key: str | None = field(default=None, repr=False)
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session.headers["User-Agent"] = "imgpipe-cli"
        if self.key:
            self.session.headers[KEY_HEADER] = self.key

    def _send(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), timeout: float = TIMEOUT_S,
              **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}/{path}"
        try:
            response = self.session.request(method, url, timeout=timeout, **kwargs)
        except requests.RequestException as exc:
            # The exception text can repeat the URL; print only the redacted one and the kind of error.
            raise ApiError(f"cannot reach {shown_url(url)}: {type(exc).__name__}") from None
        if response.status_code not in ok:
            raise _error(response, method, shown_url(url))
        return response

    def upload(self, csv_path: Path, options: UploadOptions, idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        with csv_path.open("rb") as stream:
            response = self._send(
                "POST", "upload", ok=(202,), timeout=UPLOAD_TIMEOUT_S, headers=headers,
                files={"file": (csv_path.name, stream, "text/csv")}, data=options.form_fields(),
            )
        document: dict[str, Any] = response.json()
        return document

    def status(self, request_id: str, *, include_images: bool = False) -> dict[str, Any]:
        params = {"include": "images"} if include_images else {}
        document: dict[str, Any] = self._send("GET", f"status/{request_id}", params=params).json()
        return document

    def output_csv(self, request_id: str) -> bytes:
        return self._send("GET", f"status/{request_id}", params={"format": "csv"}).content

    def cancel(self, request_id: str) -> dict[str, Any]:
        document: dict[str, Any] = self._send("DELETE", f"requests/{request_id}", ok=(200, 202)).json()
        return document


def _error(response: requests.Response, method: str, url: str) -> ApiError:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    detail = body.get("error") if isinstance(body, dict) else None
    if response.status_code == 401:
        detail = "unauthorized: give a function key with --key or IMGPIPE_FUNCTION_KEY"
    message = f"{method} {url} answered {response.status_code}" + (f": {detail}" if detail else "")
    return ApiError(message, response.status_code, body)
