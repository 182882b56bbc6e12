"""The upload page function: served from its file with a CSP that pins its own inline blocks."""

from __future__ import annotations

import base64
import hashlib
import importlib
import re

import azure.functions as func

from shared.upload_page import PAGE_FILE, content_security_policy

page_http = importlib.import_module("page_http")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_page_function_answers_the_html_with_security_headers() -> None:
    response = page_http.main(func.HttpRequest(method="GET", url="http://localhost/api/ui", body=b""))
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_body().decode()
    assert html == PAGE_FILE.read_text()
    policy = response.headers["Content-Security-Policy"]
    [script] = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    [style] = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    assert f"script-src {_hash(script)}" in policy
    assert f"style-src {_hash(style)}" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_changed_script_is_no_longer_allowed() -> None:
    policy = content_security_policy("<script>alert(1)</script>")
    assert _hash("alert(1)") in policy and _hash("alert(2)") not in policy
    assert "style-src 'none'" in content_security_policy("<p>no style</p>")


def test_the_page_never_parses_data_as_html() -> None:
    source = PAGE_FILE.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, sink
    markup = re.sub(r"<script>.*?</script>", "", source, flags=re.DOTALL)
    assert not re.search(r"\son\w+\s*=", markup)  # inline handlers would need 'unsafe-inline'
    assert source.count("<script") == 1 and "<script src" not in source
