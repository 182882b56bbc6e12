"""The imgpipe CLI against a recording HTTP server: headers, key hygiene, exit codes, problems."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from devtools.http_servers import RecordedRequest, Reply, serve_in_thread
from imgpipe_cli import cli

ROOT = Path(__file__).resolve().parents[2]
KEY = "k3y-that-must-never-show-8c1f"


def _json(status: int, document: object) -> Reply:
    return Reply(status=status, headers={"Content-Type": "application/json"}, body=json.dumps(document).encode())


def test_console_script_names_the_cli_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["imgpipe"] == "imgpipe_cli.cli:main"
    assert project["tool"]["setuptools"]["packages"] == ["imgpipe_cli"]


def test_upload_sends_options_as_form_fields_and_the_key_only_as_a_header(tmp_path, capsys) -> None:
    seen: list[RecordedRequest] = []

    def handle(request: RecordedRequest) -> Reply:
        seen.append(request)
        return _json(202, {"request_id": "d4862468-24cb-4b45-a5ed-3a5e3ecf1d15", "status": "Pending",
                           "products": 1, "images": 2})

    products = tmp_path / "products.csv"
    products.write_text("S. No.,Product Name,Input Image Urls\n1,A,https://a/1.jpg\n")
    with serve_in_thread(handle) as server:
        code = cli.main(["--base-url", server.url("/api"), "--key", KEY, "upload", str(products),
                         "--quality", "60", "--format", "webp", "--max-dimension", "800",
                         "--webhook", "https://hooks.example/x"])
    assert code == 0
    [request] = seen
    assert request.method == "POST" and request.path == "/api/upload"
    assert request.headers["x-functions-key"] == KEY
    assert KEY not in request.path
    body = request.body.decode()
    for name, value in {"quality": "60", "format": "webp", "max_dimension": "800",
                        "webhook_url": "https://hooks.example/x"}.items():
        assert f'name="{name}"\r\n\r\n{value}\r\n' in body
    assert "size_target" not in body
    out = capsys.readouterr()
    assert "d4862468-24cb-4b45-a5ed-3a5e3ecf1d15" in out.out
    assert KEY not in out.out + out.err


def test_a_400_prints_every_problem_and_exits_2(tmp_path, capsys, monkeypatch) -> None:
    problems = [{"line": None, "column": "quality", "message": "quality must be an integer from 1 to 95"},
                {"line": 3, "column": "Input Image Urls", "message": "not an http(s) URL"}]
    products = tmp_path / "p.csv"
    products.write_text("x")
    with serve_in_thread(lambda r: _json(400, {"error": "invalid upload", "problems": problems,
                                               "truncated": False})) as server:
        monkeypatch.setenv("IMGPIPE_URL", server.url("/api"))
        monkeypatch.setenv("IMGPIPE_FUNCTION_KEY", KEY)
        code = cli.main(["upload", str(products), "--quality", "0"])
    assert code == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "400" in err and "invalid upload" in err
    assert "quality: quality must be an integer from 1 to 95" in err
    assert "line 3, Input Image Urls: not an http(s) URL" in err
    assert KEY not in err


def test_401_and_unreachable_errors_never_show_the_key(capsys) -> None:
    with serve_in_thread(lambda r: Reply(status=401)) as server:
        assert cli.main(["--base-url", server.url("/api") + f"?code={KEY}", "--key", KEY,
                         "status", "d4862468-24cb-4b45-a5ed-3a5e3ecf1d15"]) == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "401" in err and "IMGPIPE_FUNCTION_KEY" in err
    assert KEY not in err


@pytest.mark.parametrize(("status", "expected"), [(404, "404"), (409, "409")])
def test_cancel_refusals_exit_2(status, expected, capsys) -> None:
    seen: list[RecordedRequest] = []

    def handle(request: RecordedRequest) -> Reply:
        seen.append(request)
        return _json(status, {"error": "not found" if status == 404 else "the request already finished"})

    with serve_in_thread(handle) as server:
        code = cli.main(["--base-url", server.url("/api"), "cancel", "d4862468-24cb-4b45-a5ed-3a5e3ecf1d15"])
    assert code == cli.EXIT_REFUSED
    assert seen[0].method == "DELETE" and seen[0].path == "/api/requests/d4862468-24cb-4b45-a5ed-3a5e3ecf1d15"
    assert expected in capsys.readouterr().err
