"""The shared end-of-job check of the reliability campaign.

Every scenario runs a job, injects its fault, then calls ``settle_and_check``. It waits for the
job to quiesce (request closed, webhook settled, both queues empty, so no redelivery is still on
its way), then measures from the outside — the stack's SQLite file, its output folder, its host
logs, the webhook receiver — and returns a ``JobCheck`` whose ``problems`` list says what broke.
Nothing here trusts the app's own status endpoint alone: the database file and the files on disk
are read directly.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote, urlsplit

from azure.core.exceptions import ResourceNotFoundError
from PIL import Image

from devtools.apphost import AppStack
from devtools.webhook_receiver import WebhookReceiver
from shared.notify import delivery_id_for
from shared.queues import queue_client

OUTPUT_NAME = re.compile(r"^(\d{5})\.([a-z0-9]+)$")


class WebhookExpectation(StrEnum):
    """How the webhook of a job should end."""

    DELIVERED = "delivered"  # accepted by the receiver, every accepted post with the one delivery id
    GAVE_UP = "gave_up"  # never accepted; exactly WEBHOOK_MAX_ATTEMPTS failed attempts recorded


@dataclass
class JobCheck:
    """What the checker measured for one request (the campaign table shows these)."""

    request_id: str
    images: int  # how many the job asked for
    lost: int = 0  # missing image rows, and Done images without their output file
    stuck: int = 0  # images still Pending once the job quiesced
    failed: int = 0  # images that ended Failed (none expected unless the scenario says: expected_failed)
    expected_failed: int = 0  # a source down for good: its images must end Failed, with their reason
    duplicates: int = 0  # extra output files, extra completions, extra delivery ids
    completions: int = 0  # "request ... completed" log lines (the conditional update that closed it)
    webhook_attempts: int = 0  # attempts recorded in the database
    webhook_posts: int = 0  # signed posts the receiver accepted (repeats of one delivery id allowed)
    retried: int = 0  # images started more than once (evidence that the fault hit work in flight)
    notes: list[str] = field(default_factory=list)  # observations that are not failures
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @classmethod
    def combine(cls, checks: list[JobCheck]) -> JobCheck:
        """One row for several jobs: counts summed, problems prefixed with their request (notes dropped)."""
        total = cls(request_id=f"{len(checks)} requests", images=sum(c.images for c in checks))
        for check in checks:
            for name in ("lost", "stuck", "failed", "duplicates", "completions", "webhook_attempts", "webhook_posts",
                         "retried"):  # fmt: skip
                setattr(total, name, getattr(total, name) + getattr(check, name))
            total.problems += [f"{check.request_id[:8]}: {problem}" for problem in check.problems]
        return total


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to the stack's SQLite file (WAL: it never blocks the app's writers)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def query(stack: AppStack, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    path = Path(stack.env["SQLITE_PATH"])
    if not path.exists():
        return []
    with closing(connect_readonly(path)) as connection:
        try:
            return list(connection.execute(sql, params).fetchall())
        except sqlite3.OperationalError as exc:  # before the schema exists
            if "no such table" in str(exc):
                return []
            raise


def image_counts(stack: AppStack, request_id: str) -> Counter[str]:
    """Images of the request by status, plus ``enqueued`` (rows with enqueued_at set)."""
    counts: Counter[str] = Counter()
    for status, enqueued in query(stack, "SELECT status, enqueued_at FROM images WHERE request_id = ?", (request_id,)):
        counts[str(status)] += 1
        counts["rows"] += 1
        if enqueued is not None:
            counts["enqueued"] += 1
    counts["terminal"] = counts["Done"] + counts["Failed"]
    return counts


def longest_pause_s(stack: AppStack, request_id: str) -> float:
    """The longest time between two consecutive image completions (how long a fault stalled the job)."""
    rows = query(stack, "SELECT finished_at FROM images WHERE request_id = ? AND finished_at IS NOT NULL"
                        " ORDER BY finished_at", (request_id,))  # fmt: skip
    moments = [datetime.fromisoformat(str(row[0])) for row in rows]
    return max(((later - earlier).total_seconds() for earlier, later in pairwise(moments)), default=0.0)


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


def wait_for_progress(stack: AppStack, request_id: str, terminal_at_least: int, timeout_s: float = 60) -> int:
    """Block until at least ``terminal_at_least`` images are terminal; returns the count seen."""
    seen = 0

    def reached() -> bool:
        nonlocal seen
        seen = image_counts(stack, request_id)["terminal"]
        return seen >= terminal_at_least

    if not wait_until(reached, timeout_s, interval_s=0.05):
        raise TimeoutError(f"only {seen} images of {request_id} terminal after {timeout_s}s")
    return seen


def queue_depth(stack: AppStack, queue_name: str) -> int:
    """Messages in the queue, visible or leased (Azurite counts both), 0 if it does not exist."""
    client = queue_client(stack.azurite.connection_string, queue_name)
    try:
        return int(client.get_queue_properties().approximate_message_count or 0)
    except ResourceNotFoundError:
        return 0
    finally:
        client.close()


def queues_drained(stack: AppStack) -> bool:
    return all(queue_depth(stack, stack.env[name]) == 0 for name in ("IMAGE_QUEUE_NAME", "NOTIFY_QUEUE_NAME"))


def settle_and_check(
    stack: AppStack,
    request_id: str,
    images: int,
    webhook: WebhookReceiver | None,
    *,
    expect_webhook: WebhookExpectation = WebhookExpectation.DELIVERED,
    expect_failed: int = 0,
    timeout_s: float = 120,
) -> JobCheck:
    """Wait for the job to quiesce, then measure it; never raises for what it finds."""
    check = JobCheck(request_id=request_id, images=images, expected_failed=expect_failed)
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    if not wait_until(lambda: _request_row(stack, request_id)[0] == "Completed", left(), 0.2):
        check.problems.append(f"request not Completed within {timeout_s:.0f}s")
    if webhook is not None:
        _wait_for_webhook(stack, request_id, webhook, expect_webhook, left())
    if not wait_until(lambda: queues_drained(stack), left(), 0.3):
        check.problems.append("queues not drained")
    _check_images(stack, request_id, check)
    _check_outputs(stack, request_id, check)
    _check_completion(stack, request_id, check)
    if webhook is not None:
        _check_webhook(stack, request_id, webhook, expect_webhook, check)
    _check_poison(stack, check)
    return check


def _request_row(stack: AppStack, request_id: str) -> tuple[object, ...]:
    rows = query(stack, "SELECT status, completed_at, images FROM requests WHERE request_id = ?", (request_id,))
    return rows[0] if rows else (None, None, None)


def _attempts(stack: AppStack, request_id: str) -> list[tuple[object, ...]]:
    return query(stack, "SELECT attempt, delivery_id, status_code, error, succeeded FROM webhook_deliveries"
                        " WHERE request_id = ? ORDER BY attempt", (request_id,))  # fmt: skip


def _wait_for_webhook(
    stack: AppStack, request_id: str, webhook: WebhookReceiver, expect: WebhookExpectation, timeout_s: float
) -> None:
    if expect is WebhookExpectation.DELIVERED:
        wait_until(lambda: bool(webhook.accepted), timeout_s, 0.2)
    else:
        wanted = int(stack.env.get("WEBHOOK_MAX_ATTEMPTS", "8"))
        wait_until(lambda: len(_attempts(stack, request_id)) >= wanted, timeout_s, 0.2)


def _check_images(stack: AppStack, request_id: str, check: JobCheck) -> None:
    counts = image_counts(stack, request_id)
    check.lost += max(0, check.images - counts["rows"])
    check.stuck = counts["Pending"]
    check.failed = counts["Failed"]
    retried = query(stack, "SELECT COUNT(*) FROM images WHERE request_id = ? AND attempts > 1", (request_id,))
    check.retried = int(str(retried[0][0])) if retried else 0
    if check.retried:
        check.notes.append(f"{check.retried} images started more than once")
    pause = longest_pause_s(stack, request_id)
    if pause >= 5:  # an observation for the table, not a verdict: machines are noisy
        check.notes.append(f"no image finished for {pause:.0f}s at one point")
    if counts["rows"] != check.images:
        check.problems.append(f"{counts['rows']} image rows for {check.images} images")
    if check.stuck:
        check.problems.append(f"{check.stuck} images still Pending")
    if check.failed != check.expected_failed:
        errors = query(stack, "SELECT seq, error FROM images WHERE request_id = ? AND status = 'Failed'"
                              " ORDER BY seq LIMIT 3", (request_id,))  # fmt: skip
        check.problems.append(f"{check.failed} images Failed (expected {check.expected_failed}), e.g. {errors}")


def _check_outputs(stack: AppStack, request_id: str, check: JobCheck) -> None:
    """Exactly one visible file per Done image, named <seq:05d>.<ext>, and it is the recorded output."""
    folder = Path(stack.env["OUTPUT_DIR"]) / request_id
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    by_seq: dict[int, list[Path]] = {}
    temporary = 0
    for path in files:
        if path.name.startswith("."):
            temporary += 1  # a write cut short by a kill leaves its temporary behind
            continue
        match = OUTPUT_NAME.match(path.name)
        if match is None:
            check.duplicates += 1
            check.problems.append(f"unexpected output file {path.name}")
            continue
        by_seq.setdefault(int(match.group(1)), []).append(path)
    if temporary:
        check.notes.append(f"{temporary} leftover temporary file(s)")
    done = {
        int(seq): str(url)
        for seq, url in query(
            stack, "SELECT seq, output_url FROM images WHERE request_id = ? AND status = 'Done'", (request_id,)
        )
    }
    for seq, url in done.items():
        paths = by_seq.get(seq, [])
        if not paths:
            check.lost += 1
            continue
        if len(paths) > 1:
            check.duplicates += len(paths) - 1
        recorded = Path(unquote(urlsplit(url).path))
        if recorded not in paths:
            check.lost += 1
            check.problems.append(f"image {seq}: recorded output {recorded.name} is not on disk")
        elif not _is_whole_image(recorded):
            check.lost += 1
            check.problems.append(f"image {seq}: output {recorded.name} is not a whole image")
    strays = sum(len(paths) for seq, paths in by_seq.items() if seq not in done)
    check.duplicates += strays
    if check.lost:
        check.problems.append(f"{check.lost} images lost (row or output file missing)")
    if check.duplicates:
        check.problems.append(f"{check.duplicates} duplicate or stray outputs/completions/deliveries")


def _is_whole_image(path: Path) -> bool:
    """The file decodes to the end (a truncated or torn write does not)."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True


def progress_mid_job(stack: AppStack, request_id: str, images: int) -> str:
    """``done/total`` at the moment of a fault; fails the scenario if the job had already finished.

    A fault injected after the last image proves nothing about the job it was meant to hit.
    """
    terminal = image_counts(stack, request_id)["terminal"]
    assert terminal < images, f"the fault landed after the job finished ({terminal}/{images})"
    return f"{terminal}/{images}"


def _check_completion(stack: AppStack, request_id: str, check: JobCheck) -> None:
    status, completed_at, _ = _request_row(stack, request_id)
    if status == "Completed" and completed_at is None:
        check.problems.append("request Completed without completed_at")
    check.completions = stack.logs().count(f"request {request_id} completed:")
    # The database's side of "closed once": one delivery chain, each attempt number recorded once,
    # and none before the request was closed.
    attempts = [int(str(row[0])) for row in _attempts(stack, request_id)]
    if len(attempts) != len(set(attempts)):
        check.problems.append(f"webhook attempt numbers recorded more than once: {attempts}")
        check.duplicates += len(attempts) - len(set(attempts))
    if attempts and completed_at is not None:
        first = query(stack, "SELECT MIN(attempted_at) FROM webhook_deliveries WHERE request_id = ?", (request_id,))
        if first and first[0][0] is not None and str(first[0][0]) < str(completed_at):
            check.problems.append("a webhook attempt was recorded before the request was closed")
    if status == "Completed" and check.completions != 1:
        check.problems.append(f"request closed {check.completions} times (log lines), expected once")
        check.duplicates += max(0, check.completions - 1)


def _check_webhook(
    stack: AppStack, request_id: str, webhook: WebhookReceiver, expect: WebhookExpectation, check: JobCheck
) -> None:
    expected_id = delivery_id_for(request_id)
    attempts = _attempts(stack, request_id)
    check.webhook_attempts = len(attempts)
    check.webhook_posts = len(webhook.deliveries)
    ids = set(webhook.deliveries) | {str(row[1]) for row in attempts}
    if ids - {expected_id}:
        check.duplicates += len(ids - {expected_id})
        check.problems.append(f"delivery ids other than the request's: {sorted(ids - {expected_id})}")
    if webhook.rejected:
        check.problems.append(f"{len(webhook.rejected)} webhook posts failed signature checks")
    if len(webhook.deliveries) > 1:
        check.notes.append(f"webhook posted {len(webhook.deliveries)} times (same delivery id)")
    succeeded = [row for row in attempts if row[4]]
    if expect is WebhookExpectation.DELIVERED:
        payload = webhook.accepted.get(expected_id)
        if payload is None:
            check.problems.append(f"webhook not delivered ({len(attempts)} attempts: {attempts[-1:]})")
            return
        if not succeeded:
            check.problems.append("webhook delivered but no successful attempt recorded")
        outputs = payload.get("output_images", [])
        if payload.get("status") != "Completed" or len(outputs) != check.images:
            check.problems.append(f"webhook payload {payload.get('status')} with {len(outputs)} images")
        elif sum(item.get("status") != "Done" for item in outputs) != check.expected_failed:
            check.problems.append("webhook payload lists images that are not Done")
    else:
        wanted = int(stack.env.get("WEBHOOK_MAX_ATTEMPTS", "8"))
        if webhook.accepted or succeeded:
            check.problems.append("webhook delivered although the receiver always failed")
        if [int(str(row[0])) for row in attempts] != list(range(1, wanted + 1)):
            check.problems.append(f"attempts recorded {[row[0] for row in attempts]}, expected 1..{wanted}")
        if stack.logs().count(f"webhook of request {request_id} given up") != 1:
            check.problems.append("giving up was not logged exactly once")


def _check_poison(stack: AppStack, check: JobCheck) -> None:
    """Every scenario's faults are survivable: a message that ended in poison is a lost image or notify."""
    for name in ("IMAGE_QUEUE_NAME", "NOTIFY_QUEUE_NAME"):
        with suppress(ResourceNotFoundError):
            depth = queue_depth(stack, f"{stack.env[name]}-poison")
            if depth:
                check.problems.append(f"{depth} message(s) in {name.split('_')[0].lower()} poison queue")
