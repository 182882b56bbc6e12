"""Command line: ``python -m devhost [--app-dir DIR] [--port N] [--enforce-keys] [--workers N]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from devhost import logs
from devhost.discovery import FunctionLoadError
from devhost.host import Host, HostOptions
from devhost.settings import SettingsError, env_float

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devhost",
        description="Run a folder-model Python Azure Functions app locally (a stand-in for `func start`).",
    )
    parser.add_argument("--app-dir", type=Path, default=Path.cwd(), help="the app folder (default: here)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: Host.LocalHttpPort or 7071)")
    parser.add_argument(
        "--enforce-keys",
        action="store_true",
        help="require the function key (DEVHOST_FUNCTION_KEY) for non-anonymous functions",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: FUNCTIONS_WORKER_PROCESS_COUNT or 1)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(logging.DEBUG if args.verbose else logging.INFO)
    try:
        options = HostOptions(
            app_dir=args.app_dir,
            port=args.port,
            enforce_keys=args.enforce_keys,
            function_key=os.environ.get("DEVHOST_FUNCTION_KEY") or None,
            workers=args.workers,
            shutdown_grace=env_float(os.environ, "DEVHOST_SHUTDOWN_GRACE_SECONDS", 30.0),
        )
        return Host(options).run()
    except (FunctionLoadError, SettingsError) as exc:
        logger.error("Host failed to start: %s", exc)
        return 2
    except OSError as exc:
        logger.error("Host failed to start: %s", exc)
        return 2
    finally:
        sys.stderr.flush()
