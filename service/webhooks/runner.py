"""Executes queued work: a job (check one article) and a delivery (send one signed callback).

Caveats first: both are idempotent and safe to run twice or after a crash at any line.

- Job: a job that is done or dead is skipped; one leased by another worker is looked at again when the
  lease (``fetch_timeout_s + request_deadline_s + job_lease_margin_s``) runs out. The check is stored with the job id as its
  Idempotency-Key (under the ``webhooks`` key id), so a crash between storing the report and marking the
  job done re-finds that report instead of making a second. Marking done and creating the callbacks is one
  transaction. Failures retry with exponential backoff and jitter; 4xx-type errors (bad text, bad image,
  unsafe URL) and the last attempt go to ``dead`` and send a ``check.failed`` callback.
- Delivery: the outbox row is leased, sent with its fixed ``webhook-id``, and the attempt is logged in the
  same transaction as the row's new state. 2xx = sent; 410 disables the subscriber; anything else retries
  with backoff until ``settings.callback_max_age_s`` (24 h by default), then ``dead``. A crash after the
  POST but before the log resends the *same* ``webhook-id``, which receivers deduplicate on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

from service.config import Settings
from service.domain import CheckRequest, HeadshotUpload
from service.errors import BadInputError, ServiceError
from service.pipeline import Pipeline
from service.webhooks.errors import FetchError, FetchRefusedError, UnsafeUrlError
from service.webhooks.fetch import fetch_bytes, post_json
from service.webhooks.queue import WorkQueue
from service.webhooks.repository import Delivery, Job, WebhookStore, now
from service.webhooks.signatures import sign_standard

logger = logging.getLogger(__name__)

WEBHOOK_KEY_ID = "webhooks"
T = TypeVar("T")


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Equal-jitter exponential backoff: half of ``base * 2**(attempt-1)`` (capped) plus a random half."""
    ceiling = min(max_s, base_s * 2.0 ** max(0, attempt - 1))
    jitter: float = random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret
    return ceiling / 2 + jitter


def callback_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


class JobRunner:
    """Runs on a huey worker thread; the pipeline lives on ``loop`` (the API's or the worker's)."""

    def __init__(self, settings: Settings, jobs: WebhookStore, queue: WorkQueue, pipeline: Pipeline,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.jobs = jobs
        self.queue = queue
        self.pipeline = pipeline
        self.loop = loop

    def _await(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    # Jobs -------------------------------------------------------------------------------------

    def run_job(self, job_id: str) -> None:
        """Never raises: an unexpected failure (the store busy, say) tries the whole job again later."""
        try:
            self._run_job(job_id)
        except Exception:
            logger.exception("job %s: unexpected failure; trying again in %g s", job_id, self.settings.job_retry_base_s)
            self.queue.enqueue_job(job_id, now() + timedelta(seconds=self.settings.job_retry_base_s))

    def _run_job(self, job_id: str) -> None:
        lease_s = self.settings.fetch_timeout_s + self.settings.request_deadline_s + self.settings.job_lease_margin_s
        claim = self.jobs.claim_job(job_id, lease_s)
        if claim.held_until is not None:  # a duplicate task: look again when the holder's lease runs out
            self.queue.enqueue_job(job_id, claim.held_until + timedelta(seconds=0.5))
        job = claim.job
        if job is None:
            return
        if job.attempts > self.settings.job_max_attempts:
            self._dead(job, job.error or "worker died during the last attempt")
            return
        try:
            report = self._report(job)
        except (BadInputError, FetchError) as exc:
            if isinstance(exc, BadInputError) or job.attempts >= self.settings.job_max_attempts:
                self._dead(job, f"{exc.code}: {exc.message}")
            else:
                self._retry(job, f"{exc.code}: {exc.message}")
            return
        except Exception as exc:
            logger.warning("job %s attempt %d failed: %s", job.id, job.attempts, type(exc).__name__)
            code = exc.code if isinstance(exc, ServiceError) else type(exc).__name__
            if job.attempts >= self.settings.job_max_attempts:
                self._dead(job, code)
            else:
                self._retry(job, code)
            return
        payload = self._event(job, "check.completed", report=report)
        for outbox_id in self.jobs.finish_job(job.id, report_id=report["id"], error=None,
                                              event_type="check.completed", payload=payload):
            self.queue.enqueue_delivery(outbox_id)

    def _report(self, job: Job) -> dict[str, Any]:
        existing = self.pipeline.store.find_idempotent(WEBHOOK_KEY_ID, job.id)
        if existing is not None:
            return existing.report
        request = CheckRequest(text=job.article.text, byline=job.article.byline, headshots=self._headshots(job),
                               idempotency_key=job.id, source=f"webhook:{job.source}",
                               external_id=job.article.external_id)
        return self._await(self.pipeline.check(request, api_key_id=WEBHOOK_KEY_ID))

    def _headshots(self, job: Job) -> tuple[HeadshotUpload, ...]:
        article = job.article
        if article.headshot_b64:
            return (HeadshotUpload(base64.b64decode(article.headshot_b64), "headshot"),)
        if not article.headshot_url:
            return ()
        try:
            data = fetch_bytes(article.headshot_url, self.settings, max_bytes=self.settings.max_image_bytes)
        except (UnsafeUrlError, FetchRefusedError) as exc:
            logger.warning("job %s: headshot URL refused (%s); checking the text only", job.id, exc.message)
            return ()
        return (HeadshotUpload(data, article.headshot_url.rsplit("/", 1)[-1][:200] or "headshot"),)

    def _retry(self, job: Job, error: str) -> None:
        at = now() + timedelta(seconds=backoff_s(job.attempts, self.settings.job_retry_base_s,
                                                 self.settings.job_retry_max_s))
        self.jobs.retry_job(job.id, error, at)
        self.queue.enqueue_job(job.id, at)

    def _dead(self, job: Job, error: str) -> None:
        logger.warning("job %s is dead after %d attempts: %s", job.id, job.attempts, error)
        payload = self._event(job, "check.failed", error=error)
        for outbox_id in self.jobs.finish_job(job.id, report_id=None, error=error, event_type="check.failed",
                                              payload=payload):
            self.queue.enqueue_delivery(outbox_id)

    @staticmethod
    def _event(job: Job, event_type: str, **data: Any) -> dict[str, Any]:
        return {"type": event_type, "timestamp": now().isoformat(),
                "data": {"job_id": job.id, "source": job.source, "event_id": job.event_id,
                         "external_id": job.article.external_id, "title": job.article.title, **data}}

    # Deliveries -------------------------------------------------------------------------------

    def deliver(self, outbox_id: str) -> None:
        """Never raises: an unexpected failure tries again once the lease has run out."""
        lease_s = self.settings.callback_timeout_s * 2 + 5
        try:
            self._deliver(outbox_id, lease_s)
        except Exception:
            logger.exception("callback %s: unexpected failure; trying again in %g s", outbox_id, lease_s)
            self.queue.enqueue_delivery(outbox_id, now() + timedelta(seconds=lease_s))

    def _deliver(self, outbox_id: str, lease_s: float) -> None:
        delivery = self.jobs.lease_delivery(outbox_id, lease_s)
        if delivery is None:
            return
        if not delivery.active:
            self.jobs.record_delivery(outbox_id, status="disabled", status_code=None,
                                      error="subscriber is disabled", duration_s=0.0)
            return
        started = time.monotonic()
        body = callback_body(delivery.payload)
        try:
            code: int | None = post_json(delivery.url, self.settings, body,
                                         sign_standard(delivery.secret, delivery.id, body))
            error = None if code is not None and 200 <= code < 300 else f"HTTP {code}"
        except ServiceError as exc:
            code, error = None, f"{exc.code}: {exc.message}"
        self._settle(delivery, code, error, time.monotonic() - started)

    def _settle(self, delivery: Delivery, code: int | None, error: str | None, duration_s: float) -> None:
        if error is None:
            self.jobs.record_delivery(delivery.id, status="sent", status_code=code, error=None, duration_s=duration_s)
            return
        if code == 410:
            self.jobs.record_delivery(delivery.id, status="disabled", status_code=code, error=error,
                                      duration_s=duration_s)
            return
        retry_at: datetime = now() + timedelta(seconds=backoff_s(delivery.attempts + 1,
                                                                 self.settings.callback_retry_base_s,
                                                                 self.settings.callback_retry_max_s))
        expired = (retry_at - delivery.created_at).total_seconds() > self.settings.callback_max_age_s
        self.jobs.record_delivery(delivery.id, status="dead" if expired else "pending", status_code=code,
                                  error=error, duration_s=duration_s, retry_at=None if expired else retry_at)
        if not expired:
            self.queue.enqueue_delivery(delivery.id, retry_at)
