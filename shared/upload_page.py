"""The upload page (``GET /api/ui``): one static HTML file with its inline script and style.

The file is read once per process. Its Content-Security-Policy allows exactly the inline script
and style blocks of that file (by SHA-256 hash), requests to this origin only, and nothing else:
no other scripts, no framing, no form posts elsewhere. The page writes server and user data with
``textContent`` only, never as HTML.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

PAGE_FILE = Path(__file__).with_name("upload_page.html")
_BLOCK = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


@dataclass(frozen=True)
class Page:
    html: str
    headers: dict[str, str]


def _source_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(html: str) -> str:
    scripts = [_source_hash(body) for kind, body in _BLOCK.findall(html) if kind == "script"]
    styles = [_source_hash(body) for kind, body in _BLOCK.findall(html) if kind == "style"]
    return "; ".join((
        "default-src 'none'",
        "script-src " + (" ".join(scripts) or "'none'"),
        "style-src " + (" ".join(styles) or "'none'"),
        "connect-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ))


@functools.cache
def upload_page() -> Page:
    html = PAGE_FILE.read_text(encoding="utf-8")
    return Page(html, {
        "Content-Security-Policy": content_security_policy(html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    })
