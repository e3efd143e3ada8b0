"""A real ``bylinecheck worker`` process, killed with SIGKILL mid-job and restarted: nothing is lost and
nothing is doubled (one stored report, one signed callback).

The API runs in this process with its in-process consumer off; the worker is a subprocess sharing the
SQLite store and the huey SQLite queue file. Detectors in the worker are the ones registered from
``weights/`` (missing ones abstain with ``detector_unavailable``). The kill lands while the worker waits
for the headshot download, which the local HTTP server holds back until the worker is dead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.domain import Scope
from tests.fakes import FakeFaceDetector, FakeTextDetector, jpeg_bytes
from tests.webhook_support import (
    STANDARD_SECRET,
    Harness,
    Receiver,
    receiver_running,
    standard_body,
    standard_headers,
    verify_callback,
    wait_until,
    webhook_settings,
)

REPO = Path(__file__).resolve().parents[1]


class WorkerProcess:
    def __init__(self, tmp_path: Path, log: IO[bytes]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINECHECK_")}
        env.update({
            "BYLINECHECK_ENVIRONMENT": "test",
            "BYLINECHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "BYLINECHECK_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
            "BYLINECHECK_WEBHOOK_SECRETS": json.dumps({"standard": [STANDARD_SECRET]}),
            "BYLINECHECK_FETCH_ALLOW_HOSTS": '["127.0.0.1"]',
            "BYLINECHECK_PRIVATE_ALLOW_HOSTS": '["127.0.0.1"]',
            "BYLINECHECK_QUEUE_POLL_MAX_S": "0.1",
            "BYLINECHECK_ENERGY_BACKEND": "cpu-time",
            "BYLINECHECK_BOOTSTRAP_API_KEY": "false",
            "BYLINECHECK_FETCH_TIMEOUT_S": "30",
            "BYLINECHECK_CALLBACK_TIMEOUT_S": "1",
        })
        self.proc = subprocess.Popen([sys.executable, "-c", "from service.cli import app; app(['worker'])"],
                                     cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Harness, Path, IO[bytes]]]:
    settings = webhook_settings(tmp_path, queue_in_process=False, webhook_secrets={"standard": [STANDARD_SECRET]})
    with receiver_running() as receiver, (tmp_path / "worker.log").open("wb") as log:
        app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
        with TestClient(app) as client:
            yield Harness(client, receiver), tmp_path, log


def _gate(receiver: Receiver, path: str) -> threading.Event:
    gate = threading.Event()
    receiver.gates[path] = gate
    return gate


def _open(receiver: Receiver, path: str) -> None:
    receiver.gates.pop(path).set()


def _callbacks(receiver: Receiver) -> list[Any]:
    return receiver.at("/callback")


def test_worker_killed_mid_job_then_restarted_gives_one_report_and_one_callback(
        setup: tuple[Harness, Path, IO[bytes]]) -> None:
    h, tmp_path, log = setup
    sub = h.subscribe()
    h.receiver.responses["/slow.jpg"] = [(200, jpeg_bytes()), (200, jpeg_bytes())]
    _gate(h.receiver, "/slow.jpg")
    body = standard_body(headshot_url=h.receiver.url("/slow.jpg"))
    started = time.monotonic()
    job_id = h.send("standard", body, standard_headers(body, "msg_kill_1")).json()["job"]["id"]

    first = WorkerProcess(tmp_path, log)
    try:
        h.receiver.wait_for("/slow.jpg", timeout_s=40)  # the worker is inside the job, downloading
        assert h.job(job_id)["status"] == "running"
        first.kill()
    finally:
        first.stop()
    _open(h.receiver, "/slow.jpg")
    assert h.job(job_id)["status"] == "running"
    assert h.reports() == []
    assert _callbacks(h.receiver) == []

    second = WorkerProcess(tmp_path, log)
    try:
        job = h.wait_job(job_id)
        h.receiver.wait_for("/callback", timeout_s=20)
        elapsed = time.monotonic() - started
        time.sleep(0.5)
    finally:
        second.stop()
    assert job["status"] == "done"
    assert job["attempts"] == 2
    assert len(h.reports()) == 1
    assert h.reports()[0]["id"] == job["report_id"]
    assert len(_callbacks(h.receiver)) == 1
    call = _callbacks(h.receiver)[0]
    assert verify_callback(call.headers, call.body, sub["secret"])
    assert call.json()["data"]["report"]["id"] == job["report_id"]
    print(f"job done {elapsed:.2f} s after the event, across a SIGKILL and a restart")


def test_worker_killed_during_the_callback_resends_the_same_webhook_id(
        setup: tuple[Harness, Path, IO[bytes]]) -> None:
    h, tmp_path, log = setup
    sub = h.subscribe()
    _gate(h.receiver, "/callback")
    body = standard_body()
    job_id = h.send("standard", body, standard_headers(body, "msg_kill_2")).json()["job"]["id"]

    first = WorkerProcess(tmp_path, log)
    try:
        h.receiver.wait_for("/callback", timeout_s=40)  # the POST is in flight
        first.kill()
    finally:
        first.stop()
    _open(h.receiver, "/callback")
    assert h.job(job_id)["status"] == "done"

    second = WorkerProcess(tmp_path, log)
    try:
        calls = h.receiver.wait_for("/callback", 2, timeout_s=30)  # after the first lease ran out
        time.sleep(0.5)
        delivered = wait_until(lambda: _outbox_status(h) == "sent" and True, 10, "outbox sent")
    finally:
        second.stop()
    assert delivered
    assert len(_callbacks(h.receiver)) == 2
    assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"]
    assert all(verify_callback(c.headers, c.body, sub["secret"]) for c in calls)
    assert len(h.reports()) == 1


def _outbox_status(h: Harness) -> str:
    from sqlalchemy import text

    with h.app.state.store.session() as session:
        return str(session.execute(text("select status from webhook_outbox")).scalar_one())


def test_api_reenqueues_open_jobs_on_start(tmp_path: Path) -> None:
    """Crash recovery on service start: a job left ``queued`` (its queue entry lost) is run on start."""
    settings = webhook_settings(tmp_path, webhook_secrets={"standard": [STANDARD_SECRET]}, queue_in_process=False)
    body = standard_body()
    app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(app) as client:
        job_id = client.post("/v1/webhooks/standard", content=body,
                             headers=standard_headers(body, "msg_recover")).json()["job"]["id"]
    (tmp_path / "queue.sqlite3").unlink()  # the queue is lost; the store is not
    app = create_app(webhook_settings(tmp_path, webhook_secrets={"standard": [STANDARD_SECRET]}),
                     detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(app) as client:
        key = {"Authorization": "Bearer " + app.state.store.create_api_key("k", [Scope.CHECK])}
        job = wait_until(lambda: (j := client.get(f"/v1/jobs/{job_id}", headers=key).json())["status"] == "done" and j)
    assert job["report_id"] is not None
