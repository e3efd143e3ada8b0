"""A real ``bylinecheck worker`` subprocess for the SIGKILL tests, and the app it shares a store with.

The API runs in the test process with its in-process consumer off; the worker is a subprocess sharing
the SQLite store and the huey SQLite queue file. Detectors in the worker are the ones registered from
``weights/`` (missing ones abstain with ``detector_unavailable``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from fastapi.testclient import TestClient

from service.api import create_app
from tests.fakes import FakeFaceDetector, FakeTextDetector
from tests.webhook_support import STANDARD_SECRET, Harness, Receiver, receiver_running, webhook_settings

REPO = Path(__file__).resolve().parents[1]


class WorkerProcess:
    def __init__(self, tmp_path: Path, log: IO[bytes], threads: int = 1) -> None:
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
            "BYLINECHECK_FETCH_TIMEOUT_S": "10",  # a job lease: 10 + 5 + 1 s
            "BYLINECHECK_REQUEST_DEADLINE_S": "5",
            "BYLINECHECK_JOB_LEASE_MARGIN_S": "1",
            "BYLINECHECK_CALLBACK_TIMEOUT_S": "1",
            "BYLINECHECK_QUEUE_WORKERS": str(threads),
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


@contextmanager
def api_and_receiver(tmp_path: Path) -> Iterator[tuple[Harness, IO[bytes]]]:
    settings = webhook_settings(tmp_path, queue_in_process=False)
    with receiver_running() as receiver, (tmp_path / "worker.log").open("wb") as log:
        app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
        with TestClient(app) as client:
            yield Harness(client, receiver), log


def hold(receiver: Receiver, path: str) -> threading.Event:
    gate = threading.Event()
    receiver.gates[path] = gate
    return gate


def release(receiver: Receiver, path: str) -> None:
    receiver.gates.pop(path).set()


def callbacks(receiver: Receiver) -> list[Any]:
    return receiver.at("/callback")
