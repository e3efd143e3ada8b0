"""The docker-compose topology without Docker: real PostgreSQL and Redis, two API processes, one worker.

Caveats first: this starts real servers from Debian packages (installed with apt-get when missing and
root, else skipped; see ``tests/servers.py``) and four ``bylinecheck`` processes, so it takes tens of
seconds. It mirrors ``docker-compose.yml``: ``bylinecheck migrate`` once, then the ``api`` replicas
(``serve``, production settings, no in-process queue) and the ``worker`` share one database and one
Redis queue. PostgreSQL runs in a non-UTC time zone so that naive datetimes would show.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.servers import PostgresServer, RedisServer, ServiceProcess, free_port, run_cli, service_env

STANDARD_SECRET = "whsec_" + base64.b64encode(b"deploy-topology-standard-secret").decode()
ARTICLE = ("The council voted on Tuesday to extend the bus lane and to repave Main Street before winter. "
           "Work starts in May, the mayor said, and will take six weeks.")


@dataclass
class CallbackReceiver:
    """A subscriber on 127.0.0.1 that records every POST and answers 200."""

    port: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/bylinecheck"

    def bodies(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return list(self.received)


@dataclass
class Topology:
    postgres: PostgresServer
    apis: list[str]
    api_processes: list[ServiceProcess]
    worker: ServiceProcess
    receiver: CallbackReceiver
    env: dict[str, str]
    token: str

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _receiver_handler(receiver: CallbackReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with receiver.lock:
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            return

    return Handler


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _receiver_handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def topology(receiver: CallbackReceiver) -> Iterator[Topology]:
    with PostgresServer.start() as postgres, RedisServer.start() as redis:
        env = service_env({
            "BYLINECHECK_ENVIRONMENT": "production",
            "BYLINECHECK_SECRET_KEY": "deploy-topology-secret-not-a-placeholder",
            "BYLINECHECK_DATABASE_URL": postgres.url,
            "BYLINECHECK_REDIS_URL": redis.url,
            "BYLINECHECK_QUEUE_IN_PROCESS": "false",
            "BYLINECHECK_BOOTSTRAP_API_KEY": "false",
            "BYLINECHECK_ENERGY_BACKEND": "cpu-time",
            "BYLINECHECK_KEEP_HEADSHOT_IMAGES": "true",
            "BYLINECHECK_WEBHOOK_SECRETS": json.dumps({"standard": [STANDARD_SECRET]}),
            "BYLINECHECK_PRIVATE_ALLOW_HOSTS": json.dumps(["127.0.0.1"]),
            "BYLINECHECK_QUEUE_POLL_MAX_S": "0.2",
            "BYLINECHECK_MAX_WAIT_S": "0.005",
        })
        run_cli(["migrate"], env)
        token = run_cli(["keys", "create", "--name", "topology", "--scope", "check", "--scope", "admin"], env).strip()
        ports = [free_port(), free_port()]
        processes = [ServiceProcess.start(["serve", "--host", "127.0.0.1", "--port", str(p)], env, f"api{i + 1}")
                     for i, p in enumerate(ports)]
        worker = ServiceProcess.start(["worker"], env, "worker")
        processes.append(worker)
        try:
            apis = [f"http://127.0.0.1:{p}" for p in ports]
            for process, api in zip(processes, apis, strict=False):
                process.wait_http(f"{api}/healthz")
            _wait_for_output(worker, "worker ready")
            yield Topology(postgres, apis, processes[:2], worker, receiver, env, token)
        finally:
            for process in processes:
                process.send()
            for process in processes:
                process.stop()


def _wait_for_output(process: ServiceProcess, text: str, timeout_s: float = 150.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in process.output():
        process.assert_running(process.name)
        if time.monotonic() > deadline:
            pytest.fail(f"{process.name} never logged {text!r}:\n{process.output()[-4000:]}")
        time.sleep(0.1)


def _poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {value}")
        time.sleep(0.2)


def _headshot_png() -> bytes:
    image = Image.new("RGB", (96, 96), (180, 140, 120))
    image.paste((60, 40, 30), (30, 30, 66, 70))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _post_check(api: str, auth: dict[str, str], byline: str, key: str | None = None) -> httpx.Response:
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    return httpx.post(f"{api}/v1/checks", headers=headers, timeout=60.0,
                      data={"text": ARTICLE, "byline": byline},
                      files=[("headshots", ("headshot.png", _headshot_png(), "image/png"))])


def test_a_check_through_one_api_is_read_through_the_other(topology: Topology) -> None:
    api1, api2 = topology.apis
    created = _post_check(api1, topology.auth(), "Drew Ortiz")
    assert created.status_code == 200, created.text
    report = created.json()
    assert report["verdict"] in {"likely_ai", "uncertain", "likely_human", "abstain"}
    assert "joules" in report["energy"]  # None when no detector ran (weights not installed): "not measured"

    fetched = httpx.get(f"{api2}/v1/checks/{report['id']}", headers=topology.auth(), timeout=10.0)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == report
    listed = httpx.get(f"{api2}/v1/checks", params={"byline": "  drew ORTIZ "}, headers=topology.auth(), timeout=10.0)
    assert [r["id"] for r in listed.json()["items"]] == [report["id"]]
    stored = topology.postgres.query("SELECT count(*), bool_and(image IS NOT NULL) FROM headshots")
    assert stored == [(1, True)]


def test_an_idempotency_key_holds_across_replicas(topology: Topology) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda api: _post_check(api, topology.auth(), "Sam Lee", key="same-article-1"),
                                topology.apis))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    rows = topology.postgres.query("SELECT count(*) FROM checks WHERE idempotency_key = 'same-article-1'")
    assert rows == [(1,)]


def _standard_headers(body: bytes, msg_id: str) -> dict[str, str]:
    """Standard Webhooks signing, written out here (independent of ``service.webhooks.signatures``)."""
    stamp = str(int(time.time()))
    key = base64.b64decode(STANDARD_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": "v1," + base64.b64encode(mac).decode(),
            "content-type": "application/json"}


def _verifies(headers: dict[str, str], body: bytes, secret: str) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s.partition(",")[2]) for s in headers["webhook-signature"].split())


def test_a_signed_webhook_is_checked_by_the_worker_and_called_back(topology: Topology) -> None:
    api1, api2 = topology.apis
    subscriber = httpx.post(f"{api2}/v1/webhooks/subscribers", json={"url": topology.receiver.url},
                            headers=topology.auth(), timeout=10.0)
    assert subscriber.status_code == 201, subscriber.text
    body = json.dumps({"type": "article.published", "data": {
        "id": "story-77", "title": "Council votes", "html": f"<p>{ARTICLE}</p>", "byline": "Jane Doe"}}).encode()
    headers = _standard_headers(body, "msg_deploy_topology_1")

    received = httpx.post(f"{api1}/v1/webhooks/standard", content=body, headers=headers, timeout=10.0)
    assert received.status_code == 202, received.text
    job_id = received.json()["job"]["id"]
    replay = httpx.post(f"{api2}/v1/webhooks/standard", content=body, headers=headers, timeout=10.0)
    assert (replay.status_code, replay.json()["duplicate"], replay.json()["job"]["id"]) == (200, True, job_id)

    job = _poll(lambda: httpx.get(f"{api2}/v1/jobs/{job_id}", headers=topology.auth(), timeout=10.0).json(),
                lambda j: j.get("status") in {"done", "dead"}, 90.0, f"job {job_id}")
    assert job["status"] == "done", job
    # The worker process ran it; the API processes only enqueued (production: no in-process queue).
    assert "bylinecheck.run_job" in topology.worker.output()
    assert not any("bylinecheck.run_job" in api.output() for api in topology.api_processes)
    report = httpx.get(f"{api1}/v1/checks/{job['report_id']}", headers=topology.auth(), timeout=10.0)
    assert report.status_code == 200, report.text
    assert report.json()["byline"] == "Jane Doe"

    callbacks = _poll(topology.receiver.bodies, lambda got: len(got) >= 1, 60.0, "the check.completed callback")
    callback_headers, callback_body = callbacks[0]
    assert _verifies(callback_headers, callback_body, subscriber.json()["secret"])
    event = json.loads(callback_body)
    assert event["type"] == "check.completed"
    assert json.dumps(event).count(job["report_id"]) >= 1


def test_the_schema_is_at_every_head_with_timezone_aware_columns(topology: Topology) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from service.store.repository import MIGRATIONS_DIR

    run_cli(["migrate"], topology.env)  # idempotent: a second upgrade changes nothing
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    assert {row[0] for row in topology.postgres.query("SELECT version_num FROM alembic_version")} == heads
    types = dict(topology.postgres.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'checks'"))
    assert types["created_at"] == "timestamp with time zone"
    assert types["report"] == "json"


def test_the_store_on_postgresql_pages_fingerprints_purges_and_dedupes(topology: Topology) -> None:
    from datetime import UTC, datetime, timedelta

    from service.store import Store
    from service.store.repository import HeadshotRecord

    store = Store(topology.postgres.url, "pepper")
    base = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def save(i: int, key: str | None = None, report_id: str | None = None) -> str:
        report = {"id": report_id or f"chk_pg_{i}", "created_at": (base + timedelta(seconds=i // 2)).isoformat(),
                  "byline": "Pat Page", "verdict": "abstain", "energy": {"joules": None}, "text": None,
                  "detectors": {"text": "test"}}
        shot = HeadshotRecord(idx=0, sha256="ab" * 32, phash="f" * 16, embedding=b"\x01" * 8, image=b"png", verdict="abstain")
        return store.save_check(report, request_hash="h", api_key_id="k1" if key else None, idempotency_key=key,
                                source="test", headshots=[shot]).id

    try:
        for i in range(5):
            save(i)
        pages, cursor = [], None
        while True:
            page, cursor = store.list_checks("pat PAGE", 2, cursor)
            pages.append([r["id"] for r in page])
            if cursor is None:
                break
        assert pages == [["chk_pg_4", "chk_pg_3"], ["chk_pg_2", "chk_pg_1"], ["chk_pg_0"]]  # ties broken by id
        assert store.get_check("chk_pg_3")["created_at"] == (base + timedelta(seconds=1)).isoformat()
        candidates = [f for f in store.headshot_fingerprints("someone else") if f.check_id.startswith("chk_pg_")]
        assert len(candidates) == 5
        assert {(f.byline, f.embedding) for f in candidates} == {("Pat Page", b"\x01" * 8)}
        assert store.purge_headshot_images(base + timedelta(days=1)) == 5
        assert save(9, key="dup", report_id="chk_pg_a") == save(9, key="dup", report_id="chk_pg_b") == "chk_pg_a"
    finally:
        store.close()


def test_a_pg_dump_backup_restores_into_a_fresh_database(topology: Topology, tmp_path: Path) -> None:
    """The backup procedure of docs/deploy.md: pg_dump -Fc, then pg_restore into an empty database."""
    from tests.servers import postgres_bin_dir

    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    pg = topology.postgres
    env = {**os.environ, "PGPASSWORD": pg.password}
    where = ["-h", "127.0.0.1", "-p", str(pg.port), "-U", pg.user]
    dump = tmp_path / "bylinecheck.dump"
    subprocess.run([str(bin_dir / "pg_dump"), *where, "-Fc", "-f", str(dump), pg.database], env=env, check=True,
                   capture_output=True, timeout=60)
    subprocess.run([str(bin_dir / "createdb"), *where, "restored"], env=env, check=True, capture_output=True, timeout=60)
    subprocess.run([str(bin_dir / "pg_restore"), *where, "-d", "restored", "--no-owner", str(dump)], env=env,
                   check=True, capture_output=True, timeout=60)
    count = "SELECT (SELECT count(*) FROM checks), (SELECT count(*) FROM alembic_version)"
    restored = pg.query_database("restored", count)
    assert restored == pg.query(count)
    assert restored[0][0] > 0


def test_replicas_migrating_at_once_serialise_on_postgresql(topology: Topology) -> None:
    """Two ``bylinecheck migrate`` on an empty database at the same moment: both succeed, one schema."""
    import psycopg

    pg = topology.postgres
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE race")
    env = {**topology.env, "BYLINECHECK_DATABASE_URL": pg.url.rsplit("/", 1)[0] + "/race"}
    with ThreadPoolExecutor(max_workers=2) as pool:
        outputs = list(pool.map(lambda _: run_cli(["migrate"], env), range(2)))
    assert len(outputs) == 2
    assert pg.query_database("race", "SELECT count(*) FROM alembic_version") == pg.query("SELECT count(*) FROM alembic_version")
