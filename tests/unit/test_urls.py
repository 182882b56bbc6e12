"""url_problem: which client URLs are accepted, and that every refusal says why."""

from __future__ import annotations

import pytest

from shared.urls import url_problem


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.jpg",
        "http://example.com",
        "HTTPS://EXAMPLE.COM/A.JPG",
        "https://cdn_1.example.com:8443/path/x.png?size=large#frag",
        "http://127.0.0.1:8080/x.jpg",  # addresses are the SSRF guard's business, not syntax
        "http://[::1]/x.jpg",
        "https://bücher.example/katalog.jpg",
        "https://example.com/a%20b.jpg",
    ],
)
def test_accepts_absolute_http_urls(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "reason_word"),
    [
        ("", "empty"),
        ("ftp://example.com/a.jpg", "http"),
        ("file:///etc/passwd", "http"),
        ("//example.com/a.jpg", "http"),
        ("example.com/a.jpg", "http"),
        ("javascript:alert(1)", "http"),
        ("https://", "host"),
        ("https:///a.jpg", "host"),
        ("https://user:secret@example.com/a.jpg", "credentials"),
        ("https://user@example.com/a.jpg", "credentials"),
        ("https://example.com/a b.jpg", "whitespace"),
        (" https://example.com/a.jpg", "whitespace"),
        ("https://example.com/a.jpg\n", "whitespace"),
        ("https://example.com/a\x00.jpg", "control"),
        ("https://example.com/a\u200b.jpg", "control"),
        ("https://example.com:99999/a.jpg", "port"),
        ("https://example.com:port/a.jpg", "port"),
        ("https://exa..mple.com/a.jpg", "host"),
        ("https://exa<mple.com/a.jpg", "host"),
        ("http://[::1/a.jpg", "valid"),
    ],
)
def test_refuses_with_a_reason(url: str, reason_word: str) -> None:
    reason = url_problem(url)
    assert reason is not None
    assert reason_word in reason


def test_length_limit_is_inclusive() -> None:
    base = "https://example.com/"
    exactly = base + "a" * (100 - len(base))
    assert url_problem(exactly, max_length=100) is None
    reason = url_problem(exactly + "a", max_length=100)
    assert reason is not None and "100" in reason


def test_default_length_limit_is_2048() -> None:
    base = "https://example.com/"
    assert url_problem(base + "a" * (2048 - len(base))) is None
    assert url_problem(base + "a" * (2049 - len(base))) is not None


def test_credentials_are_not_echoed() -> None:
    reason = url_problem("https://alice:hunter2@example.com/")
    assert reason is not None and "hunter2" not in reason and "alice" not in reason
