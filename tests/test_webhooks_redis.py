"""The scale-out queue backend: a job runs through RedisHuey against a real ``redis-server``.

The server is Debian's ``redis-server`` (``scripts/test.sh`` installs it; this test installs it too when
run as root), started on a free loopback port with persistence off, and stopped afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from huey import RedisHuey

from service.api import create_app
from tests.fakes import FakeFaceDetector, FakeTextDetector
from tests.webhook_support import (
    STANDARD_SECRET,
    Harness,
    receiver_running,
    standard_body,
    standard_headers,
    verify_callback,
    webhook_settings,
)


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=False, capture_output=True, timeout=300)
        found = shutil.which("redis-server")
    if found is None:
        pytest.fail("redis-server is missing: apt-get install redis-server (scripts/test.sh does)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_job_runs_through_redis(tmp_path: Path, redis_url: str) -> None:
    settings = webhook_settings(tmp_path, redis_url=redis_url)
    with receiver_running() as receiver:
        app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
        with TestClient(app) as client:
            h = Harness(client, receiver)
            assert isinstance(app.state.webhooks.queue.huey, RedisHuey)
            sub = h.subscribe()
            body = standard_body()
            response = h.send("standard", body, standard_headers(body, "msg_redis_1", secret=STANDARD_SECRET))
            job = h.wait_job(response.json()["job"]["id"])
            call = receiver.wait_for("/callback")[0]
            assert job["status"] == "done"
            assert len(h.reports()) == 1
            assert verify_callback(call.headers, call.body, sub["secret"])
    assert not (tmp_path / "queue.sqlite3").exists()
