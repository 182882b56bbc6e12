"""Settings conformance: worker process and thread counts, functionTimeout, as the real host and worker read them."""

from __future__ import annotations

import logging

import pytest
import requests

from devhost.host import DEFAULT_FUNCTION_TIMEOUT, _function_timeout
from devhost.settings import threadpool_thread_count, worker_process_count
from tests.devhost.conftest import Hosts, QueueKit, records, wait_until


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 1), ("", 1), ("3", 3), ("10", 10), ("30", 10), ("0", 1), ("-1", 1), ("x", 1)]
)
def test_worker_process_count_is_capped_at_ten(raw: str | None, expected: int) -> None:
    """Azure/azure-functions-host test/WebJobs.Script.Tests/Workers/Rpc/RpcFunctionInvocationDispatcherTests.cs:
    MaxProcessCount_Returns_Default (unset, 0, -1 -> 1) and ..._ExceedsMax_Returns_ExpectedCount (30 -> 10)."""
    environ = {} if raw is None else {"FUNCTIONS_WORKER_PROCESS_COUNT": raw}
    assert worker_process_count(environ) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, None), ("8", 8), ("32", 32), ("0", None), ("33", None), ("x", None)]
)
def test_an_invalid_thread_count_warns_and_uses_the_default(
    raw: str | None, expected: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    """azure-functions-python-worker dispatcher.py _get_sync_tp_max_workers and constants.py (1..32): a value
    that is not an integer in range logs a warning and reverts to the default; it never stops the worker."""
    environ = {} if raw is None else {"PYTHON_THREADPOOL_THREAD_COUNT": raw}
    with caplog.at_level(logging.WARNING):
        assert threadpool_thread_count(environ) == expected
    assert ("PYTHON_THREADPOOL_THREAD_COUNT" in caplog.text) == (raw is not None and expected is None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, DEFAULT_FUNCTION_TIMEOUT), ("-1", None), (-1, None), ("00:00:05", 5.0), ("01:00:00", 3600.0)],
)
def test_function_timeout_minus_one_is_unbounded(value: object, expected: float | None) -> None:
    """host.json reference, functionTimeout: -1 means unbounded (Dedicated / Premium); default 30 minutes
    for the local host as Core Tools on a non-Consumption plan."""
    host_json = {} if value is None else {"functionTimeout": value}
    assert _function_timeout(host_json) == expected


@pytest.mark.integration
def test_a_bad_thread_count_does_not_stop_the_host(hosts: Hosts) -> None:
    host = hosts.start(env={"PYTHON_THREADPOOL_THREAD_COUNT": "lots"})
    assert "PYTHON_THREADPOOL_THREAD_COUNT must be an integer" in host.output()
    assert requests.get(host.url("/api/items/7"), timeout=30).status_code == 200


@pytest.mark.integration
def test_function_timeout_applies_to_a_queue_invocation(hosts: Hosts, queues: QueueKit, record_dir: object) -> None:
    """The real host enforces functionTimeout for every trigger: the queue invocation fails, its worker process
    is restarted, and the message is retried (host.json reference, functionTimeout; worker restart on timeout)."""
    host = hosts.start(env={"AzureFunctionsJobHost__functionTimeout": "00:00:02"})
    queues.send(queues.work, {"tag": "stuck", "action": "sleep", "seconds": 30, "fail_below": 0})
    wait_until(lambda: "Timeout value of 00:00:02 exceeded by function 'Functions.work'" in host.output(), timeout=30)
    wait_until(lambda: "starting a new one" in host.output(), timeout=30)
    wait_until(
        lambda: [r["dequeue_count"] for r in records(record_dir) if r["event"] == "start"][:2] == [1, 2],  # type: ignore[arg-type]
        timeout=60,
    )
    assert "Executed 'Functions.work' (Failed" in host.output()


@pytest.mark.integration
def test_invocations_go_round_robin_over_worker_processes_whatever_each_has_in_flight(hosts: Hosts) -> None:
    """Azure/azure-functions-host src/WebJobs.Script/Workers/Rpc/FunctionRegistration/
    RpcFunctionInvocationDispatcherLoadBalancer.cs: GetLanguageWorkerChannel picks
    ``Interlocked.Increment(ref _counter) % currentNumberOfWorkers``, not the least busy worker. So with one
    worker busy on a long invocation, quick invocations still land on it every other time."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.devhost.test_conformance_loading import CONFORM_APP

    host = hosts.start(CONFORM_APP, args=["--workers", "2"])
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(requests.get, host.url("/api/which-worker?seconds=6"), timeout=60)
        wait_until(lambda: "Executing 'Functions.which_worker'" in host.output(), timeout=30)
        quick = [requests.get(host.url("/api/which-worker"), timeout=30).text for _ in range(4)]
        busy_pid = busy.result().text
    assert len(set(quick)) == 2, f"quick invocations all went to one worker: {quick}"
    assert busy_pid in quick, "the busy worker got none of the quick invocations"
    assert busy.result().status_code == 200
