"""The health monitor: every check reported with its status, time-bounded, shared for a few seconds."""

from __future__ import annotations

import threading

from shared.errors import DependencyMissing
from shared.health import CheckStatus, HealthMonitor, failed_report


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_check_has_its_status_and_a_failure_its_reason() -> None:
    def missing() -> None:
        raise DependencyMissing("queue 'image-jobs' does not exist")

    def broken() -> None:
        raise ConnectionError("password=hunter2 refused")  # not an ImgpipeError: only its type is shown

    monitor = HealthMonitor({"database": lambda: None, "queue:image-jobs": missing, "redis": broken})
    report = monitor.report()
    document = report.as_dict()
    assert not report.healthy and document["status"] == "unhealthy"
    checks = document["checks"]
    assert checks["database"]["status"] == "ok" and checks["database"]["reason"] is None
    assert checks["queue:image-jobs"] == {**checks["queue:image-jobs"], "status": "failed",
                                          "reason": "queue 'image-jobs' does not exist"}
    assert checks["redis"]["reason"] == "ConnectionError"
    assert "hunter2" not in str(document)
    monitor.close()


def test_a_hung_check_times_out_without_holding_the_others() -> None:
    release = threading.Event()
    monitor = HealthMonitor({"redis": lambda: None, "database": lambda: release.wait(30) and None}, timeout_s=0.2)
    try:
        report = monitor.report()
        statuses = {check.name: check.status for check in report.checks}
        assert statuses == {"redis": CheckStatus.OK, "database": CheckStatus.TIMEOUT}
        assert not report.healthy
    finally:
        release.set()
        monitor.close()


def test_probes_within_the_cache_window_share_one_round_of_checks() -> None:
    calls: list[int] = []
    clock = Clock()
    monitor = HealthMonitor({"redis": lambda: calls.append(1)}, cache_s=5.0, clock=clock)
    for _ in range(20):
        assert monitor.report().healthy
    assert len(calls) == 1
    clock.now += 5.1
    monitor.report()
    assert len(calls) == 2
    monitor.close()


def test_a_refused_configuration_is_a_failed_report() -> None:
    from shared.errors import ConfigError

    report = failed_report("settings", ConfigError("running in Azure with development settings: ..."))
    assert not report.healthy
    assert report.as_dict()["checks"]["settings"]["reason"].startswith("running in Azure")


def test_the_checks_cover_every_queue_of_the_container(tmp_path) -> None:
    from shared.health import dependency_checks
    from shared.memory import memory_dependencies
    from shared.settings import Settings
    from shared.store import Store

    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                  "SQLITE_PATH": str(tmp_path / "db.sqlite3"), "OUTPUT_DIR": str(tmp_path / "out")})
    store = Store.for_sqlite(settings.sqlite_path)
    store.ensure_schema()
    deps = memory_dependencies(settings, store)
    try:
        checks = dependency_checks(deps)
        assert set(checks) == {"database", "redis", f"queue:{deps.image_queue.name}",
                               f"queue:{deps.notify_queue.name}", f"queue:{deps.fanout_queue.name}",
                               "output_storage"}
        deps.notify_queue.missing = True  # type: ignore[attr-defined]
        monitor = HealthMonitor(checks)
        report = monitor.report()
        monitor.close()
        failed = [check.name for check in report.checks if check.status is not CheckStatus.OK]
        assert failed == [f"queue:{deps.notify_queue.name}"]
    finally:
        deps.close()
