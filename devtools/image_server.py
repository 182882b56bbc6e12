"""A local image server: a distinct real photo at every /img/<n>.jpg, plus routes a caller adds."""

from __future__ import annotations

from devtools.http_servers import RecordedRequest, Reply, RunningServer
from devtools.samples import photo_jpeg


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
