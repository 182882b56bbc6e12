"""Close a finished request exactly once and deliver its signed webhook."""

import azure.functions as func

from shared import functions_adapter as adapter
from shared import notify


def main(msg: func.QueueMessage, context: func.Context | None = None) -> None:
    with adapter.queue_invocation("notify_queue", msg, context, webhook=True) as body:
        notify.notify_request(body, msg.dequeue_count or 1)
