"""devhost's hand-written queue client without Azurite: Shared Key signing, connection strings, replies,
retries and kept-alive connections (against small local HTTP servers)."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from azure.storage.queue._shared.authentication import SharedKeyCredentialPolicy

from devhost import queue_rest
from devhost.keepalive import KeepAlivePool
from devhost.queue_rest import (
    QueueConnectionError,
    QueueHttpError,
    QueueResourceExists,
    QueueResourceNotFound,
    QueueService,
    parse_messages,
)
from devhost.settings import DEV_ACCOUNT_KEY
from devhost.storage_auth import ConnectionStringError, QueueAccount, SharedKeySigner
from devtools.http_servers import Reply, serve_in_thread

KEY = base64.b64decode(DEV_ACCOUNT_KEY)
POP_RECEIPT = "AgAAAAMAAAAAAAAA+g/3Q==a"  # '+', '/' and '=' must be encoded in the URL, decoded when signed


def sdk_authorization(method: str, url: str, headers: dict[str, str], account: str, key: str) -> str:
    """The Authorization header the SDK's own signer puts on the same request."""
    request = PipelineRequest(HttpRequest(method, url, headers=dict(headers)), PipelineContext(None))
    SharedKeyCredentialPolicy(account, key).on_request(request)
    return str(request.http_request.headers["Authorization"])


def test_the_string_to_sign_matches_microsofts_example() -> None:
    """The example in "Authorize with Shared Key" (learn.microsoft.com/rest/api/storageservices/
    authorize-with-shared-key, "Blob, Queue, and File services"): a GET with x-ms-date and x-ms-version
    only, and three query parameters."""
    signer = SharedKeySigner("myaccount", KEY)
    text = signer.string_to_sign(
        "GET",
        "/mycontainer",
        [("restype", "container"), ("comp", "metadata"), ("timeout", "20")],
        {"x-ms-version": "2015-02-21", "x-ms-date": "Fri, 26 Jun 2015 23:39:12 GMT"},
    )
    assert text == (
        "GET\n\n\n\n\n\n\n\n\n\n\n\n"
        "x-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n"
        "/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
    )


@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    [
        ("PUT", "/devstoreaccount1/work", [], b""),
        ("POST", "/devstoreaccount1/work/messages", [], b"<QueueMessage><MessageText>x</MessageText></QueueMessage>"),
        ("GET", "/devstoreaccount1/work/messages", [("numofmessages", "32"), ("visibilitytimeout", "600")], b""),
        (
            "PUT",
            "/devstoreaccount1/work/messages/id-1",
            [("popreceipt", POP_RECEIPT), ("visibilitytimeout", "0")],
            b"",
        ),
        ("DELETE", "/devstoreaccount1/work/messages/id-1", [("popreceipt", POP_RECEIPT)], b""),
        ("GET", "/work/messages", [("numofmessages", "1")], b""),  # an account-host URL (Azure), no account in the path
    ],
)
def test_every_request_the_host_makes_is_signed_as_the_sdk_signs_it(
    method: str, path: str, query: list[tuple[str, str]], body: bytes
) -> None:
    service = QueueService(QueueAccount("http://127.0.0.1:10001", "devstoreaccount1", KEY))
    headers = service._headers(method, path, query, body)
    url = (
        "http://127.0.0.1:10001"
        + path
        + "".join(("?" if i == 0 else "&") + f"{k}={queue_rest.quote(v, safe='')}" for i, (k, v) in enumerate(query))
    )
    unsigned = {k: v for k, v in headers.items() if k != "Authorization"}
    assert headers["Authorization"] == sdk_authorization(method, url, unsigned, "devstoreaccount1", DEV_ACCOUNT_KEY)


def test_a_different_key_or_query_gives_a_different_signature() -> None:
    headers = {"x-ms-date": "Mon, 30 Nov 2026 09:52:24 GMT", "x-ms-version": "2026-10-06"}
    signer = SharedKeySigner("devstoreaccount1", KEY)
    base = signer.authorization("DELETE", "/a/q/messages/1", [("popreceipt", "r1")], headers)
    assert signer.authorization("DELETE", "/a/q/messages/1", [("popreceipt", "r2")], headers) != base
    other = SharedKeySigner("devstoreaccount1", b"another key")
    assert other.authorization("DELETE", "/a/q/messages/1", [("popreceipt", "r1")], headers) != base


@pytest.mark.parametrize(
    ("connection_string", "endpoint", "account", "signed"),
    [
        ("UseDevelopmentStorage=true", "http://127.0.0.1:10001/devstoreaccount1", "devstoreaccount1", True),
        ("usedevelopmentstorage=true;", "http://127.0.0.1:10001/devstoreaccount1", "devstoreaccount1", True),
        (
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_ACCOUNT_KEY};"
            "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;QueueEndpoint=http://127.0.0.1:2/devstoreaccount1/;",
            "http://127.0.0.1:2/devstoreaccount1",
            "devstoreaccount1",
            True,
        ),
        (
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={DEV_ACCOUNT_KEY};"
            "EndpointSuffix=core.chinacloudapi.cn",
            "https://acct.queue.core.chinacloudapi.cn",
            "acct",
            True,
        ),
        (f"AccountName=acct;AccountKey={DEV_ACCOUNT_KEY}", "https://acct.queue.core.windows.net", "acct", True),
        (
            "QueueEndpoint=https://acct.queue.core.windows.net;SharedAccessSignature=sv=2024&sig=abc%2B",
            "https://acct.queue.core.windows.net",
            "",
            False,
        ),
    ],
)
def test_connection_strings_are_read_as_the_sdk_reads_them(
    connection_string: str, endpoint: str, account: str, signed: bool
) -> None:
    parsed = QueueAccount.from_connection_string(connection_string)
    assert (parsed.endpoint, parsed.account_name, bool(parsed.account_key)) == (endpoint, account, signed)


def test_a_sas_connection_string_sends_its_token_and_no_signature() -> None:
    parsed = QueueAccount.from_connection_string(
        "QueueEndpoint=https://acct.queue.core.windows.net;SharedAccessSignature=sv=2024&sig=abc%2B"
    )
    assert parsed.sas_query == (("sv", "2024"), ("sig", "abc+"))
    assert "Authorization" not in QueueService(parsed)._headers("GET", "/q/messages", [], b"")


@pytest.mark.parametrize(
    "bad", ["", "AccountName", "AccountKey=abc;QueueEndpoint=ftp://x", "AccountKey=@@@;AccountName=a"]
)
def test_an_unusable_connection_string_is_a_clear_error_without_the_value(bad: str) -> None:
    with pytest.raises(ConnectionStringError) as raised:
        QueueAccount.from_connection_string(bad)
    assert "@@@" not in str(raised.value) and "ftp://x" not in str(raised.value)


def test_the_account_key_is_not_in_the_repr() -> None:
    parsed = QueueAccount.from_connection_string("UseDevelopmentStorage=true")
    assert DEV_ACCOUNT_KEY[:12] not in repr(parsed) and "Eby8" not in repr(parsed)


def test_a_reply_is_parsed_to_the_values_and_types_the_sdk_gives() -> None:
    xml = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><QueueMessagesList><QueueMessage>'
        b"<MessageId>4b32</MessageId><InsertionTime>Mon, 30 Nov 2026 09:52:24 GMT</InsertionTime>"
        b"<ExpirationTime>Mon, 07 Dec 2026 09:52:24 GMT</ExpirationTime><PopReceipt>MzBO+/=</PopReceipt>"
        b"<TimeNextVisible>Mon, 30 Nov 2026 09:52:54 GMT</TimeNextVisible><DequeueCount>3</DequeueCount>"
        b"<MessageText>a&amp;b&lt;c&gt;\"'\xc3\xa9</MessageText></QueueMessage>"
        b"<QueueMessage><MessageId>e</MessageId><PopReceipt>r</PopReceipt><DequeueCount>1</DequeueCount>"
        b"<MessageText></MessageText></QueueMessage></QueueMessagesList>"
    )
    first, empty = parse_messages(xml)
    assert first.id == "4b32" and first.pop_receipt == "MzBO+/=" and first.dequeue_count == 3
    assert first.content == "a&b<c>\"'é"
    assert first.inserted_on == datetime(2026, 11, 30, 9, 52, 24, tzinfo=UTC)
    assert first.inserted_on.tzinfo is UTC  # the SDK's deserialize_rfc gives timezone.utc for GMT
    assert first.expires_on == datetime(2026, 12, 7, 9, 52, 24, tzinfo=UTC)
    assert first.next_visible_on == datetime(2026, 11, 30, 9, 52, 54, tzinfo=UTC)
    assert (empty.content, empty.inserted_on) == ("", None)


def test_the_message_text_is_xml_escaped_as_the_sdk_escapes_it() -> None:
    with serve_in_thread({"/acct/q/messages": Reply(status=201)}) as server:
        service = QueueService(QueueAccount(server.base_url + "/acct", "acct", KEY))
        service.queue("q").send_message("a&b<c>]]>\"'é\u20ac")
        (request,) = server.requests
    assert (
        request.body
        == (
            "<?xml version='1.0' encoding='utf-8'?>\n<QueueMessage><MessageText>"
            "a&amp;b&lt;c&gt;]]&gt;\"'é\u20ac</MessageText></QueueMessage>"
        ).encode()
    )
    assert request.headers["content-type"] == "application/xml"
    assert request.headers["authorization"].startswith("SharedKey acct:")


@pytest.fixture()
def no_retry_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_rest, "RETRY_DELAYS_SECONDS", (0.0, 0.0))


def test_a_server_error_is_retried_twice_then_raised(no_retry_waits: None) -> None:
    with serve_in_thread(lambda _: Reply(status=503, headers={"x-ms-error-code": "ServerBusy"})) as server:
        service = QueueService(QueueAccount(server.base_url + "/acct", "acct", KEY))
        with pytest.raises(QueueHttpError) as raised:
            service.queue("q").delete_message("id", "receipt")
        assert len(server.requests) == 3
    assert (raised.value.status, raised.value.error_code) == (503, "ServerBusy")


def test_a_retry_that_succeeds_is_not_an_error(no_retry_waits: None) -> None:
    answers = iter([Reply(status=500), Reply(status=204)])
    with serve_in_thread(lambda _: next(answers)) as server:
        service = QueueService(QueueAccount(server.base_url + "/acct", "acct", KEY))
        service.queue("q").delete_message("id", "receipt")
        assert [r.method for r in server.requests] == ["DELETE", "DELETE"]


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (404, "QueueNotFound", QueueResourceNotFound),
        (409, "QueueAlreadyExists", QueueResourceExists),
        (400, "PopReceiptMismatch", QueueHttpError),
    ],
)
def test_client_errors_are_not_retried_and_map_to_their_type(
    no_retry_waits: None, status: int, code: str, kind: type[QueueHttpError]
) -> None:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>Said.\nRequestId:1</Message></Error>"
    with serve_in_thread(lambda _: Reply(status=status, body=body.encode())) as server:
        service = QueueService(QueueAccount(server.base_url + "/acct", "acct", KEY))
        with pytest.raises(QueueHttpError) as raised:
            service.queue("q").create_queue()
        assert len(server.requests) == 1
    assert type(raised.value) is kind
    assert (raised.value.status, raised.value.error_code) == (status, code)
    assert str(raised.value) == f"{status} {code}: Said."  # the first line of the service's message


def test_no_server_is_a_connection_error_after_the_retries(no_retry_waits: None) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    service = QueueService(QueueAccount(f"http://127.0.0.1:{port}/acct", "acct", KEY))
    with pytest.raises(QueueConnectionError):
        service.queue("q").send_message("x")


@contextmanager
def raw_http_server(close_after_reply: bool) -> Iterator[tuple[int, list[int]]]:
    """An HTTP/1.1 server answering 204 to bodiless requests, keeping each connection alive or (as a
    server does with an idle one) closing it after the reply without saying so; counts connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []

    def serve_connection(conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                _, buffer = buffer.split(b"\r\n\r\n", 1)
                conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                if close_after_reply:
                    return

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], connections
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not, on Linux)
        listener.close()
        thread.join(timeout=5)


def test_a_kept_alive_connection_the_server_dropped_is_replaced_without_an_error() -> None:
    with raw_http_server(close_after_reply=True) as (port, connections):
        pool = KeepAlivePool("127.0.0.1", port, None)
        for _ in range(3):
            assert pool.request("DELETE", "/q/messages/1?popreceipt=r", b"", {}).status == 204
        pool.close()
    assert len(connections) == 3


def test_one_connection_serves_request_after_request() -> None:
    with raw_http_server(close_after_reply=False) as (port, connections):
        service = QueueService(QueueAccount(f"http://127.0.0.1:{port}/acct", "acct", KEY))
        queue = service.queue("q")
        for _ in range(5):
            queue.delete_message("id", "receipt")
        service.close()
    assert len(connections) == 1


def test_a_connection_idle_too_long_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Azurite closes a connection idle for 5 s: the pool does not wait to find out."""
    monkeypatch.setattr("devhost.keepalive.MAX_IDLE_SECONDS", 0.0)
    with raw_http_server(close_after_reply=False) as (port, connections):
        pool = KeepAlivePool("127.0.0.1", port, None)
        for _ in range(2):
            pool.request("DELETE", "/q/messages/1?popreceipt=r", b"", {})
        pool.close()
    assert len(connections) == 2
