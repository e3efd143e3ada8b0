"""A real ``bylinecheck worker`` process killed with SIGKILL while its callback POST is in flight: the
restarted worker sends the callback again with the same ``webhook-id`` (what receivers deduplicate on),
after the first worker's lease on the outbox row ran out; the report is stored once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import text

from tests.webhook_support import Harness, standard_body, standard_headers, verify_callback, wait_until
from tests.webhook_worker_support import WorkerProcess, api_and_receiver, callbacks, hold, release


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Harness, Path, IO[bytes]]]:
    with api_and_receiver(tmp_path) as (harness, log):
        yield harness, tmp_path, log


def test_worker_killed_during_the_callback_resends_the_same_webhook_id(
        setup: tuple[Harness, Path, IO[bytes]]) -> None:
    h, tmp_path, log = setup
    sub = h.subscribe()
    hold(h.receiver, "/callback")
    body = standard_body()
    job_id = h.send("standard", body, standard_headers(body, "msg_kill_2")).json()["job"]["id"]

    first = WorkerProcess(tmp_path, log)
    try:
        h.receiver.wait_for("/callback", timeout_s=40)  # the POST is in flight
        first.kill()
    finally:
        first.stop()
    release(h.receiver, "/callback")
    assert h.job(job_id)["status"] == "done"

    second = WorkerProcess(tmp_path, log)
    try:
        calls = h.receiver.wait_for("/callback", 2, timeout_s=60)  # after the first lease ran out
        time.sleep(0.5)
        delivered = wait_until(lambda: _outbox_status(h) == "sent" and True, 10, "outbox sent")
    finally:
        second.stop()
    assert delivered
    assert len(callbacks(h.receiver)) == 2
    assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"]
    assert all(verify_callback(c.headers, c.body, sub["secret"]) for c in calls)
    assert len(h.reports()) == 1


def _outbox_status(h: Harness) -> str:
    with h.app.state.store.session() as session:
        return str(session.execute(text("select status from webhook_outbox")).scalar_one())
