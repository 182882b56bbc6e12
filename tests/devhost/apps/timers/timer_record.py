"""Each timer invocation appends one JSON line to RECORD_DIR/<function>.jsonl."""

import json
import os
from datetime import datetime
from pathlib import Path

import azure.functions as func


def record(name: str, timer: func.TimerRequest) -> None:
    line = json.dumps(
        {
            "at": datetime.now().isoformat(),
            "past_due": timer.past_due,
            "schedule_status": timer.schedule_status,
            "is_timer_request": isinstance(timer, func.TimerRequest),
        }
    )
    with open(Path(os.environ["RECORD_DIR"]) / f"{name}.jsonl", "a") as handle:
        handle.write(line + "\n")
