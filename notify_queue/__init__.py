"""Close a finished request exactly once and deliver its signed webhook."""

import azure.functions as func

from shared import functions_adapter as adapter
from shared import notify


def main(msg: func.QueueMessage) -> None:
    notify.notify_request(adapter.queue_text(msg), msg.dequeue_count or 1)
