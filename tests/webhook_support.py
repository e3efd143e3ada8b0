"""Helpers for the webhook tests: a real HTTP receiver on 127.0.0.1 and senders that sign like the CMSs do.

The signing here is written out independently of ``service.webhooks.signatures`` (so a bug there
cannot hide behind the same bug here).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.config import Settings
from service.domain import Scope

GHOST_SECRET = "ghost-secret-0123456789"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-secret-bytes-0123").decode()
OLD_STANDARD_SECRET = "whsec_" + base64.b64encode(b"rotated-out-secret-bytes").decode()
WORDPRESS_SECRET = "whsec_" + base64.b64encode(b"wordpress-secret-bytes-01").decode()
ARTICLE_HTML = ("<h1>Council votes</h1><p>The council voted on Tuesday to extend the bus lane &amp; "
                "to repave Main Street before winter.</p><script>alert('x')</script><p>Work starts in May.</p>")


def ghost_headers(body: bytes, secret: str = GHOST_SECRET, ts_ms: int | None = None) -> dict[str, str]:
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    digest = hmac.new(secret.encode(), body + str(ts).encode(), hashlib.sha256).hexdigest()
    return {"x-ghost-signature": f"sha256={digest}, t={ts}", "content-type": "application/json"}


def standard_headers(body: bytes, msg_id: str, secret: str = STANDARD_SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if ts is None else ts
    key = base64.b64decode(secret.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": f"v1,{sig}",
            "content-type": "application/json"}


def ghost_body(post_id: str = "64f0", author: dict[str, Any] | None = None) -> bytes:
    author = author or {"name": "Jane Doe", "profile_image": None}
    post = {"id": post_id, "title": "Council votes", "html": ARTICLE_HTML, "status": "published",
            "primary_author": author, "authors": [author]}
    return json.dumps({"post": {"current": post, "previous": {}}}).encode()


def wordpress_body(post_id: int = 42, avatar_url: str | None = None) -> bytes:
    return json.dumps({"type": "post.publish", "timestamp": int(time.time()), "data": {
        "site_url": "https://news.example", "post": {"id": post_id, "title": "Council votes", "content": ARTICLE_HTML,
                                                      "status": "publish"},
        "author": {"name": "Jane Doe", "avatar_url": avatar_url}}}).encode()


def standard_body(article_id: str = "a-1", **extra: Any) -> bytes:
    return json.dumps({"type": "article.published", "data": {"id": article_id, "title": "Council votes",
                                                             "html": ARTICLE_HTML, "byline": "Jane Doe", **extra}}).encode()


def verify_callback(headers: dict[str, str], body: bytes, secret: str, tolerance_s: int = 300) -> bool:
    """What a subscriber does with our callback (Standard Webhooks)."""
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > tolerance_s:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected.encode(), s.partition(",")[2].encode())
               for s in headers["webhook-signature"].split())


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; ``responses[path]`` is a list of (status, body) consumed in order, then 200."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    responses: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout_s: float = 20.0) -> list[Received]:
        return wait_until(lambda: len(self.at(path)) >= count and self.at(path), timeout_s, f"{count} x {path}")


def wait_until(condition: Callable[[], Any], timeout_s: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            with receiver.lock:
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                queued = receiver.responses.get(self.path) or []
                status, payload = queued.pop(0) if queued else (200, b"ok")
            gate = receiver.gates.get(self.path)
            if gate is not None:
                gate.wait(30)
            try:
                self.send_response(status)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client died while we held the answer back (the SIGKILL tests)

        do_GET = _answer  # noqa: N815 - http.server's naming
        do_POST = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            return

    return Handler


@contextmanager
def receiver_running() -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        for gate in receiver.gates.values():
            gate.set()
        server.shutdown()
        server.server_close()


TERMINAL = {"done", "dead"}


def webhook_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test", "database_url": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "queue_path": tmp_path / "queue.sqlite3", "bootstrap_api_key": False, "energy_backend": "cpu-time",
        "max_wait_s": 0.01, "queue_poll_max_s": 0.1,
        "webhook_secrets": {"ghost": [GHOST_SECRET], "standard": [STANDARD_SECRET, OLD_STANDARD_SECRET],
                            "wordpress": [WORDPRESS_SECRET]},
        "fetch_allow_hosts": ["127.0.0.1"], "private_allow_hosts": ["127.0.0.1"],
        "rate_limit_per_minute": 0,  # the tests poll GET /v1/jobs; rate limits are tested elsewhere
        "job_retry_base_s": 0.05, "job_max_attempts": 2, "callback_retry_base_s": 0.05, "callback_timeout_s": 5.0,
    }
    return Settings(**{**values, **overrides})


class Harness:
    def __init__(self, client: TestClient, receiver: Receiver) -> None:
        self.client = client
        self.receiver = receiver
        app: Any = client.app
        self.app = app
        self.admin = {"Authorization": "Bearer " + app.state.store.create_api_key("admin", [Scope.ADMIN])}

    def subscribe(self, path: str = "/callback") -> dict[str, Any]:
        response = self.client.post("/v1/webhooks/subscribers", json={"url": self.receiver.url(path)},
                                    headers=self.admin)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def send(self, source: str, body: bytes, headers: dict[str, str]) -> Any:
        return self.client.post(f"/v1/webhooks/{source}", content=body, headers=headers)

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/jobs/{job_id}", headers=self.admin)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_job(self, job_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
        return dict(wait_until(lambda: (j := self.job(job_id))["status"] in TERMINAL and j, timeout_s, f"job {job_id}"))

    def reports(self) -> list[dict[str, Any]]:
        items, _ = self.app.state.store.list_checks(None, 100, None)
        return list(items)
