"""The fast path of url_problem (a regex for the common URL) decides exactly as the full check does."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import urls

PIECES = ["http", "https", "HTTP", "ftp", "://", ":/", "//", "a", "example", "com", ".", "..", "-", "_",
          ":", ":80", ":99999", "@", "user:pw@", "/", "?", "#", "q=1", "%20", " ", "\t", "\\", "[", "]",
          "::1", "é", "\u202e", "xn--bcher-kva", "\x00", "~", "!"]


def full_check(url: str) -> str | None:
    fast, urls._PLAIN_URL = urls._PLAIN_URL, re.compile(r"(?!)")  # a regex that never matches
    try:
        return urls.url_problem(url)
    finally:
        urls._PLAIN_URL = fast


@settings(max_examples=3000)
@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_fast_path_agrees_with_the_full_check(url: str) -> None:
    assert urls.url_problem(url) == full_check(url)


@settings(max_examples=1000)
@given(st.sampled_from(["http://", "https://", "HTTPS://"]),
       st.from_regex(r"[A-Za-z0-9_.-]{0,20}", fullmatch=True),
       st.from_regex(r"([/?#][!-~]{0,30})?", fullmatch=True))
def test_fast_path_agrees_on_plausible_urls(scheme: str, host: str, rest: str) -> None:
    url = scheme + host + rest
    assert urls.url_problem(url) == full_check(url)
