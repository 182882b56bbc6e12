"""``imgpipe upload|status|cancel``: argument parsing, the progress bar and the printed summary.

Exit codes: 0 the request completed with every image done (or the command succeeded); 1 it
completed with failed images or was cancelled; 2 the service refused the request (bad CSV or
option, unknown id, cannot cancel) or could not be reached; 130 interrupted while waiting (the job
goes on: ``imgpipe cancel ID`` stops it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from imgpipe_cli.client import DEFAULT_BASE_URL, ApiClient, ApiError, UploadOptions

FINISHED = {"Completed", "Cancelled"}
FORMATS = ("keep", "jpeg", "webp")
EXIT_OK, EXIT_INCOMPLETE, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgpipe", description="Client of the imgpipe image compression API.")
    parser.add_argument("--base-url", default=os.environ.get("IMGPIPE_URL") or DEFAULT_BASE_URL,
                        help="the API root, e.g. https://<app>.azurewebsites.net/api (env IMGPIPE_URL)")
    parser.add_argument("--key", default=os.environ.get("IMGPIPE_FUNCTION_KEY"),
                        help="a function key, sent as x-functions-key (env IMGPIPE_FUNCTION_KEY, preferred: "
                             "an option shows in the process list)")
    commands = parser.add_subparsers(dest="command", required=True)

    upload = commands.add_parser("upload", help="upload a CSV of products and image URLs")
    upload.add_argument("csv", type=Path, help="the CSV (S. No., Product Name, Input Image Urls)")
    upload.add_argument("--quality", type=int, help="JPEG/WebP quality 1-95 (default: the service's)")
    upload.add_argument("--size-target", type=float, help="aim for at most this fraction of the input bytes")
    upload.add_argument("--format", choices=FORMATS, help="output format (default keep)")
    upload.add_argument("--max-dimension", type=int, help="downscale the long side to at most N pixels")
    upload.add_argument("--webhook", help="URL to POST the signed completion webhook to")
    upload.add_argument("--idempotency-key", help="makes a retried upload answer the same request")
    upload.add_argument("--wait", action="store_true", help="show progress, then write the output CSV")
    upload.add_argument("--output", type=Path, help="where --wait writes the output CSV "
                                                     "(default: <input>.output.csv next to the input)")
    upload.add_argument("--interval", type=float, default=0.5, help="seconds between status polls")

    status = commands.add_parser("status", help="show a request's progress")
    status.add_argument("request_id")
    status.add_argument("--json", action="store_true", help="print the status document as JSON")

    cancel = commands.add_parser("cancel", help="cancel a request: images not yet started are skipped")
    cancel.add_argument("request_id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    client = ApiClient(args.base_url, args.key)
    try:
        if args.command == "upload":
            return _upload(client, args, console)
        if args.command == "status":
            return _status(client, args, console)
        return _cancel(client, args, console)
    except ApiError as exc:
        errors.print(f"error: {exc}", markup=False)
        for problem in exc.problems:
            errors.print(f"  - {_problem_text(problem)}", markup=False)
        return EXIT_REFUSED
    except OSError as exc:
        errors.print(f"error: {exc}", markup=False)
        return EXIT_REFUSED


def _problem_text(problem: dict[str, Any]) -> str:
    where = []
    if problem.get("line") is not None:
        where.append(f"line {problem['line']}")
    if problem.get("column"):
        where.append(f"{problem['column']}")
    prefix = f"{', '.join(where)}: " if where else ""
    return f"{prefix}{problem.get('message', '')}"


def _upload(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    options = UploadOptions(quality=args.quality, size_target=args.size_target, format=args.format,
                            max_dimension=args.max_dimension, webhook_url=args.webhook)
    accepted = client.upload(args.csv, options, args.idempotency_key)
    request_id = accepted["request_id"]
    console.print(f"request {request_id}: {accepted['products']} products, {accepted['images']} images",
                  markup=False)
    if not args.wait:
        console.print(f"follow it with: imgpipe status {request_id}", markup=False)
        return EXIT_OK
    try:
        final = _watch(client, request_id, console, args.interval)
    except KeyboardInterrupt:
        console.print(f"\nstopped waiting; the job goes on (imgpipe cancel {request_id} stops it)", markup=False)
        return EXIT_INTERRUPTED
    output_path = args.output or args.csv.with_name(f"{args.csv.stem}.output.csv")
    output_path.write_bytes(client.output_csv(request_id))
    detailed = client.status(request_id, include_images=True)
    _print_summary(console, detailed)
    console.print(f"output CSV: {output_path}", markup=False)
    return EXIT_OK if final["status"] == "Completed" and not final["failed"] else EXIT_INCOMPLETE


def _watch(client: ApiClient, request_id: str, console: Console, interval_s: float) -> dict[str, Any]:
    """Poll the status with a progress bar until the request is finished; the last document."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("Pending", total=None, failed=0)
        while True:
            document = client.status(request_id)
            progress.update(task, description=document["status"], total=document["images"],
                            completed=document["done"] + document["failed"], failed=document["failed"])
            if document["status"] in FINISHED:
                return document
            time.sleep(interval_s)


def _print_summary(console: Console, document: dict[str, Any]) -> None:
    results: list[dict[str, Any]] = document.get("results") or []
    console.print(f"{document['status']}: {document['images']} images, {document['done']} done, "
                  f"{document['failed']} failed" + _distinct_note(document), markup=False)
    for item in results:
        if item["status"] == "Failed":
            console.print(f"  failed: row {item['serial']} {item['product_name']!r} {item['input_url']}: "
                          f"{item['error']}", markup=False)
    skipped = sum(1 for item in results if item["status"] == "Skipped")
    if skipped:
        console.print(f"  skipped (cancelled before they started): {skipped}", markup=False)
    bytes_in, bytes_out = _bytes(results)
    if bytes_in:
        saved = bytes_in - bytes_out
        console.print(f"bytes: {bytes_in:,} in, {bytes_out:,} out, {saved:,} saved "
                      f"({saved / bytes_in:.0%})", markup=False)


def _distinct_note(document: dict[str, Any]) -> str:
    distinct = document.get("distinct_images")
    if isinstance(distinct, int) and distinct != document["images"]:
        return f" ({distinct} distinct)"
    return ""


def _bytes(results: list[dict[str, Any]]) -> tuple[int, int]:
    """Input and output bytes of the done images, each distinct output counted once."""
    seen: set[str] = set()
    bytes_in = bytes_out = 0
    for item in results:
        if item["status"] != "Done" or item["bytes_in"] is None or item["bytes_out"] is None:
            continue
        key = item["output_url"] or f"#{item['seq']}"
        if key in seen:
            continue
        seen.add(key)
        bytes_in += item["bytes_in"]
        bytes_out += item["bytes_out"]
    return bytes_in, bytes_out


def _status(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    document = client.status(args.request_id, include_images=not args.json)
    if args.json:
        console.print(json.dumps(document, indent=2), markup=False, soft_wrap=True)
        return EXIT_OK
    options = document.get("options")
    if isinstance(options, dict) and options:
        console.print("options: " + ", ".join(f"{k}={v}" for k, v in options.items()), markup=False)
    _print_summary(console, document)
    return EXIT_OK


def _cancel(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    document = client.cancel(args.request_id)
    console.print(f"request {args.request_id}: {document.get('status')}", markup=False)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
