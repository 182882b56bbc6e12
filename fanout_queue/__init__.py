"""Fan out one range of a request's images: its image messages, and sub-ranges for the rest.

Both outputs are written by the host only when the invocation succeeds; a host that dies first
leaves the range message to be delivered again. A malformed message goes to the poison queue at
once: no retry can fix it.
"""

from typing import List  # noqa: UP035

import azure.functions as func

from shared import fanout
from shared import functions_adapter as adapter

# typing.List, not list: the worker's queue output converter (azure-functions,
# QueueMessageOutConverter.check_output_type_annotation) recognises only typing generics and
# refuses to load a function whose output is annotated func.Out[list[str]].
Messages = List[str]  # noqa: UP006


def main(
    msg: func.QueueMessage, ranges: func.Out[Messages], images: func.Out[Messages], poison: func.Out[bytes]
) -> None:
    try:
        result = fanout.fan_out_range(adapter.dependencies(), adapter.queue_text(msg), msg.dequeue_count or 1)
    except adapter.MalformedMessage as exc:
        adapter.malformed_message(msg, exc, poison)
        return
    if result.sub_ranges:
        ranges.set(result.sub_ranges)
    if result.image_messages:
        images.set(result.image_messages)
