"""Building the campaign's jobs: image URLs on the test image server, the CSV, the upload."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from devtools.apphost import AppStack
from devtools.http_servers import Reply
from devtools.image_server import ImageServer
from devtools.samples import csv_for, photo_jpeg

JOB_IMAGES = 50
URLS_PER_PRODUCT = 5


@lru_cache(maxsize=256)
def _photo(index: int) -> bytes:
    return photo_jpeg(index)


def image_urls(images: ImageServer, count: int = JOB_IMAGES, *, delay_s: float = 0.0, tag: str = "") -> list[str]:
    """``count`` distinct photos; with ``delay_s`` each answer waits that long (so faults land mid-job)."""
    if not delay_s:
        return [images.url(f"/img/{index}.jpg") for index in range(count)]
    urls = []
    for index in range(count):
        path = f"/slow{tag}/{index}.jpg"
        images.route(path, Reply(body=_photo(index), delay_s=delay_s, headers={"Content-Type": "image/jpeg"}))
        urls.append(images.url(path))
    return urls


def job_csv(urls: list[str]) -> str:
    return csv_for([urls[start : start + URLS_PER_PRODUCT] for start in range(0, len(urls), URLS_PER_PRODUCT)])


def upload_job(stack: AppStack, urls: list[str], webhook_url: str | None, **kwargs: Any) -> str:
    response = stack.upload(job_csv(urls), webhook_url=webhook_url, **kwargs)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["images"] == len(urls)
    return str(body["request_id"])


class Background(threading.Thread):
    """Runs one call in a thread and keeps its result or exception for the test to look at."""

    def __init__(self, target: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self._call = (target, args, kwargs)
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        target, args, kwargs = self._call
        try:
            self.result = target(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which decides
            self.error = exc
