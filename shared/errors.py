"""The error hierarchy of imgpipe.

    ImgpipeError
     ├── ConfigError          a setting is missing or malformed (start-up, never a client's fault)
     ├── ValidationError      client input is invalid: carries every problem found (HTTP 400)
     │    ├── PayloadTooLarge  client input is over a size or count limit (HTTP 413)
     │    ├── UnsupportedMediaType  the upload is neither multipart form-data nor CSV (HTTP 415)
     │    └── IdempotencyKeyReused  an Idempotency-Key already names a different upload (HTTP 422)
     ├── NotFound             the thing asked for does not exist (HTTP 404)
     ├── Conflict             the request is in a state where this makes no sense (HTTP 409)
     ├── DuplicateRequest     an idempotency key already names a stored request (answered as a replay)
     ├── PermanentFailure     retrying cannot help (HTTP 404 image, bomb, SSRF refusal): record it
     │    ├── UrlRefused       an outbound URL or the address it resolves to is not allowed
     │    └── MalformedMessage a queue message that is not the JSON its handler expects: no retry
     └── TransientFailure     retrying may help (timeouts, 5xx, 429, connection errors): raise it
          └── DependencyMissing  a queue or container the app needs does not exist (HTTP 503 + reason)

The function layer maps these to HTTP status codes or to retry / give-up decisions
(``shared.functions_adapter``): ConfigError is a 500 with an operator-facing log line.
"""

from __future__ import annotations

from dataclasses import dataclass

# The longest error text stored or logged for one image or delivery attempt.
MAX_ERROR_CHARS = 1000


class ImgpipeError(Exception):
    """Base of every error imgpipe raises on purpose."""


class ConfigError(ImgpipeError):
    """Raised when a setting is missing or malformed."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a client's input: where it is and why it is wrong."""

    message: str
    line: int | None = None
    column: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "column": self.column, "message": self.message}


class ValidationError(ImgpipeError):
    """Raised when client input is invalid; ``problems`` lists every problem found (capped)."""

    status_code = 400

    def __init__(self, problems: list[Problem] | str, *, truncated: bool = False) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems = problems
        self.truncated = truncated
        super().__init__("; ".join(p.message for p in problems[:3]))


class PayloadTooLarge(ValidationError):
    """Raised when client input is over a size or count limit."""

    status_code = 413


class UnsupportedMediaType(ValidationError):
    """Raised when an upload's content type is neither multipart/form-data nor text/csv."""

    status_code = 415


class IdempotencyKeyReused(ValidationError):
    """Raised when an Idempotency-Key, within its caller's scope and lifetime, names a different upload."""

    status_code = 422


class NotFound(ImgpipeError):
    """Raised when a request (or other resource) asked for does not exist."""


class Conflict(ImgpipeError):
    """Raised when an action does not fit the request's state (e.g. cancelling a finished request)."""
class DuplicateRequest(ImgpipeError):
    """Raised by ``Store.create_request`` when the idempotency key already belongs to ``request_id``."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"the idempotency key is already used by request {request_id}")
        self.request_id = request_id


class PermanentFailure(ImgpipeError):
    """Raised when retrying cannot help; the caller records the reason and gives up."""


class UrlRefused(PermanentFailure):
    """Raised when an outbound URL, or an address it resolves or redirects to, is not allowed."""


class TransientFailure(ImgpipeError):
    """Raised when retrying may help; the queue's redelivery does the retry."""


class MalformedMessage(PermanentFailure):
    """Raised when a queue message is not the JSON object its handler expects; retrying cannot fix it."""


class DependencyMissing(TransientFailure):
    """Raised when a queue or Blob container the app needs does not exist: a deployment problem,
    answered 503 with the reason (never 202), and retried by queues in case it is created."""
