"""The imgpipe command end to end: the console script's module against the local host on real
Azurite, Redis and SQLite."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.samples import csv_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def imgpipe(base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMGPIPE_URL": base_url, "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "imgpipe_cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def test_upload_wait_shows_progress_writes_the_output_csv_and_a_summary(stack, image_server, tmp_path) -> None:
    products = [[image_server.url("/img/1.jpg"), image_server.url("/img/2.jpg")],
                [image_server.url("/missing.jpg"), image_server.url("/img/3.jpg")]]
    source = tmp_path / "products.csv"
    source.write_text(csv_for(products))

    result = imgpipe(stack.base_url, "upload", str(source), "--wait", "--interval", "0.2")

    assert result.returncode == 1, result.stderr  # one image failed
    out = result.stdout
    assert "2 products, 4 images" in out
    assert "Completed" in out and "4/4" in out  # the progress bar's last state
    assert "4 images, 3 done, 1 failed" in out
    assert "/missing.jpg" in out and "404" in out  # the failure and its reason
    assert "saved" in out
    written = tmp_path / "products.output.csv"
    assert f"output CSV: {written}" in out.replace("\n", "")
    rows = list(csv.reader(io.StringIO(written.read_text())))
    assert rows[0] == ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls"]
    first, second = (row[3].split(",") for row in rows[1:])
    assert all(first) and len(first) == 2
    assert second[0] == "" and second[1]  # the failed slot stays empty, positions aligned

    request_id = out.split("request ", 1)[1].split(":", 1)[0]
    status = imgpipe(stack.base_url, "status", request_id)
    assert status.returncode == 0, status.stderr
    assert "Completed: 4 images, 3 done, 1 failed" in status.stdout


def test_upload_without_wait_prints_the_id_and_a_bad_csv_lists_problems(stack, tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("S. No.,Product Name,Input Image Urls\n1,A,ftp://nope/x.jpg\n")
    result = imgpipe(stack.base_url, "upload", str(bad))
    assert result.returncode == 2
    assert "400" in result.stderr and "line 2" in result.stderr
    assert not (tmp_path / "bad.output.csv").exists()


def test_cancel_through_the_cli(make_stack, image_server, tmp_path) -> None:
    stack = make_stack(**{"AzureWebJobs.process_queue.Disabled": "true"})  # nothing ever starts
    source = tmp_path / "p.csv"
    source.write_text(csv_for([[image_server.url(f"/img/{i}.jpg") for i in range(3)]]))
    uploaded = imgpipe(stack.base_url, "upload", str(source))
    request_id = uploaded.stdout.split("request ", 1)[1].split(":", 1)[0]

    cancelled = imgpipe(stack.base_url, "cancel", request_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"request {request_id}: Cancell" in cancelled.stdout
    stack.wait_for_status(request_id, wanted="Cancelled")
    status = imgpipe(stack.base_url, "status", request_id)
    assert "Cancelled: 3 images, 0 done, 0 failed" in status.stdout
    assert "skipped (cancelled before they started): 3" in status.stdout
    assert "options: quality=50" in status.stdout
