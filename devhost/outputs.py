"""Worker side: turn what a function set on its output bindings into what the real host would write.

HTTP: a ``func.HttpResponse`` (or a str, 200 text/plain) is the response. A declared http output left
``None`` is an error, so the invocation fails and the client gets a 500, as in the real host.

Queue: the Python library's ``QueueMessageOutConverter.encode`` (azure-functions ``queue.py``) turns
str -> string, bytes -> bytes, a ``QueueMessage`` -> the JSON text ``{"id": ..., "body": ...}``, and a
list of str / ``QueueMessage`` -> a JSON array (anything else in a list, bytes included, fails the
invocation). The host then writes strings as ``FunctionBinding.ReadAsEnumerable`` +
``BindAsyncCollectorAsync`` do (Azure/azure-functions-host ``src/WebJobs.Script/Binding/FunctionBinding.cs``):
a string that is JSON (``{...}`` or ``[...]``) is parsed; an array becomes one message per element, any
other JSON one message; a JSON string element is written as its text, an object or array as
Newtonsoft's ``JToken.ToString()`` (indented by two spaces), other values as their text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import azure.functions as func

from devhost.invocation import HttpResponseData, QueueOutput


class InvocationError(Exception):
    """A function produced something its bindings cannot carry."""


def to_http_response(value: Any) -> HttpResponseData:
    if value is None:
        raise InvocationError("the function set no HTTP response (its http output binding is None)")
    if isinstance(value, str):
        return HttpResponseData(200, [("Content-Type", "text/plain; charset=utf-8")], value.encode("utf-8"))
    if not isinstance(value, func.HttpResponse):
        raise InvocationError(f"an http output must be a func.HttpResponse or str, got {type(value).__name__}")
    headers: list[tuple[str, str]] = list(value.headers.items())
    if not any(name.lower() == "content-type" for name, _ in headers):
        mimetype = value.mimetype or "text/plain"
        content_type = f"{mimetype}; charset={value.charset}" if mimetype.startswith("text/") else mimetype
        headers.append(("Content-Type", content_type))
    return HttpResponseData(int(value.status_code), headers, value.get_body() or b"")


def to_queue_messages(value: Any, binding: str) -> QueueOutput:
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, str):
        return split_json_text(value)
    if isinstance(value, func.QueueMessage):
        return split_json_text(json.dumps(_message_json(value)))
    if isinstance(value, Iterable):
        items: list[object] = []
        for item in value:
            if isinstance(item, str):
                items.append(item)
            elif isinstance(item, func.QueueMessage):
                items.append(_message_json(item))
            else:
                raise InvocationError(
                    f"queue output '{binding}': invalid data type in output queue message list: {type(item).__name__}"
                )
        return split_json_text(json.dumps(items))
    raise InvocationError(
        f"queue output '{binding}' takes str, bytes, QueueMessage or a list, got {type(value).__name__}"
    )


def split_json_text(text: str) -> QueueOutput:
    """The messages the host writes for one string value."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")) and not (
        stripped.startswith("[") and stripped.endswith("]")
    ):
        return [text]
    try:
        token = json.loads(stripped)
    except ValueError:
        return [text]
    return [_token_text(item) for item in token] if isinstance(token, list) else [_token_text(token)]


def _token_text(token: object) -> str:
    if isinstance(token, str):
        return token
    if isinstance(token, dict | list):
        return json.dumps(token, indent=2, ensure_ascii=False)
    if token is None:
        return ""
    if isinstance(token, bool):
        return "True" if token else "False"  # .NET's bool.ToString()
    return str(token)


def _message_json(message: func.QueueMessage) -> dict[str, object]:
    return {"id": message.id, "body": message.get_body().decode("utf-8")}
