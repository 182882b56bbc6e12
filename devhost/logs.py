"""Logging in the manner of Core Tools: one configuration, and the Executing/Executed lines."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime

logger = logging.getLogger("devhost.functions")


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UtcFormatter("[%(asctime)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK logs every request at INFO; its failures still show at WARNING.
    logging.getLogger("azure").setLevel(logging.WARNING)


class InvocationLog:
    """Writes the Executing line now and the Executed line when told how it ended."""

    def __init__(self, function_name: str, invocation_id: str, reason: str) -> None:
        self.function_name = function_name
        self.invocation_id = invocation_id
        self._started = time.monotonic()
        logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function_name, reason, invocation_id)

    def finished(self, succeeded: bool, error: str = "") -> None:
        duration_ms = round((time.monotonic() - self._started) * 1000)
        if not succeeded and error:
            logger.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n%s",
                self.function_name,
                self.invocation_id,
                duration_ms,
                error.rstrip(),
            )
            return
        logger.info(
            "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
            self.function_name,
            "Succeeded" if succeeded else "Failed",
            self.invocation_id,
            duration_ms,
        )


HTTP_REASON = "This function was programmatically called via the host APIs."


def queue_reason(queue_name: str) -> str:
    return f"New queue message detected on '{queue_name}'."
