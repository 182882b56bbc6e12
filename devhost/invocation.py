"""Plain, picklable records that cross the pipe between the host and its worker processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class HttpRequestData:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    route_params: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class HttpResponseData:
    status_code: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class QueueMessageData:
    id: str
    body: bytes
    dequeue_count: int
    insertion_time: datetime | None
    expiration_time: datetime | None
    time_next_visible: datetime | None
    pop_receipt: str


@dataclass(frozen=True)
class TimerData:
    """What the worker turns into ``func.TimerRequest`` (the real host's TimerInfo JSON, decoded)."""

    past_due: bool
    schedule_status: dict[str, str]  # Last, Next, LastUpdated; empty when the schedule is not monitored
    schedule: dict[str, object]


@dataclass(frozen=True)
class InvocationRequest:
    invocation_id: str
    function_name: str
    trigger: HttpRequestData | QueueMessageData | TimerData


# One queue output value: what the function set, flattened to a list of messages.
QueueOutput = list[str | bytes]


@dataclass(frozen=True)
class InvocationResult:
    invocation_id: str
    succeeded: bool
    error: str = ""  # the formatted traceback when not succeeded
    http_response: HttpResponseData | None = None
    queue_outputs: dict[str, QueueOutput] = field(default_factory=dict)  # binding name -> messages


@dataclass(frozen=True)
class WorkerReady:
    """Sent once by a worker after loading: function name -> load error, empty when every function loaded.

    A function that failed to load stays registered: each of its invocations fails with this error."""

    errors: dict[str, str]


@dataclass(frozen=True)
class ShutdownRequest:
    """The host asks a worker to exit once its in-flight invocations are done."""
