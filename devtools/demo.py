"""`make demo`: a sample job end to end on the embedded defaults.

Starts Azurite and Redis (free ports, data under .data/demo), the app on the local host, a local
HTTP server for the sample photos (and the compressed outputs), and a webhook receiver that verifies
the signature. Uploads a sample CSV, shows progress, then prints the webhook, the status, the output
CSV and a table of sizes before and after.
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

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


def show_progress(stack: AppStack, request_id: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        document = stack.status(request_id).json()
        done, failed, images = document["done"], document["failed"], document["images"]
        line = f"  {document['status']:<10} {done} done, {failed} failed of {images}"
        if line != last:
            print(line)
            last = line
        if document["status"] == "Completed":
            return
        time.sleep(0.2)
    raise TimeoutError("the demo job did not complete in time")


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
            print(f"\nUploading this CSV to {stack.base_url}/upload:\n{csv_text}")
            response = stack.upload(csv_text, webhook_url=receiver.url)
            print(f"→ {response.status_code} {response.reason}  Location: {response.headers.get('Location')}")
            print(json.dumps(response.json(), indent=2))
            response.raise_for_status()
            request_id = response.json()["request_id"]
            print("\nProgress:")
            show_progress(stack, request_id)
            payload = receiver.wait_for_delivery()
            print(f"\nWebhook received (signature verified, delivery {receiver.deliveries[0]}):")
            print(json.dumps(payload, indent=2))
        print("\nStatus:")
        print(json.dumps(stack.status(request_id).json(), indent=2))
        print("\nOutput CSV:")
        print(requests.get(f"{stack.base_url}/status/{request_id}", headers={"Accept": "text/csv"}, timeout=30).text)
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
