import azure.functions as func
from timer_record import record


def main(timer: func.TimerRequest, out: func.Out[str]) -> None:
    record("sweep", timer)
    out.set("swept")
