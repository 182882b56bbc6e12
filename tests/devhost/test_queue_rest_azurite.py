"""devhost's hand-written queue client against real Azurite, checked against the SDK on the same queues."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from devhost.queue_rest import (
    QueueHttpError,
    QueueResourceNotFound,
    QueueService,
    RestQueue,
)
from devhost.storage_auth import QueueAccount

pytestmark = pytest.mark.integration

AWKWARD = "a&b<c>d]]>\"'\t é ü 日本 😀 &amp; <!-- x --> <![CDATA[y]]>"


@pytest.fixture()
def service(azurite: object) -> QueueService:
    service = QueueService.from_connection_string(azurite.connection_string)  # type: ignore[attr-defined]
    yield service  # type: ignore[misc]
    service.close()


@pytest.fixture()
def queue(service: QueueService) -> RestQueue:
    queue = service.queue(f"rest-{uuid.uuid4().hex[:12]}")
    queue.create_queue()
    return queue


def sdk(azurite: object, queue: RestQueue) -> QueueClient:
    return QueueClient.from_connection_string(azurite.connection_string, queue.queue_name)  # type: ignore[attr-defined]


def test_creating_an_existing_queue_is_no_error(queue: RestQueue, azurite: object) -> None:
    queue.create_queue()
    with contextlib.suppress(ResourceExistsError):  # what the SDK says about it, for comparison
        sdk(azurite, queue).create_queue()
    assert sdk(azurite, queue).get_queue_properties().name == queue.queue_name


def test_a_sent_message_reaches_the_sdk_as_sent(queue: RestQueue, azurite: object) -> None:
    queue.send_message(AWKWARD)
    (message,) = sdk(azurite, queue).peek_messages(max_messages=5)
    assert message.content == AWKWARD


def test_a_received_message_has_what_the_sdk_would_give(queue: RestQueue, azurite: object) -> None:
    sent = sdk(azurite, queue).send_message(AWKWARD)
    before = datetime.now(UTC).replace(microsecond=0)
    (message,) = queue.receive_messages(32, 30)
    assert (message.id, message.content, message.dequeue_count) == (sent.id, AWKWARD, 1)
    assert (message.inserted_on, message.expires_on) == (sent.inserted_on, sent.expires_on)
    assert message.inserted_on is not None and message.inserted_on.tzinfo is UTC
    assert message.next_visible_on is not None
    assert before + timedelta(seconds=28) <= message.next_visible_on <= before + timedelta(seconds=32)
    assert message.pop_receipt
    assert queue.receive_messages(32, 30) == []  # leased: invisible to the next receive


def test_a_batch_comes_back_whole(queue: RestQueue) -> None:
    for index in range(5):
        queue.send_message(f"m{index}")
    assert sorted(m.content for m in queue.receive_messages(32, 30)) == [f"m{i}" for i in range(5)]


def test_releasing_makes_a_message_visible_again_with_a_higher_dequeue_count(queue: RestQueue) -> None:
    queue.send_message("again")
    (first,) = queue.receive_messages(1, 30)
    new_receipt = queue.update_visibility(first.id, first.pop_receipt, 0)
    assert new_receipt and new_receipt != first.pop_receipt
    (second,) = queue.receive_messages(1, 30)
    assert (second.id, second.dequeue_count, second.content) == (first.id, 2, "again")


def test_a_renewed_lease_keeps_the_message_and_only_the_new_pop_receipt_deletes(
    queue: RestQueue, azurite: object
) -> None:
    queue.send_message("renewed")
    (message,) = queue.receive_messages(1, 30)
    renewed = queue.update_visibility(message.id, message.pop_receipt, 60)
    assert queue.receive_messages(1, 30) == []
    with pytest.raises(QueueHttpError) as stale:
        queue.delete_message(message.id, message.pop_receipt)
    # Azure answers 400 PopReceiptMismatch (Delete Message reference, "Remarks"); Azurite 404 MessageNotFound.
    assert (stale.value.status, stale.value.error_code) in {(400, "PopReceiptMismatch"), (404, "MessageNotFound")}
    queue.delete_message(message.id, renewed)
    assert sdk(azurite, queue).get_queue_properties().approximate_message_count == 0


def test_a_bad_pop_receipt_is_an_http_error_and_the_message_stays(queue: RestQueue, azurite: object) -> None:
    queue.send_message("kept")
    (message,) = queue.receive_messages(1, 1)
    with pytest.raises(QueueHttpError) as raised:
        queue.delete_message(message.id, "AgAAAAMAAAAAAAAA+g/3Q==")
    assert raised.value.status in (400, 404)
    assert sdk(azurite, queue).get_queue_properties().approximate_message_count == 1


def test_a_missing_queue_is_resource_not_found_for_every_operation(service: QueueService) -> None:
    missing = service.queue(f"missing-{uuid.uuid4().hex[:12]}")
    with pytest.raises(QueueResourceNotFound) as on_receive:
        missing.receive_messages(32, 30)
    assert (on_receive.value.status, on_receive.value.error_code) == (404, "QueueNotFound")
    with pytest.raises(QueueResourceNotFound):
        missing.send_message("x")
    with pytest.raises(QueueResourceNotFound):
        missing.delete_message("00000000-0000-0000-0000-000000000000", "r")
    with pytest.raises(QueueResourceNotFound):
        missing.update_visibility("00000000-0000-0000-0000-000000000000", "r", 0)


def test_an_empty_queue_receives_nothing(queue: RestQueue) -> None:
    assert queue.receive_messages(32, 30) == []


def test_azurite_rejects_a_wrong_key_so_the_passing_tests_prove_the_signature(
    azurite: object, queue: RestQueue
) -> None:
    right = QueueAccount.from_connection_string(azurite.connection_string)  # type: ignore[attr-defined]
    wrong = QueueService(QueueAccount(right.endpoint, right.account_name, b"not the key"))
    with pytest.raises(QueueHttpError) as raised:
        wrong.queue(queue.queue_name).send_message("x")
    wrong.close()
    assert raised.value.status == 403


def test_the_largest_message_azure_accepts_goes_through(queue: RestQueue) -> None:
    text = "é" * 32768  # 64 KiB of UTF-8: the service's limit for a message's text
    queue.send_message(text)
    (message,) = queue.receive_messages(1, 30)
    assert message.content == text
