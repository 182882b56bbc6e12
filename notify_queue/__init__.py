"""Close a finished request exactly once and deliver its signed webhook."""

import azure.functions as func

from shared import functions_adapter as adapter
from shared import notify


def main(msg: func.QueueMessage) -> None:
    with adapter.queue_invocation("notify_queue", msg, webhook=True) as body:
        notify.notify_request(body, msg.dequeue_count or 1)
