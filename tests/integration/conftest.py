"""Fixtures for tests of the whole app: the local host on real Azurite, Redis and SQLite."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.support.apphost import TEST_WEBHOOK_SECRET, AppStack
from tests.support.http_servers import RecordedRequest, Reply, RunningServer, serve_in_thread
from tests.support.webhook_receiver import WebhookReceiver, running_receiver

SOURCES = Path(__file__).resolve().parents[2] / "samples" / "sources"


def photo_jpeg(index: int, size: tuple[int, int] = (480, 360), quality: int = 90) -> bytes:
    """A real photo crop (so JPEG sizes are realistic), different for every index."""
    sources = sorted(p for p in SOURCES.iterdir() if p.suffix in {".png", ".jpg"})
    with Image.open(sources[index % len(sources)]) as source:
        rgb = source.convert("RGB")
    x = (index * 37) % max(1, rgb.width - size[0])
    y = (index * 53) % max(1, rgb.height - size[1])
    crop = rgb.crop((x, y, x + size[0], y + size[1]))
    out = io.BytesIO()
    crop.save(out, "JPEG", quality=quality)
    return out.getvalue()


class ImageServer:
    """Serves /img/<n>.jpg (a distinct real photo per n) plus routes a test adds."""

    def __init__(self) -> None:
        self._photos: dict[int, bytes] = {}
        self._extra: dict[str, Reply] = {}
        self.server: RunningServer | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return self.server.url(path)

    def route(self, path: str, reply: Reply) -> None:
        self._extra[path] = reply

    @property
    def requests(self) -> list[RecordedRequest]:
        assert self.server is not None
        return self.server.requests

    def handle(self, request: RecordedRequest) -> Reply:
        path = request.path.split("?", 1)[0]
        if path in self._extra:
            return self._extra[path]
        name = path.rsplit("/", 1)[-1]
        if not (path.startswith("/img/") and name.endswith(".jpg") and name[:-4].isdigit()):
            return Reply(status=404)
        index = int(name[:-4])
        if index not in self._photos:
            self._photos[index] = photo_jpeg(index)
        return Reply(body=self._photos[index], headers={"Content-Type": "image/jpeg"})


@pytest.fixture()
def image_server() -> Iterator[ImageServer]:
    images = ImageServer()
    with serve_in_thread(images.handle) as server:
        images.server = server
        yield images


@pytest.fixture()
def webhook() -> Iterator[WebhookReceiver]:
    with running_receiver(TEST_WEBHOOK_SECRET) as receiver:
        yield receiver


@pytest.fixture()
def make_stack(azurite, redis_server, tmp_path) -> Iterator[Callable[..., AppStack]]:  # type: ignore[no-untyped-def]
    stacks: list[AppStack] = []

    def make(hosts: int = 1, extra_args: list[str] | None = None, **overrides: str) -> AppStack:
        stack = AppStack(azurite, redis_server, tmp_path / f"stack{len(stacks)}", overrides)
        stack.bootstrap()
        for _ in range(hosts):
            stack.start_host(extra_args)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture()
def stack(make_stack) -> AppStack:  # type: ignore[no-untyped-def]
    return make_stack()


def csv_for(urls_per_product: list[list[str]]) -> str:
    lines = ["S. No.,Product Name,Input Image Urls"]
    for index, urls in enumerate(urls_per_product, start=1):
        lines.append(f'{index}.,SKU{index},"{",".join(urls)}"')
    return "\r\n".join(lines) + "\r\n"
