"""Faults: the service SIGKILLed mid-check, a database held locked by another process, a full database.

Proved here: every check answered 200 before the kill is stored and readable after a restart; retrying
every request (same Idempotency-Key) after the restart yields exactly one stored report per key; a write
lock held elsewhere gives 503 ``store_busy`` (with Retry-After) after the busy timeout, not a 500; a full
database gives 507 ``store_full``, and the service recovers once there is room again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from service.api import create_app
from service.config import Settings
from service.domain import Scope
from service.store import Store
from service.store.models import CheckRow
from tests.fakes import FakeFaceDetector, FakeTextDetector
from tests.live import start_child

TEXT = "The council met on Tuesday. It voted to repair the bridge on Main Street before winter comes. Item {i}."


def _env(tmp: Path) -> dict[str, str]:
    return {"BYLINECHECK_ENVIRONMENT": "test", "BYLINECHECK_DATABASE_URL": f"sqlite:///{tmp / 'kill.sqlite3'}",
            "BYLINECHECK_BOOTSTRAP_API_KEY": "false", "BYLINECHECK_ENERGY_BACKEND": "cpu-time",
            "BYLINECHECK_QUEUE_PATH": str(tmp / "queue.sqlite3"), "BYLINECHECK_RATE_LIMIT_PER_MINUTE": "0",
            "BYLINECHECK_MAX_WAIT_S": "0.01", "BYLINECHECK_FAKE_FORWARD_DELAY_S": "0.05"}


async def _fire(url: str, token: str, keys: list[str], answered: dict[str, str], concurrency: int = 8) -> None:
    """Send a check per key (``concurrency`` at a time) until done or the server dies; record the 200s."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            key = queue.get_nowait()
            try:
                resp = await http.post("/v1/checks", json={"text": TEXT.format(i=key)},
                                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
            except httpx.HTTPError:
                continue
            if resp.status_code == 200:
                answered[key] = resp.json()["id"]

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))


def test_sigkill_mid_checks_loses_nothing_and_retries_do_not_duplicate(tmp_path: Path) -> None:
    env = _env(tmp_path)
    store = Store(env["BYLINECHECK_DATABASE_URL"], Settings().secret_key.get_secret_value())
    store.migrate()
    token = store.create_api_key("kill", [Scope.CHECK])
    keys = [f"k-{i}" for i in range(80)]
    answered: dict[str, str] = {}
    server = start_child(env, tmp_path / "server.log")

    async def kill_when_some_answered() -> None:
        firing = asyncio.create_task(_fire(server.url, token, keys, answered))
        while len(answered) < 20 and not firing.done():
            await asyncio.sleep(0.01)
        server.kill()  # SIGKILL with requests in flight: no shutdown hooks, no flush
        await firing

    asyncio.run(kill_when_some_answered())
    assert 20 <= len(answered) < len(keys), "the kill should land mid-run"
    assert server.process.returncode == -9

    restarted = start_child(env, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=restarted.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            for key, check_id in answered.items():  # every 200 was stored before it was sent
                assert http.get(f"/v1/checks/{check_id}").status_code == 200, key
        retried: dict[str, str] = {}
        asyncio.run(_fire(restarted.url, token, keys, retried))
    finally:
        restarted.stop()
    assert set(retried) == set(keys)
    assert all(retried[k] == answered[k] for k in answered), "a replay returns the stored report"
    with store.session() as session:
        rows = session.execute(select(CheckRow.idempotency_key, func.count()).group_by(CheckRow.idempotency_key)).all()
    store.close()
    counts = dict(rows)
    assert set(counts) == set(keys)
    assert set(counts.values()) == {1}, "exactly one report per request"


LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE api_keys SET name = name")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def _app(settings: Settings, **update: Any) -> TestClient:
    app = create_app(settings.model_copy(update=update),
                     detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    return TestClient(app)


def test_database_locked_by_another_process_is_503_store_busy(settings: Settings, tmp_path: Path) -> None:
    with _app(settings, store_busy_timeout_s=0.5) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        auth = {"Authorization": f"Bearer {store.create_api_key('t', [Scope.CHECK])}"}
        assert client.post("/v1/checks", json={"text": TEXT.format(i=0)}, headers=auth).status_code == 200
        db = settings.database_url.removeprefix("sqlite:///")
        holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, db, "4"], stdout=subprocess.PIPE)
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == b"locked"
            started = time.monotonic()
            resp = client.post("/v1/checks", json={"text": TEXT.format(i=1)}, headers=auth)
            waited = time.monotonic() - started
        finally:
            holder.wait(timeout=30)
            holder.stdout.close()  # type: ignore[union-attr]
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "store_busy"
        assert int(resp.headers["Retry-After"]) >= 1
        assert 0.4 < waited < 3.5, "waited the busy timeout, not forever"
        assert client.post("/v1/checks", json={"text": TEXT.format(i=2)}, headers=auth).status_code == 200


def _cap_pages(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    """SQLite's own quota: with the file at its page cap every write fails with SQLITE_FULL, as on a full disk."""
    pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
    dbapi_connection.execute(f"PRAGMA max_page_count={pages}")


def test_full_database_is_507_store_full_and_recovers(settings: Settings) -> None:
    with _app(settings) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        auth = {"Authorization": f"Bearer {store.create_api_key('t', [Scope.CHECK])}"}
        big = {"text": (TEXT.format(i=0) + " ") * 400}
        event.listen(store.engine, "connect", _cap_pages)
        store.engine.dispose()  # new connections get the cap
        responses = [client.post("/v1/checks", json={**big, "byline": f"A{i}"}, headers=auth) for i in range(3)]
        assert [r.status_code for r in responses][-1] == 507, [r.text for r in responses]
        assert responses[-1].json()["error"]["code"] == "store_full"
        assert client.get("/healthz").status_code == 200
        event.remove(store.engine, "connect", _cap_pages)
        store.engine.dispose()
        assert client.post("/v1/checks", json=big, headers=auth).status_code == 200


def _can_mount() -> bool:
    probe = Path("/proc/self/status")
    return probe.exists() and subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0"


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a tiny tmpfs")
def test_full_disk_under_the_database_is_507(settings: Settings, tmp_path: Path) -> None:
    """The real thing: the database on a 2 MiB tmpfs, filled up by another file."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mount is not permitted here")
    try:
        with _app(settings, database_url=f"sqlite:///{mount / 'db.sqlite3'}") as client:
            store = client.app.state.store  # type: ignore[attr-defined]
            auth = {"Authorization": f"Bearer {store.create_api_key('t', [Scope.CHECK])}"}
            filler = mount / "filler"
            with filler.open("wb") as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                        fh.flush()
                except OSError:
                    pass
            big = {"text": (TEXT.format(i=0) + " ") * 400}
            codes = [client.post("/v1/checks", json={**big, "byline": f"B{i}"}, headers=auth).status_code
                     for i in range(3)]
            assert 507 in codes, codes
            assert all(c in (200, 507) for c in codes), codes
            filler.unlink()
            assert client.post("/v1/checks", json=big, headers=auth).status_code == 200
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
