"""Compress one image; the invocation that finishes a request's last image triggers the notify.

A transient failure raises, so the queue retries it; the notify output is written only when the
invocation succeeds. A malformed message goes to the poison queue at once: no retry can fix it.
"""

import json

import azure.functions as func

from shared import functions_adapter as adapter
from shared import process


def main(msg: func.QueueMessage, notify: func.Out[str], poison: func.Out[bytes],
         context: func.Context | None = None) -> None:
    try:
        with adapter.queue_invocation("process_queue", msg, context) as body:
            result = process.process_image(adapter.dependencies(), body, msg.dequeue_count or 1)
    except adapter.MalformedMessage as exc:
        adapter.malformed_message(msg, exc, poison)
        return
    if result.notify is not None:
        notify.set(json.dumps(result.notify))
