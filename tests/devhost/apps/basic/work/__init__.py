"""Does what the message says: {"tag": ..., "action": "ok" | "fail" | "sleep" | "exit_first", "seconds": s,
"fail_below": n}; records every invocation and sets the output binding before any failure."""

import json
import os
import time

import azure.functions as func
from azure.functions.queue import QueueMessage
from recorder import concurrency, record


def main(msg: func.QueueMessage, out: func.Out[str]) -> None:
    assert isinstance(msg, QueueMessage)
    raw = msg.get_body()
    try:
        task = json.loads(raw)
    except ValueError:
        task = {"action": "ok", "tag": raw.decode("utf-8", "replace")}
    tag = task.get("tag")
    record(
        "work",
        event="start",
        id=msg.id,
        tag=tag,
        body=raw.decode("utf-8", "replace"),
        dequeue_count=msg.dequeue_count,
        pop_receipt=msg.pop_receipt,
        insertion_time=msg.insertion_time,
        expiration_time=msg.expiration_time,
        time_next_visible=msg.time_next_visible,
    )
    with concurrency():
        out.set(f"done:{tag}")
        if task.get("action") == "exit_first" and msg.dequeue_count == 1:
            os._exit(1)  # the worker process dies mid-invocation
        if task.get("action") == "sleep":
            time.sleep(float(task.get("seconds", 1)))
        if task.get("action") == "fail" or msg.dequeue_count < int(task.get("fail_below", 0)):
            raise RuntimeError(f"failing {tag} on purpose")
    record("work", event="end", id=msg.id, tag=tag, dequeue_count=msg.dequeue_count)
