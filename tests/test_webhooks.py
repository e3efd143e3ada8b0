"""Webhooks end to end in one process: real signatures, real SQLite, real huey (SQLite file) consumer
threads inside the app, a real HTTP receiver on 127.0.0.1 for callbacks and headshots.

Fakes: only the detectors' forward passes (tests/fakes.py)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from service.api import create_app
from service.domain import Scope
from service.webhooks.errors import InvalidSignatureError, MissingSignatureError, StaleTimestampError, UnsafeUrlError
from service.webhooks.fetch import check_url
from service.webhooks.payloads import html_to_text
from service.webhooks.runner import backoff_s
from service.webhooks.signatures import sign_standard, verify_ghost, verify_standard
from tests.fakes import FakeFaceDetector, FakeTextDetector, jpeg_bytes
from tests.webhook_support import (
    GHOST_SECRET,
    OLD_STANDARD_SECRET,
    STANDARD_SECRET,
    WORDPRESS_SECRET,
    Harness,
    ghost_body,
    ghost_headers,
    receiver_running,
    standard_body,
    standard_headers,
    verify_callback,
    wait_until,
    webhook_settings,
    wordpress_body,
)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with receiver_running() as receiver:
        app = create_app(webhook_settings(tmp_path), detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
        with TestClient(app) as client:
            yield Harness(client, receiver)


# Signatures, parsing, URL guard (units) -------------------------------------------------------


def test_standard_signature_accepts_any_rotated_secret_and_refuses_forged_and_stale() -> None:
    body = b'{"a":1}'
    headers = standard_headers(body, "msg_1", secret=OLD_STANDARD_SECRET)
    assert verify_standard(headers, body, [STANDARD_SECRET, OLD_STANDARD_SECRET], 300).event_id == "msg_1"
    with pytest.raises(InvalidSignatureError):
        verify_standard(headers, body + b" ", [STANDARD_SECRET, OLD_STANDARD_SECRET], 300)
    with pytest.raises(InvalidSignatureError):
        verify_standard(headers, body, [STANDARD_SECRET], 300)
    stale = standard_headers(body, "msg_1", ts=int(time.time()) - 301)
    with pytest.raises(StaleTimestampError):
        verify_standard(stale, body, [STANDARD_SECRET], 300)
    with pytest.raises(MissingSignatureError):
        verify_standard({"webhook-id": "x", "webhook-timestamp": "1"}, body, [STANDARD_SECRET], 300)


def test_our_signing_matches_an_independent_verifier() -> None:
    body = b'{"type":"check.completed"}'
    assert verify_callback(sign_standard(STANDARD_SECRET, "msg_2", body), body, STANDARD_SECRET)
    assert not verify_callback(sign_standard(OLD_STANDARD_SECRET, "msg_2", body), body, STANDARD_SECRET)


def test_ghost_signature_is_hmac_of_body_and_millisecond_timestamp() -> None:
    body = ghost_body()
    assert verify_ghost(ghost_headers(body), body, [GHOST_SECRET], 300).event_id.startswith("ghost_")
    with pytest.raises(InvalidSignatureError):
        verify_ghost(ghost_headers(body, secret="wrong"), body, [GHOST_SECRET], 300)
    with pytest.raises(StaleTimestampError):
        verify_ghost(ghost_headers(body, ts_ms=int(time.time() * 1000) - 301_000), body, [GHOST_SECRET], 300)
    with pytest.raises(InvalidSignatureError):
        verify_ghost({"x-ghost-signature": "sha256=ééé, t=1"}, body, [GHOST_SECRET], 300)


def test_html_is_stripped_without_running_or_keeping_scripts() -> None:
    text = html_to_text("<p>A &amp; B</p><script>evil()</script><style>p{}</style><p>C<br>D</p>")
    assert text == "A & B\n\nC\n\nD"


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/",
                                 "http://[::1]/", "http://100.64.0.1/", "http://0.0.0.0/", "ftp://127.0.0.1/",
                                 "http://user:pw@127.0.0.1/"])
def test_private_and_metadata_addresses_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        check_url(url, webhook_settings(tmp_path, private_allow_hosts=[]))


def test_allow_lists_apply(tmp_path: Path) -> None:
    settings = webhook_settings(tmp_path)
    assert check_url("http://127.0.0.1:9/cb", settings).address == "127.0.0.1"
    with pytest.raises(UnsafeUrlError):
        check_url("http://localhost:9/x.jpg", settings, allow_hosts=settings.fetch_allow_hosts)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    delays = [backoff_s(n, 1.0, 8.0) for n in (1, 2, 3, 4, 10)]
    assert 0.5 <= delays[0] <= 1.0
    assert 1.0 <= delays[1] <= 2.0
    assert 2.0 <= delays[2] <= 4.0
    assert 4.0 <= delays[3] <= 8.0
    assert 4.0 <= delays[4] <= 8.0


# End to end ---------------------------------------------------------------------------------


def _one_signed_callback(h: Harness, secret: str, job: dict[str, Any]) -> dict[str, Any]:
    calls = h.receiver.wait_for("/callback")
    time.sleep(0.3)  # nothing more may arrive
    assert len(h.receiver.at("/callback")) == 1
    call = calls[0]
    assert verify_callback(call.headers, call.body, secret)
    payload = dict(call.json())
    assert payload["type"] == "check.completed"
    assert payload["data"]["job_id"] == job["id"]
    assert payload["data"]["report"]["id"] == job["report_id"]
    return payload


@pytest.mark.parametrize("source", ["ghost", "wordpress", "standard"])
def test_each_source_yields_one_report_and_one_signed_callback_and_replays_do_not_rerun(
        harness: Harness, source: str) -> None:
    sub = harness.subscribe()
    body = {"ghost": ghost_body, "wordpress": wordpress_body, "standard": standard_body}[source]()
    headers = {"ghost": lambda: ghost_headers(body),
               "wordpress": lambda: standard_headers(body, "wp-1-42-publish", secret=WORDPRESS_SECRET),
               "standard": lambda: standard_headers(body, "msg_std_1")}[source]()
    first = harness.send(source, body, headers)
    assert first.status_code == 202, first.text
    job = harness.wait_job(first.json()["job"]["id"])
    assert job["status"] == "done"
    assert job["attempts"] == 1
    payload = _one_signed_callback(harness, sub["secret"], job)
    assert payload["data"]["report"]["byline"] == "Jane Doe"

    replay = harness.send(source, body, headers)
    assert replay.status_code == 200
    assert replay.json()["duplicate"] is True
    assert replay.json()["job"]["id"] == job["id"]
    time.sleep(0.3)
    assert len(harness.reports()) == 1
    assert len(harness.receiver.at("/callback")) == 1


def test_refusals_have_clear_codes(harness: Harness) -> None:
    body = standard_body()
    cases = [
        (standard_headers(body, "m1", secret="whsec_" + base64.b64encode(b"forged-key").decode()), 401,
         "invalid_signature"),
        (standard_headers(body, "m2", ts=int(time.time()) - 3600), 401, "stale_timestamp"),
        ({"content-type": "application/json"}, 401, "missing_signature"),
    ]
    for headers, status, code in cases:
        response = harness.send("standard", body, headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert harness.send("drupal", body, standard_headers(body, "m3")).json()["error"]["code"] == "unknown_source"
    bad = b'{"data": {"title": 3}}'
    response = harness.send("standard", bad, standard_headers(bad, "m4"))
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_payload")
    not_json = b"<xml/>"
    assert harness.send("standard", not_json, standard_headers(not_json, "m5")).status_code == 422
    assert harness.client.get("/v1/jobs/job_nope", headers=harness.admin).status_code == 404
    assert harness.reports() == []


def test_headshot_is_fetched_from_an_allow_listed_url(harness: Harness) -> None:
    harness.receiver.responses["/jane.jpg"] = [(200, jpeg_bytes())]
    body = wordpress_body(avatar_url=harness.receiver.url("/jane.jpg"))
    response = harness.send("wordpress", body, standard_headers(body, "wp-2", secret=WORDPRESS_SECRET))
    job = harness.wait_job(response.json()["job"]["id"])
    assert job["status"] == "done"
    report = harness.app.state.store.get_check(job["report_id"])
    assert len(report["headshots"]) == 1
    assert report["headshots"][0]["width"] == 256


def test_inline_headshot_upload(harness: Harness) -> None:
    body = standard_body(headshot={"data": base64.b64encode(jpeg_bytes()).decode(), "filename": "j.jpg"})
    job = harness.wait_job(harness.send("standard", body, standard_headers(body, "m-inline")).json()["job"]["id"])
    assert len(harness.app.state.store.get_check(job["report_id"])["headshots"]) == 1


def test_failing_headshot_host_retries_then_dead_letters_with_a_failed_callback(harness: Harness) -> None:
    sub = harness.subscribe()
    harness.receiver.responses["/down.jpg"] = [(503, b"down"), (503, b"down")]
    body = standard_body(headshot_url=harness.receiver.url("/down.jpg"))
    job = harness.wait_job(harness.send("standard", body, standard_headers(body, "m-dead")).json()["job"]["id"])
    assert job["status"] == "dead"
    assert job["attempts"] == 2
    assert "fetch_failed" in job["error"]
    call = harness.receiver.wait_for("/callback")[0]
    assert verify_callback(call.headers, call.body, sub["secret"])
    assert call.json()["type"] == "check.failed"
    assert harness.reports() == []


def test_callbacks_retry_with_backoff_and_are_logged(harness: Harness) -> None:
    sub = harness.subscribe("/flaky")
    harness.receiver.responses["/flaky"] = [(500, b"oops")]
    body = standard_body()
    harness.send("standard", body, standard_headers(body, "m-flaky"))
    calls = harness.receiver.wait_for("/flaky", 2)
    assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"]
    assert all(verify_callback(c.headers, c.body, sub["secret"]) for c in calls)
    assert wait_until(lambda: len(delivery_log(harness)) == 2)
    assert delivery_log(harness) == [500, 200]


def delivery_log(h: Harness) -> list[int | None]:
    with h.app.state.store.session() as session:
        return list(session.execute(text("select status_code from webhook_delivery_log order by id")).scalars())


def test_a_410_disables_the_subscriber(harness: Harness) -> None:
    sub = harness.subscribe("/gone")
    harness.receiver.responses["/gone"] = [(410, b"gone")]
    test = harness.client.post("/v1/webhooks/test", json={"subscriber_id": sub["id"]}, headers=harness.admin)
    assert test.status_code == 202
    harness.receiver.wait_for("/gone")
    assert wait_until(lambda: harness.app.state.webhooks.store.subscriber(sub["id"])[1] is False)
    again = harness.client.post("/v1/webhooks/test", json={}, headers=harness.admin)
    assert again.json()["deliveries"] == []


def test_test_event_is_signed(harness: Harness) -> None:
    sub = harness.subscribe()
    response = harness.client.post("/v1/webhooks/test", json={}, headers=harness.admin)
    assert response.status_code == 202
    assert len(response.json()["deliveries"]) == 1
    call = harness.receiver.wait_for("/callback")[0]
    assert call.headers["webhook-id"] == response.json()["deliveries"][0]
    assert verify_callback(call.headers, call.body, sub["secret"])
    assert json.loads(call.body)["type"] == "webhook.test"


def test_subscribers_need_admin_and_a_safe_url(harness: Harness) -> None:
    check_key = {"Authorization": "Bearer " + harness.app.state.store.create_api_key("c", [Scope.CHECK])}
    url = {"url": harness.receiver.url("/callback")}
    assert harness.client.post("/v1/webhooks/subscribers", json=url, headers=check_key).status_code == 403
    metadata = harness.client.post("/v1/webhooks/subscribers", json={"url": "http://169.254.169.254/"},
                                   headers=harness.admin)
    assert (metadata.status_code, metadata.json()["error"]["code"]) == (422, "unsafe_url")


def test_a_missing_or_refused_headshot_leaves_a_text_only_check(harness: Harness) -> None:
    for n, url in enumerate([harness.receiver.url("/404.jpg"), f"http://localhost:{harness.receiver.port}/x.jpg"]):
        harness.receiver.responses["/404.jpg"] = [(404, b"no avatar")]
        body = wordpress_body(post_id=100 + n, avatar_url=url)
        response = harness.send("wordpress", body, standard_headers(body, f"wp-missing-{n}", secret=WORDPRESS_SECRET))
        job = harness.wait_job(response.json()["job"]["id"])
        assert job["status"] == "done"
        assert harness.app.state.store.get_check(job["report_id"])["headshots"] == []


@pytest.mark.parametrize("secrets", [{"drupal": ["x"]}, {"standard": ["not-whsec"]}, {"wordpress": ["whsec_%%%"]}])
def test_bad_secret_settings_refuse_to_start(tmp_path: Path, secrets: dict[str, list[str]]) -> None:
    with pytest.raises(ValueError, match="secret|whsec|source"):
        create_app(webhook_settings(tmp_path, webhook_secrets=secrets))


def test_api_reenqueues_open_jobs_on_start(tmp_path: Path) -> None:
    """Crash recovery on service start: a job left ``queued`` (its queue entry lost) is run on start."""
    settings = webhook_settings(tmp_path, queue_in_process=False)
    body = standard_body()
    app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(app) as client:
        job_id = client.post("/v1/webhooks/standard", content=body,
                             headers=standard_headers(body, "msg_recover")).json()["job"]["id"]
    for leftover in tmp_path.glob("queue.sqlite3*"):  # the queue is lost; the store is not
        leftover.unlink()
    app = create_app(webhook_settings(tmp_path),
                     detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(app) as client:
        key = {"Authorization": "Bearer " + app.state.store.create_api_key("k", [Scope.CHECK])}
        job = wait_until(lambda: (j := client.get(f"/v1/jobs/{job_id}", headers=key).json())["status"] == "done" and j)
    assert job["report_id"] is not None
