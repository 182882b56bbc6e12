"""Plain records passed between the domain modules (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.options import CompressionOptions


class RequestStatus(StrEnum):
    """Where a request is in its life."""

    PENDING = "Pending"  # stored and fanned out; no image finished yet
    PROCESSING = "Processing"  # at least one image finished (done or failed)
    COMPLETED = "Completed"  # every image finished and the request was closed (exactly once)
    CANCELLING = "Cancelling"  # cancel asked: unstarted images skipped, started ones finishing
    CANCELLED = "Cancelled"  # cancelled, and every started image finished (closed exactly once)


class ImageStatus(StrEnum):
    """Where one image is in its life; DONE and FAILED are terminal."""

    PENDING = "Pending"  # stored, maybe queued, not finished
    DONE = "Done"  # compressed and stored; output_url is set
    FAILED = "Failed"  # gave up; error says why
    SKIPPED = "Skipped"  # the request was cancelled before this image started

    @property
    def terminal(self) -> bool:
        return self is not ImageStatus.PENDING


@dataclass(frozen=True)
class ProductRow:
    """One validated product row of an uploaded CSV."""

    line: int  # 1-based physical line in the CSV where the row starts
    serial: int
    name: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class ImageTask:
    """What a queue message for one image carries, so processing needs no database read."""

    request_id: str
    seq: int  # 0-based position of the image in the whole request, in input order
    url: str
    total: int  # number of images in the request (for the fan-in)
    retry: int = 0  # delayed retries made before this message (shared.retry_policy); absent = 0

    def to_message(self) -> dict[str, object]:
        message: dict[str, object] = {"request_id": self.request_id, "seq": self.seq, "url": self.url,
                                      "total": self.total}  # fmt: skip
        if self.retry:
            message["retry"] = self.retry
        return message


@dataclass(frozen=True)
class ImageState:
    """What processing one image message needs to know from the database."""

    status: ImageStatus
    leader_seq: int | None  # set when the slot's URL repeats an earlier slot's: the leader works for it
    options: CompressionOptions
    has_repeats: bool = False  # later slots repeat this one's URL: it works and counts for them
    # The request's fan-in count must be re-seeded; only good for an image already terminal when
    # read (see ``process._count_completion``).
    fanin_reseed: bool = False


@dataclass(frozen=True)
class Recorded:
    """What recording an image's outcome did, read in the transaction that recorded it."""

    changed: bool  # this call finished the image (False: it was terminal already)
    fanin_reseed: bool  # the request's fan-in count must be re-seeded, as read after the image was terminal


@dataclass(frozen=True)
class ImageOutcome:
    """The result of compressing one image, recorded in the database."""

    output_url: str
    bytes_in: int
    bytes_out: int
    width: int
    height: int
    format: str  # e.g. "JPEG", "WEBP", "PNG"
    quality: int
    download_ms: int
    process_ms: int
    store_ms: int


@dataclass(frozen=True)
class RequestRecord:
    request_id: str
    status: RequestStatus
    webhook_url: str | None
    products: int
    images: int
    done: int
    failed: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    fanout_completed_at: datetime | None
    skipped: int = 0  # images skipped by a cancel
    repeats: int = 0  # image slots whose URL repeats an earlier one (compressed once, with it)

    @property
    def finished_images(self) -> int:
        return self.done + self.failed + self.skipped


@dataclass(frozen=True)
class ImageRecord:
    """One image with its product, as the status endpoint and the webhook report it."""

    request_id: str
    seq: int
    serial: int
    product_name: str
    url_index: int  # 0-based position of the URL within its product's cell
    input_url: str
    status: ImageStatus
    output_url: str | None
    error: str | None
    bytes_in: int | None
    bytes_out: int | None
    width: int | None
    height: int | None
    attempts: int
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    retry_at: datetime | None = None  # Pending after a transient failure: when the delayed retry is due


@dataclass(frozen=True)
class DeliveryAttempt:
    """One attempt to deliver a request's webhook."""

    request_id: str
    delivery_id: str
    attempt: int
    attempted_at: datetime
    url: str
    status_code: int | None
    error: str | None
    succeeded: bool
