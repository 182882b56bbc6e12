"""Syntax checks of URLs a client gives us (image URLs in the CSV, the webhook URL).

Pure syntax: no DNS and no address checks. Whether the host may be contacted is decided at
connect time by the SSRF guard in ``shared.outbound``.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

DEFAULT_MAX_URL_LENGTH = 2048
ALLOWED_SCHEMES = frozenset({"http", "https"})

# Characters a host name may hold once IDNA is set aside: letters, digits, hyphen, dot, underscore
# (seen in real CDN host names). Anything else (quotes, angle brackets, percent) is refused early.
_ASCII_HOST = re.compile(r"^[A-Za-z0-9._-]+$")
# The common case, accepted without urlsplit (a 20 MB CSV holds 200,000 URLs): http(s), an ASCII
# host of non-empty labels, no port, no credentials, then printable ASCII. Anything else takes
# the full path below, which decides the same for every URL this matches.
_PLAIN_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://(?:[A-Za-z0-9_-]+\.)*[A-Za-z0-9_-]+\.?(?:[/?#][!-~]*)?")


def _has_whitespace_or_control(text: str) -> bool:
    if text.isascii():  # the common case, checked without a per-character loop
        return " " in text or not text.isprintable()
    return any(ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in text)


def _host_problem(host: str) -> str | None:
    if host.startswith("[") or ":" in host:
        return None  # an IPv6 literal; urlsplit has already validated it
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return "has a host name that is not valid"
    if not _ASCII_HOST.match(host) or any(not label for label in host.rstrip(".").split(".")):
        return "has a host name that is not valid"
    return None


def url_problem(url: str, max_length: int = DEFAULT_MAX_URL_LENGTH) -> str | None:
    """Return None if ``url`` is an acceptable absolute http(s) URL, else a short reason.

    The reason reads after the word "URL", e.g. "must use http or https".
    """
    if not url:
        return "is empty"
    if len(url) > max_length:
        return f"is longer than {max_length} characters"
    if _PLAIN_URL.fullmatch(url):
        return None
    if _has_whitespace_or_control(url):
        return "contains whitespace or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return "must be an absolute URL starting with http:// or https://"
    if "@" in parts.netloc:
        return "must not contain credentials (user:password@)"
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed or out-of-range port
    except ValueError:
        return "has an invalid host or port"
    if not host:
        return "has no host"
    return _host_problem(host)
