"""Loading conformance: one broken function never stops the host; host.json is checked as the real host does.

One fixture app per failure mode under tests/devhost/broken/ (each has one function, ``greet``), plus the
conform app's broken functions next to healthy ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests

from devhost.settings import SettingsError, load_host_json
from tests.devhost.conftest import APPS, BROKEN, Hosts, QueueKit, decoded, records, run_host, wait_until

CONFORM_APP = APPS / "conform"
# Folder-level problems: the function is not indexed, so its route does not exist (404).
NOT_INDEXED = {
    "missing_script": "script file not found: nowhere.py",
    "bad_function_json": "cannot read function.json",
    "unresolved_setting": "DEVHOST_TEST_UNSET_SETTING",
}
# Worker-level problems: the function is registered and every invocation fails with the load error (500).
FAILS_EACH_CALL = {
    "binding_not_parameter": "declared in function.json but not in Python: ['req']",
    "parameter_not_binding": "declared in Python but not in function.json: ['extra']",
    "import_error": "module_that_does_not_exist_anywhere",
    "missing_entry_point": "entry point 'run' not found",
}


@pytest.mark.integration
@pytest.mark.parametrize("mode", sorted({**NOT_INDEXED, **FAILS_EACH_CALL}))
def test_a_broken_function_is_in_error_and_the_host_runs(hosts: Hosts, mode: str) -> None:
    """Real host: each function is indexed and loaded on its own; a broken one is logged as "in error"
    (Azure/azure-functions-host ScriptHost function errors; the Python worker answers its
    FunctionLoadRequest with the exception, azure-functions-python-worker dispatcher.py), the host starts."""
    host = hosts.start(BROKEN / mode)
    expected = {**NOT_INDEXED, **FAILS_EACH_CALL}[mode]
    wait_until(lambda: "The 'greet' function is in error" in host.output())
    assert expected in host.output()
    status = requests.get(host.url("/api/greet"), timeout=30).status_code
    assert status == (404 if mode in NOT_INDEXED else 500)
    assert host.proc.poll() is None


@pytest.mark.integration
def test_healthy_functions_run_beside_broken_ones(hosts: Hosts, queues: QueueKit) -> None:
    """The conform app holds an import error (HTTP), a wrong annotation (``req: func.QueueMessage`` on an
    httpTrigger: the worker checks annotations with the library's converters,
    ``check_input_type_annotation``) and a queue function that cannot import; the rest serve requests, and
    the broken queue function fails each message until it lands in ``-poison`` (QueueProcessor)."""
    host = hosts.start(CONFORM_APP)
    assert requests.get(host.url("/api/only-get"), timeout=30).text == "got"
    assert requests.get(host.url("/api/broken-import"), timeout=30).status_code == 500
    assert requests.get(host.url("/api/wrong-annotation"), timeout=30).status_code == 500
    output = host.output()
    assert "The 'wrong_annotation' function is in error" in output
    mismatch = 'type of req binding in function.json "httpTrigger" does not match its Python annotation "QueueMessage"'
    assert mismatch in output
    queues.send(queues.work, "doomed")
    poison = queues.work + "-poison"
    wait_until(lambda: queues.peek_texts(poison), timeout=60)
    assert decoded(queues.peek_texts(poison)) == ["doomed"]
    assert host.output().count("Executed 'Functions.broken_queue' (Failed") == 5


def _app_with_host_json(tmp_path: Path, host_json: dict[str, object]) -> Path:
    app = tmp_path / "app"
    shutil.copytree(APPS / "basic", app)
    (app / "host.json").write_text(json.dumps(host_json))
    return app


@pytest.mark.parametrize(
    ("host_json", "message"),
    [
        ({}, "missing the required 'version' property"),
        ({"version": "1.0"}, "'1.0' is an invalid value for host.json 'version' property"),
    ],
)
def test_host_json_without_version_2_is_refused(tmp_path: Path, host_json: dict[str, object], message: str) -> None:
    """Azure/azure-functions-host src/WebJobs.Script/Config/HostJsonFileConfigurationSource.cs: a host.json
    without 'version', or with one other than 2.0, stops the host."""
    app = _app_with_host_json(tmp_path, host_json)
    with pytest.raises(SettingsError, match=message):
        load_host_json(app, {})


@pytest.mark.integration
def test_host_json_without_version_stops_the_host(tmp_path: Path) -> None:
    host = run_host(tmp_path, _app_with_host_json(tmp_path, {}), {})
    assert host.wait_exit(timeout=60) == 2
    assert "missing the required 'version' property" in host.output()


@pytest.mark.integration
def test_without_an_extension_bundle_queue_functions_are_in_error(hosts: Hosts, record_dir: Path) -> None:
    """Python apps get the Storage extension only from the extension bundle: without ``extensionBundle`` the
    real host reports the queue binding types as not registered for those functions; HTTP (built in) runs."""
    app = _app_with_host_json(hosts.tmp_path, {"version": "2.0"})
    host = hosts.start(app)
    wait_until(lambda: "The 'work' function is in error" in host.output())
    assert "The binding type(s) 'queueTrigger, queue' are not registered" in host.output()
    assert requests.get(host.url("/api/items/7"), timeout=30).status_code == 200
    assert records(record_dir) == []
