import azure.functions as func
from timer_record import record


def main(timer: func.TimerRequest) -> None:
    record("even_seconds", timer)
