"""A real ``bylinecheck worker`` process, killed with SIGKILL mid-job and restarted: nothing is lost and
nothing is doubled (one stored report and one signed callback per event, for each source).

The kill lands while the worker's three threads wait for the headshot downloads, which the local HTTP
server holds back until the worker is dead. See ``tests/webhook_worker_support.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.fakes import jpeg_bytes
from tests.webhook_support import (
    WORDPRESS_SECRET,
    Harness,
    ghost_body,
    ghost_headers,
    standard_body,
    standard_headers,
    verify_callback,
    wordpress_body,
)
from tests.webhook_worker_support import WorkerProcess, api_and_receiver, callbacks, hold, release

SOURCES = ("ghost", "wordpress", "standard")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Harness, Path, IO[bytes]]]:
    with api_and_receiver(tmp_path) as (harness, log):
        yield harness, tmp_path, log


def _events(h: Harness) -> dict[str, tuple[bytes, dict[str, str]]]:
    """One event per source, each with a headshot URL that the receiver holds back (``/<source>.jpg``)."""
    ghost = ghost_body(author={"name": "Jane Doe", "profile_image": h.receiver.url("/ghost.jpg")})
    wordpress = wordpress_body(avatar_url=h.receiver.url("/wordpress.jpg"))
    standard = standard_body(headshot_url=h.receiver.url("/standard.jpg"))
    return {"ghost": (ghost, ghost_headers(ghost)),
            "wordpress": (wordpress, standard_headers(wordpress, "wp-kill-1", secret=WORDPRESS_SECRET)),
            "standard": (standard, standard_headers(standard, "msg_kill_1"))}


def test_worker_killed_mid_job_then_restarted_gives_one_report_and_one_callback_per_source(
        setup: tuple[Harness, Path, IO[bytes]]) -> None:
    h, tmp_path, log = setup
    sub = h.subscribe()
    for source in SOURCES:
        h.receiver.responses[f"/{source}.jpg"] = [(200, jpeg_bytes()), (200, jpeg_bytes())]
        hold(h.receiver, f"/{source}.jpg")
    started = time.monotonic()
    job_ids = {source: h.send(source, body, headers).json()["job"]["id"]
               for source, (body, headers) in _events(h).items()}

    first = WorkerProcess(tmp_path, log, threads=3)
    try:
        for source in SOURCES:  # every job is inside its check, downloading the headshot
            h.receiver.wait_for(f"/{source}.jpg", timeout_s=40)
        assert {h.job(j)["status"] for j in job_ids.values()} == {"running"}
        first.kill()
    finally:
        first.stop()
    for source in SOURCES:
        release(h.receiver, f"/{source}.jpg")
    assert {h.job(j)["status"] for j in job_ids.values()} == {"running"}
    assert h.reports() == []
    assert callbacks(h.receiver) == []

    second = WorkerProcess(tmp_path, log)
    try:
        jobs = {source: h.wait_job(job_id, timeout_s=60) for source, job_id in job_ids.items()}
        h.receiver.wait_for("/callback", 3, timeout_s=30)
        elapsed = time.monotonic() - started
        time.sleep(0.5)
    finally:
        second.stop()
    assert {(j["status"], j["attempts"]) for j in jobs.values()} == {("done", 2)}
    assert sorted(r["id"] for r in h.reports()) == sorted(j["report_id"] for j in jobs.values())
    calls = callbacks(h.receiver)
    assert len(calls) == 3
    assert all(verify_callback(c.headers, c.body, sub["secret"]) for c in calls)
    assert sorted(c.json()["data"]["report"]["id"] for c in calls) == sorted(j["report_id"] for j in jobs.values())
    assert all(len(h.app.state.store.get_check(j["report_id"])["headshots"]) == 1 for j in jobs.values())
    print(f"3 jobs done {elapsed:.2f} s after the events, across a SIGKILL and a restart")
