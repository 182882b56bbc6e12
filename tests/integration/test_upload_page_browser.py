"""The upload page in a real browser: Debian's chromium, headless, driven by selenium through
chromedriver, against the local host on real Azurite, Redis and SQLite.

Locally a missing chromium or chromedriver skips; in CI (CI=true) it fails.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from devtools.samples import csv_for
from devtools.servers import in_ci

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if in_ci():
            pytest.fail("chromium and chromium-driver are required in CI")
        pytest.skip("chromium or chromedriver is not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium-manager would otherwise try to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Callable[[], object], timeout_s: float = 60) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def csp_violations(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]


def test_the_page_is_served_with_a_strict_csp(stack) -> None:
    response = requests.get(f"{stack.base_url}/ui", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_validation_errors_show_inline_as_text(stack, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    hostile = "<b id=injected>x</b>"
    bad = tmp_path / "bad.csv"
    bad.write_text("S. No.,Product Name,Input Image Urls\n1,A,ftp://nope/x.jpg\n")
    browser.get(f"{stack.base_url}/ui")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    browser.find_element(By.ID, "quality").send_keys("0")
    # A value the server echoes in its problem message (a crafted request, not one the select offers).
    browser.execute_script("const o = document.createElement('option'); o.value = arguments[0];"
                           "o.selected = true; document.getElementById('format').appendChild(o);", hostile)
    browser.find_element(By.ID, "submit").click()

    wait_for(lambda: browser.find_element(By.ID, "errors").is_displayed())
    assert "HTTP 400" in browser.find_element(By.ID, "error").text
    problems = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#problems li")]
    assert any(text.startswith("line 2") and "http" in text for text in problems), problems
    assert any(text.startswith("quality:") and "1 to 95" in text for text in problems), problems
    assert any(hostile in text for text in problems), problems  # echoed as text...
    assert browser.find_elements(By.ID, "injected") == []  # ...never parsed as HTML
    assert csp_violations(browser) == []
    with sqlite3.connect(stack.env["SQLITE_PATH"]) as db:
        assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 0


def test_upload_progress_and_download_of_the_output_csv(stack, browser, image_server, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    products = [[image_server.url(f"/img/{p * 2 + i}.jpg") for i in range(2)] for p in range(3)]
    source = tmp_path / "catalogue.csv"
    source.write_text(csv_for(products))
    browser.get(f"{stack.base_url}/ui")
    browser.find_element(By.ID, "file").send_keys(str(source))
    browser.find_element(By.ID, "submit").click()

    wait_for(lambda: browser.find_element(By.ID, "job").is_displayed())
    request_id = browser.find_element(By.ID, "request-id").text
    wait_for(lambda: browser.find_element(By.ID, "done").is_displayed(), timeout_s=120)
    assert browser.find_element(By.ID, "progress-text").text == "Completed: 6 done, 0 failed of 6 images"
    assert browser.find_element(By.ID, "progress").get_attribute("value") == "6"

    browser.find_element(By.ID, "download").click()
    downloaded = browser.downloads / "catalogue.output.csv"
    wait_for(downloaded.exists)
    expected = requests.get(f"{stack.base_url}/status/{request_id}", params={"format": "csv"}, timeout=30)
    assert downloaded.read_bytes() == expected.content
    assert expected.text.count("\n") == 4 and "Output Image Urls" in expected.text
    assert csp_violations(browser) == []


def test_cancel_from_the_page(make_stack, browser, image_server, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    stack = make_stack(**{"AzureWebJobs.process_queue.Disabled": "true"})  # nothing ever starts
    source = tmp_path / "p.csv"
    source.write_text(csv_for([[image_server.url(f"/img/{i}.jpg") for i in range(4)]]))
    browser.get(f"{stack.base_url}/ui")
    browser.find_element(By.ID, "file").send_keys(str(source))
    browser.find_element(By.ID, "submit").click()
    wait_for(lambda: browser.find_element(By.ID, "cancel").is_displayed())
    browser.find_element(By.ID, "cancel").click()
    wait_for(lambda: browser.find_element(By.ID, "done").is_displayed(), timeout_s=120)
    assert browser.find_element(By.ID, "progress-text").text == "Cancelled: 0 done, 0 failed of 4 images, 4 skipped"
    assert browser.find_element(By.ID, "progress").get_attribute("value") == "4"
    assert not browser.find_element(By.ID, "cancel").is_displayed()
    assert csp_violations(browser) == []
