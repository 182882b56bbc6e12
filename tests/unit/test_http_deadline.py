"""The total-deadline watchdog: one thread for every deadline of the process, in deadline order."""

from __future__ import annotations

import socket
import threading

import pytest

from shared.http_deadline import total_deadline


def _watchdogs() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "http-deadline-watchdog"]


def test_many_deadlines_share_one_watchdog_thread() -> None:
    """Before, each request started (and stopped) a timer thread of its own."""
    for _ in range(50):
        with total_deadline(60.0):
            pass
    assert len(_watchdogs()) == 1


def test_a_short_deadline_behind_a_long_one_still_cuts_its_socket() -> None:
    """The watchdog, asleep until a later deadline, wakes for an earlier one added after it."""
    ours, theirs = socket.socketpair()
    with ours, theirs, total_deadline(600.0), total_deadline(0.2) as inner:
        inner.watch(ours)
        ours.settimeout(30.0)  # a safety net only: the shutdown ends the read long before
        assert ours.recv(1) == b""  # blocked until the watchdog shut the connection down
        assert inner.expired


def test_a_deadline_closed_in_time_never_expires() -> None:
    ours, theirs = socket.socketpair()
    other, other_peer = socket.socketpair()
    with ours, theirs, other, other_peer:
        with total_deadline(0.05) as scope:
            scope.watch(ours)
        with total_deadline(0.1) as later:  # due after the first one: it shows the first was passed
            later.watch(other)
            other.settimeout(30.0)
            assert other.recv(1) == b""
        assert later.expired and not scope.expired
        ours.sendall(b"x")  # still connected: the closed scope did not shut it down
        assert theirs.recv(1) == b"x"


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # Python 3.12+
def test_a_forked_child_gets_a_watchdog_of_its_own() -> None:
    """The parent's thread does not exist in a child: deadlines there must still cut sockets."""
    import multiprocessing

    with total_deadline(60.0):  # the parent's watchdog is running
        pass
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        assert pool.apply(_child_deadline_cuts_a_socket) is True


def _child_deadline_cuts_a_socket() -> bool:
    ours, theirs = socket.socketpair()
    with ours, theirs, total_deadline(0.1) as scope:
        scope.watch(ours)
        ours.settimeout(30.0)
        return ours.recv(1) == b"" and scope.expired
