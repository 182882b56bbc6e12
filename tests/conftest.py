"""Session-wide real services for the tests: Azurite and Redis as processes on free ports.

Locally a missing server skips the tests that need it; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.services import Azurite, RedisServer, ServiceUnavailable, in_ci  # noqa: E402


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(reason)


def _running(server: Azurite | RedisServer) -> Iterator[Azurite | RedisServer]:
    try:
        server.start()
    except ServiceUnavailable as exc:
        _unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    yield from _running(Azurite(location=tmp_path_factory.mktemp("azurite")))  # type: ignore[misc]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from _running(RedisServer(directory=tmp_path_factory.mktemp("redis")))  # type: ignore[misc]


@pytest.fixture()
def redis_client(redis_server: RedisServer) -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()
