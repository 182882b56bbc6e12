"""`make demo`: a sample job end to end on the embedded defaults.

Starts Azurite and Redis (free ports, data under .data/demo), the app on the local host, a local
HTTP server for the sample photos (and the compressed outputs), and a webhook receiver that verifies
the signature. Uploads a sample CSV with the `imgpipe` command-line client (its progress bar and
summary), then prints the webhook, the status, the output CSV and a table of sizes before and after.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devtools.apphost import TEST_WEBHOOK_SECRET, AppStack
from devtools.servers import Azurite, RedisServer
from devtools.webhook_receiver import running_receiver

ROOT = Path(__file__).resolve().parents[1]


PHOTOS = ROOT / "samples" / "photos"
DEMO = ROOT / ".data" / "demo"


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_files(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietFiles, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def sample_csv(base_url: str) -> str:
    photos = sorted(PHOTOS.glob("*.jpg"))
    rows = ["S. No.,Product Name,Input Image Urls"]
    for serial, start in enumerate(range(0, len(photos), 2), start=1):
        urls = ",".join(f"{base_url}/photos/{p.name}" for p in photos[start : start + 2])
        rows.append(f'{serial}.,SKU{serial},"{urls}"')
    return "\n".join(rows) + "\n"


def run_cli(base_url: str, csv_path: Path, webhook_url: str) -> str:
    """`imgpipe upload CSV --wait`, its output shown live; returns the request id it printed."""
    command = [sys.executable, "-m", "imgpipe_cli", "upload", str(csv_path), "--webhook", webhook_url, "--wait",
               "--interval", "0.2"]
    print("$ imgpipe upload " + " ".join(command[4:]))
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "IMGPIPE_URL": base_url},
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    request_id = ""
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.startswith("request ") and not request_id:
            request_id = line.split()[1].rstrip(":")
    if process.wait() not in (0, 1) or not request_id:  # 1: finished with failed images
        raise RuntimeError(f"imgpipe upload failed (exit {process.returncode})")
    return request_id


def size_table(results: list[dict[str, object]]) -> str:
    lines = [f"{'#':>2}  {'input':>10}  {'output':>10}  {'ratio':>6}  {'size':>11}  status"]
    total_in = total_out = 0
    for item in results:
        bytes_in, bytes_out = int(item.get("bytes_in") or 0), int(item.get("bytes_out") or 0)
        total_in, total_out = total_in + bytes_in, total_out + bytes_out
        ratio = f"{bytes_out / bytes_in:.2f}" if bytes_in else "-"
        size = f"{item.get('width')}x{item.get('height')}"
        lines.append(f"{item['seq']:>2}  {bytes_in:>10,}  {bytes_out:>10,}  {ratio:>6}  {size:>11}  {item['status']}")
    if total_in:
        lines.append(f"{'all':>2}  {total_in:>10,}  {total_out:>10,}  {total_out / total_in:>6.2f}")
    return "\n".join(lines)


def main() -> int:
    run_dir = DEMO / time.strftime("run-%Y%m%d-%H%M%S")
    (run_dir / "site").mkdir(parents=True)
    shutil.copytree(PHOTOS, run_dir / "site" / "photos")
    azurite = Azurite(location=DEMO / "azurite").start()
    redis = RedisServer(directory=DEMO / "redis").start()
    files, files_url = serve_files(run_dir / "site")
    stack = AppStack(azurite, redis, run_dir, {
        "OUTPUT_DIR": str(run_dir / "site" / "processed"),
        "OUTPUT_PUBLIC_BASE_URL": f"{files_url}/processed",
    })
    try:
        stack.bootstrap()
        print("Starting the app on the local host…")
        stack.start_host()
        with running_receiver(TEST_WEBHOOK_SECRET) as receiver:
            csv_text = sample_csv(files_url)
            csv_path = run_dir / "products.csv"
            csv_path.write_text(csv_text)
            print(f"\nUploading this CSV to {stack.base_url}/upload with the imgpipe client:\n{csv_text}")
            request_id = run_cli(stack.base_url, csv_path, receiver.url)
            payload = receiver.wait_for_delivery()
            print(f"\nWebhook received (signature verified, delivery {receiver.deliveries[0]}):")
            print(json.dumps(payload, indent=2))
        print("\nStatus:")
        print(json.dumps(stack.status(request_id).json(), indent=2))
        print(f"\nOutput CSV (written by the client to {run_dir / 'products.output.csv'}):")
        print((run_dir / "products.output.csv").read_text())
        print("Sizes before and after (JPEG quality 50):")
        print(size_table(stack.status(request_id, include="images").json()["results"]))
        print(f"\nOutputs are in {run_dir / 'site' / 'processed'}; host log: {run_dir / 'host-0.log'}")
        return 0
    finally:
        stack.stop()
        files.shutdown()
        redis.stop()
        azurite.stop()


if __name__ == "__main__":
    raise SystemExit(main())
