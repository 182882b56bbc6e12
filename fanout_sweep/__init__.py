"""Restart fan-outs that made no progress for FANOUT_STALE_AFTER_SECONDS (timer-triggered).

Catches what the fan-out queue's own retries cannot: an upload whose host died after the commit
but before its fan-out message was written, or a range that ended in the poison queue.
"""

from typing import List  # noqa: UP035

import azure.functions as func

from shared import fanout
from shared import functions_adapter as adapter

# typing.List, not list: the worker's queue output converter (azure-functions,
# QueueMessageOutConverter.check_output_type_annotation) recognises only typing generics and
# refuses to load a function whose output is annotated func.Out[list[str]].
Messages = List[str]  # noqa: UP006


def main(timer: func.TimerRequest, ranges: func.Out[Messages]) -> None:
    restarts = fanout.sweep_stalled(adapter.dependencies())
    if restarts:
        ranges.set(restarts)
