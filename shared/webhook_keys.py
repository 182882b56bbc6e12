"""Print the signing key of a webhook receiver, for an operator to hand to its owner.

    WEBHOOK_SECRET=... python -m shared.webhook_keys https://hooks.example.com/imgpipe

The key is derived from WEBHOOK_SECRET and the webhook URL without its query (see
``shared.webhook``), so it is the same on every instance and needs no storage; rotating
WEBHOOK_SECRET changes every key.
"""

from __future__ import annotations

import os
import sys

from shared.errors import ConfigError
from shared.urls import url_problem
from shared.webhook import receiver_key


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m shared.webhook_keys <webhook URL>", file=sys.stderr)
        return 2
    url = argv[0]
    problem = url_problem(url)
    if problem:
        print(f"the URL {problem}", file=sys.stderr)
        return 2
    try:
        print(receiver_key(os.environ.get("WEBHOOK_SECRET", "").strip(), url))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
