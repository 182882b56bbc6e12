"""The tripwire the security tests rely on: it must really be loaded, and really refuse."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from devtools.http_servers import Reply, serve_in_thread
from devtools.samples import csv_for
from tests.security.conftest import TRIPWIRE_DIR

PROBE = """
import socket, sys
try:
    socket.create_connection(("10.255.255.1", 9), timeout=1)
    sys.exit("connected off the machine")
except ConnectionRefusedError:
    pass
try:
    socket.getaddrinfo("tripwire-probe.invalid", 80)
    sys.exit("resolved a name through DNS")
except socket.gaierror:
    pass
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as sock:
    sock.sendall(b"GET /ok HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    assert sock.recv(100).startswith(b"HTTP/1.1 200")
socket.getaddrinfo("localhost", 80)
"""


def test_tripwire_refuses_off_machine_connects_and_dns_but_not_loopback(tmp_path) -> None:
    log = tmp_path / "tripwire.log"
    env = {**os.environ, "PYTHONPATH": str(TRIPWIRE_DIR), "IMGPIPE_TRIPWIRE_LOG": str(log)}
    with serve_in_thread({"/ok": Reply(body=b"ok")}) as server:
        port = server.base_url.rsplit(":", 1)[1]
        done = subprocess.run([sys.executable, "-c", PROBE, port], env=env, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 0, done.stderr
    hits = log.read_text().splitlines()
    assert len(hits) == 2
    assert "connect ('10.255.255.1', 9)" in hits[0] and "dns 'tripwire-probe.invalid'" in hits[1]


@pytest.mark.integration
def test_tripwire_is_loaded_in_the_app_workers(secure_stack) -> None:
    stack = secure_stack()
    response = stack.upload(csv_for([["http://tripwire-probe.invalid/a.jpg"]]))
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 60
    while not stack.tripwire_hits() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any("dns 'tripwire-probe.invalid'" in hit for hit in stack.tripwire_hits())
