import fcntl
import json
import os
import time
from pathlib import Path

import azure.functions as func


def _bump(delta: int) -> None:
    with open(Path(os.environ["RECORD_DIR"]) / "slow.json", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        state = json.loads(handle.read() or "{\"now\": 0, \"max\": 0}")
        state["now"] += delta
        state["max"] = max(state["max"], state["now"])
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(state))


def main(req: func.HttpRequest) -> func.HttpResponse:
    _bump(1)
    try:
        time.sleep(float(req.params.get("seconds", "0")))
    finally:
        _bump(-1)
    return func.HttpResponse("slept")
