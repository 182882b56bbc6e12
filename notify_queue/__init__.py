"""Close a finished request exactly once and deliver its signed webhook.

A malformed message goes to the poison queue at once: no retry can fix it.
"""

import azure.functions as func

from shared import functions_adapter as adapter
from shared import notify


def main(msg: func.QueueMessage, poison: func.Out[bytes], context: func.Context | None = None) -> None:
    try:
        with adapter.queue_invocation("notify_queue", msg, context, webhook=True) as body:
            notify.notify_request(adapter.dependencies(), body, msg.dequeue_count or 1)
    except adapter.MalformedMessage as exc:
        adapter.malformed_message(msg, exc, poison)
