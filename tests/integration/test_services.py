"""The test services themselves: real Azurite and Redis answer, and survive a restart."""

from __future__ import annotations

import pytest
from azure.storage.queue import QueueClient

pytestmark = pytest.mark.integration


def test_azurite_keeps_messages_across_restart(azurite) -> None:
    queue = QueueClient.from_connection_string(azurite.connection_string, "services-selftest")
    queue.create_queue()
    queue.send_message("kept")
    azurite.restart()
    messages = [m.content for m in queue.receive_messages()]
    assert messages == ["kept"]
    queue.delete_queue()


def test_redis_restart_loses_keys(redis_server, redis_client) -> None:
    redis_client.set("k", "v")
    assert redis_client.get("k") == b"v"
    redis_server.restart()
    redis_client.connection_pool.disconnect()
    assert redis_client.get("k") is None
