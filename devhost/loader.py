"""Worker side: import a function, check its parameters, bind arguments and convert results.

Parameter checks follow azure-functions-python-worker: every binding except ``$return`` must be a
parameter of the same name, every parameter must be a binding (``context`` excepted).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from devhost.annotations import annotation_problems
from devhost.discovery import HTTP_TRIGGER, FunctionSpec
from devhost.invocation import (
    HttpRequestData,
    HttpResponseData,
    InvocationRequest,
    InvocationResult,
    QueueMessageData,
    QueueOutput,
    TimerData,
)
from devhost.outputs import InvocationError, to_http_response, to_queue_messages

CONTEXT_PARAMETER = "context"
T = TypeVar("T")


class Out(func.Out[T], Generic[T]):
    """The value holder the worker passes for an output binding parameter."""

    def __init__(self) -> None:
        self._value: T | None = None
        self.was_set = False

    def set(self, val: T) -> None:
        self._value = val
        self.was_set = True

    def get(self) -> T:
        return self._value  # type: ignore[return-value]


class Context(func.Context):
    def __init__(self, invocation_id: str, spec: FunctionSpec) -> None:
        self._invocation_id = invocation_id
        self._spec = spec
        self._local = threading.local

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._local

    @property
    def function_name(self) -> str:
        return self._spec.name

    @property
    def function_directory(self) -> str:
        return self._spec.directory

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


@dataclass(frozen=True)
class LoadedFunction:
    spec: FunctionSpec
    entry: Callable[..., Any]
    is_async: bool
    wants_context: bool


def load(spec: FunctionSpec) -> LoadedFunction:
    """Import the function's module and check ``main`` against function.json; raise with a clear text."""
    if spec.app_root not in sys.path:
        sys.path.insert(0, spec.app_root)
    prefix = f"cannot load the {spec.name} function"
    try:
        module = importlib.import_module(spec.module_name)
    except Exception as exc:
        raise LoadFailure(f"{prefix}: importing '{spec.module_name}' failed: {exc!r}") from exc
    entry = getattr(module, spec.entry_point, None)
    if not callable(entry):
        raise LoadFailure(f"{prefix}: entry point '{spec.entry_point}' not found in '{spec.module_name}'")
    parameters = inspect.signature(entry).parameters
    for parameter in parameters.values():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise LoadFailure(f"{prefix}: *args and **kwargs parameters are not supported")
    bound = {b.name for b in spec.parameter_bindings}
    declared = set(parameters)
    wants_context = CONTEXT_PARAMETER in declared and CONTEXT_PARAMETER not in bound
    only_python = declared - bound - ({CONTEXT_PARAMETER} if wants_context else set())
    only_json = bound - declared
    problems = []
    if only_python:
        problems.append(
            f"the following parameters are declared in Python but not in function.json: {sorted(only_python)}"
        )
    if only_json:
        problems.append(
            f"the following parameters are declared in function.json but not in Python: {sorted(only_json)}"
        )
    problems.extend(annotation_problems(spec, entry))
    if problems:
        raise LoadFailure(f"{prefix}: " + "; ".join(problems))
    return LoadedFunction(spec, entry, inspect.iscoroutinefunction(entry), wants_context)


class LoadFailure(Exception):
    """Raised by ``load``; its message names the function and the offending binding."""


def build_arguments(loaded: LoadedFunction, request: InvocationRequest) -> tuple[dict[str, Any], dict[str, Out[Any]]]:
    spec = loaded.spec
    arguments: dict[str, Any] = {spec.trigger.name: _trigger_value(request.trigger)}
    outs: dict[str, Out[Any]] = {b.name: Out() for b in spec.parameter_bindings if b is not spec.trigger}
    arguments.update(outs)
    if loaded.wants_context:
        arguments[CONTEXT_PARAMETER] = Context(request.invocation_id, spec)
    return arguments, outs


def collect_result(
    loaded: LoadedFunction, request: InvocationRequest, returned: Any, outs: dict[str, Out[Any]]
) -> InvocationResult:
    spec = loaded.spec
    http: HttpResponseData | None = None
    queues: dict[str, QueueOutput] = {}
    values: dict[str, Any] = {name: out.get() for name, out in outs.items() if out.was_set}
    return_binding = spec.return_binding
    if return_binding is not None:
        values[return_binding.name] = returned
    elif returned is not None:
        raise InvocationError(f"function '{spec.name}' returned a value but has no '$return' binding")
    for binding in spec.outputs:
        value = values.get(binding.name)
        if binding.type == "http":
            http = to_http_response(value)
        elif value is not None:
            queues[binding.name] = to_queue_messages(value, binding.name)
    if spec.trigger.type == HTTP_TRIGGER and http is None:
        http = HttpResponseData(204, [], b"")  # no http output binding declared at all
    return InvocationResult(request.invocation_id, True, http_response=http, queue_outputs=queues)


def failure(request: InvocationRequest, exc: BaseException) -> InvocationResult:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return InvocationResult(request.invocation_id, False, error=text)


def _trigger_value(trigger: HttpRequestData | QueueMessageData | TimerData) -> Any:
    if isinstance(trigger, TimerData):
        return TimerRequest(
            past_due=trigger.past_due, schedule_status=trigger.schedule_status, schedule=trigger.schedule
        )
    if isinstance(trigger, HttpRequestData):
        return func.HttpRequest(
            method=trigger.method,
            url=trigger.url,
            headers=trigger.headers,
            params=trigger.params,
            route_params=trigger.route_params,
            body=trigger.body,
        )
    return QueueMessage(  # type: ignore[no-untyped-call]
        id=trigger.id,
        body=trigger.body,
        dequeue_count=trigger.dequeue_count,
        insertion_time=trigger.insertion_time,
        expiration_time=trigger.expiration_time,
        time_next_visible=trigger.time_next_visible,
        pop_receipt=trigger.pop_receipt,
    )
