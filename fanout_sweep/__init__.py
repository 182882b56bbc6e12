"""Restart fan-outs that made no progress for FANOUT_STALE_AFTER_SECONDS (timer-triggered).

Catches what the fan-out queue's own retries cannot: an upload whose host died after the commit
but before its fan-out message was written, or a range that ended in the poison queue.
"""

import azure.functions as func

from shared import fanout


def main(timer: func.TimerRequest, ranges: func.Out[list[str]]) -> None:
    restarts = fanout.sweep_stalled()
    if restarts:
        ranges.set(restarts)
