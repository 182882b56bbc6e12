"""The shared pytest fixtures: real Azurite and Redis per session, the app stack, image and webhook servers.

Declared once in the root ``conftest.py`` (``pytest_plugins``), so every test folder gets them
without importing another folder's conftest. Locally a missing server skips the tests that need
it; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.apphost import TEST_WEBHOOK_SECRET, AppStack
from devtools.http_servers import serve_in_thread
from devtools.image_server import ImageServer
from devtools.servers import Azurite, RedisServer, ServiceUnavailable, in_ci
from devtools.webhook_receiver import WebhookReceiver, running_receiver

_SESSION_STARTED = time.monotonic()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the wall time of the whole run, set-up and tear-down of the servers included."""
    terminalreporter.write_line(f"imgpipe test suite wall time: {time.monotonic() - _SESSION_STARTED:.1f} s")


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


def _new_stack(azurite: Azurite, redis: RedisServer, workdir: Path, hosts: int, extra_args: list[str] | None,
               overrides: dict[str, str]) -> AppStack:
    stack = AppStack(azurite, redis, workdir, overrides)
    stack.bootstrap()
    for _ in range(hosts):
        stack.start_host(extra_args)
    return stack


@pytest.fixture()
def make_stack(azurite, redis_server, tmp_path) -> Iterator[Callable[..., AppStack]]:  # type: ignore[no-untyped-def]
    """A fresh stack (new hosts, queues, database) per call: for tests that kill hosts or need a clean start."""
    stacks: list[AppStack] = []

    def make(hosts: int = 1, extra_args: list[str] | None = None, **overrides: str) -> AppStack:
        stack = _new_stack(azurite, redis_server, tmp_path / f"stack{len(stacks)}", hosts, extra_args, overrides)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


class SharedStacks:
    """Stacks reused by the tests of one module, one per configuration, reset between tests.

    Starting a host with its worker processes costs seconds on a loaded machine; most tests only
    need one that looks new. ``get`` hands out the module's stack for a configuration after
    ``AppStack.reset()``; a stack that cannot be reset (a host was killed, work is still running
    after the last test) is stopped and replaced by a fresh one.
    """

    def __init__(self, azurite: Azurite, redis: RedisServer, factory: pytest.TempPathFactory) -> None:
        self.azurite, self.redis, self.factory = azurite, redis, factory
        self.stacks: dict[tuple[object, ...], AppStack] = {}

    def get(self, hosts: int = 1, extra_args: list[str] | None = None, **overrides: str) -> AppStack:
        key = (hosts, tuple(extra_args or ()), tuple(sorted(overrides.items())))
        stack = self.stacks.get(key)
        if stack is not None and len(stack.hosts) == hosts and stack.reset():
            return stack
        if stack is not None:
            stack.stop()
        stack = _new_stack(self.azurite, self.redis, self.factory.mktemp("shared-stack"), hosts, extra_args,
                           dict(overrides))
        self.stacks[key] = stack
        return stack

    def stop(self) -> None:
        for stack in self.stacks.values():
            stack.stop()


@pytest.fixture(scope="module")
def shared_stacks(azurite, redis_server, tmp_path_factory) -> Iterator[SharedStacks]:  # type: ignore[no-untyped-def]
    stacks = SharedStacks(azurite, redis_server, tmp_path_factory)
    yield stacks
    stacks.stop()


@pytest.fixture()
def make_shared_stack(shared_stacks: SharedStacks) -> Callable[..., AppStack]:
    """Like ``make_stack``, but the module's stack for these settings, reset, instead of a new one."""
    return shared_stacks.get


@pytest.fixture()
def stack(shared_stacks: SharedStacks) -> AppStack:
    """The default stack (one host), shared by the tests of a module and reset before each."""
    return shared_stacks.get()
