"""Webhook latency: POST /v1/webhooks/standard → 202, → job done, → signed callback received.

Runs the app in-process (its huey worker threads on, SQLite queue by default, RedisHuey with ``--redis``)
with the detectors registered from ``weights/`` and a callback receiver on 127.0.0.1. Events are sent one
after another, so the numbers include the queue's idle polling (``--poll-max-s``). Prints p50/p95/max.
A benchmark, not a test: it asserts nothing.

    .venv/bin/python -m benchmarks.bench_webhooks --events 30 [--poll-max-s 1.0] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.domain import Scope
from service.webhooks.signatures import new_secret, sign_standard

TEXT = ("The council voted on Tuesday to extend the bus lane along Main Street and to repave the square "
        "before winter. Work starts in May and is expected to last eleven weeks. ") * 20


def _receiver() -> tuple[ThreadingHTTPServer, dict[str, float]]:
    arrivals: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            arrivals[json.loads(body)["data"]["job_id"]] = time.perf_counter()
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server, arrivals


def _summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{name:<22} p50 {statistics.median(ms):8.1f} ms   p95 {p95:8.1f} ms   max {ms[-1]:8.1f} ms"


def run(events: int, poll_max_s: float, redis: str | None) -> None:
    secret = new_secret()
    server, arrivals = _receiver()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(environment="test", database_url=f"sqlite:///{Path(tmp) / 'db.sqlite3'}",
                            queue_path=Path(tmp) / "queue.sqlite3", bootstrap_api_key=False, redis_url=redis,
                            queue_poll_max_s=poll_max_s, webhook_secrets={"standard": [secret]},
                            private_allow_hosts=["127.0.0.1"], energy_backend="cpu-time",
                            rate_limit_per_minute=0)
        app = create_app(settings)
        with TestClient(app) as client:
            admin = {"Authorization": "Bearer " + app.state.store.create_api_key("bench", [Scope.ADMIN])}
            client.post("/v1/webhooks/subscribers", headers=admin,
                        json={"url": f"http://127.0.0.1:{server.server_address[1]}/cb"})
            acks, dones, callbacks = [], [], []
            for n in range(events):
                body = json.dumps({"type": "article", "data": {"id": str(n), "text": TEXT, "byline": "Jane Doe"}}).encode()
                started = time.perf_counter()
                job = client.post("/v1/webhooks/standard", content=body,
                                  headers={**sign_standard(secret, f"msg_{n}", body), "content-type": "application/json"}
                                  ).json()["job"]
                acks.append(time.perf_counter() - started)
                while client.get(f"/v1/jobs/{job['id']}", headers=admin).json()["status"] not in {"done", "dead"}:
                    time.sleep(0.005)
                dones.append(time.perf_counter() - started)
                while job["id"] not in arrivals:
                    time.sleep(0.005)
                callbacks.append(arrivals[job["id"]] - started)
    server.shutdown()
    backend = "redis" if redis else "sqlite"
    print(f"{events} events, queue {backend}, poll max {poll_max_s} s, detectors from weights/")  # noqa: T201
    for name, values in (("202 accepted", acks), ("job done", dones), ("callback received", callbacks)):
        print(_summary(name, values))  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--poll-max-s", type=float, default=1.0)
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    run(args.events, args.poll_max_s, args.redis)


if __name__ == "__main__":
    main()
