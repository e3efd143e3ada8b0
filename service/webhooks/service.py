"""The webhook side of the app: receive events, answer job look-ups, manage subscribers; owns the queue.

Caveats first: :meth:`WebhookService.receive` verifies the signature on the raw body before parsing,
stores the event, and only then enqueues it, so a 202 always means "persisted". If enqueueing fails the
job stays ``queued`` in the store and the next start's recovery picks it up. Blocking (DB, queue): call
it from a thread. Lifecycle: :meth:`start` (after the store migrated and the pipeline started) recovers
open work and, when ``settings.queue_in_process``, runs the queue's workers as threads of this process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service.config import Settings
from service.errors import NotFoundError
from service.pipeline import Pipeline
from service.store import Store
from service.webhooks.errors import UnknownSourceError
from service.webhooks.fetch import check_url
from service.webhooks.payloads import extract
from service.webhooks.queue import WorkQueue, runs_in_process
from service.webhooks.repository import Job, WebhookStore, now
from service.webhooks.runner import JobRunner
from service.webhooks.signatures import (
    SECRET_PREFIX,
    VerifiedDelivery,
    new_secret,
    secret_key,
    verify_ghost,
    verify_standard,
)

logger = logging.getLogger(__name__)

Verifier = Callable[[Mapping[str, str], bytes, list[str], float], VerifiedDelivery]
VERIFIERS: Mapping[str, Verifier] = {"ghost": verify_ghost, "wordpress": verify_standard, "standard": verify_standard}


@dataclass(frozen=True)
class Receipt:
    job: Job
    created: bool


class WebhookService:
    def __init__(self, settings: Settings, store: Store, pipeline: Pipeline) -> None:
        _validate_secrets(settings)
        self.settings = settings
        self.store = WebhookStore(store)
        self.pipeline = pipeline
        self.queue = WorkQueue(settings)
        self._threads = False

    async def start(self) -> None:
        if runs_in_process(self.settings):
            runner = JobRunner(self.settings, self.store, self.queue, self.pipeline, asyncio.get_running_loop())
            self.queue.bind(runner)
            await asyncio.to_thread(self.queue.start_threads)
            self._threads = True
        await asyncio.to_thread(self.queue.recover, self.store)

    async def close(self) -> None:
        if self._threads:
            await asyncio.to_thread(self.queue.stop_threads)
        self.queue.close()

    def receive(self, source: str, headers: Mapping[str, str], body: bytes) -> Receipt:
        """Verify, extract, persist, enqueue. Raises the 401/404/422 errors of :mod:`.errors`."""
        verifier = VERIFIERS.get(source)
        secrets = [s.get_secret_value() for s in self.settings.webhook_secrets.get(source, [])]
        if verifier is None or not secrets:
            raise UnknownSourceError(f"no webhook source '{source}' is configured")
        delivery = verifier(headers, body, secrets, self.settings.webhook_tolerance_s)
        article = extract(source, body)
        job, created = self.store.create_job(source, delivery.event_id, article)
        if created:
            try:
                self.queue.enqueue_job(job.id)
            except Exception:
                logger.exception("job %s stored but not enqueued; recovery will enqueue it", job.id)
        return Receipt(job, created)

    def job(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def add_subscriber(self, url: str) -> tuple[str, str]:
        """Validate the URL (public, or allow-listed) and store it with a fresh secret: ``(id, secret)``."""
        check_url(url, self.settings)
        secret = new_secret()
        return self.store.create_subscriber(url, secret), secret

    def send_test(self, subscriber_id: str | None) -> list[str]:
        if subscriber_id is not None and self.store.subscriber(subscriber_id) is None:
            raise NotFoundError(f"no subscriber {subscriber_id}")
        payload: dict[str, Any] = {"type": "webhook.test", "timestamp": now().isoformat(), "data": {"test": True}}
        ids = self.store.add_test_event(subscriber_id, payload)
        for outbox_id in ids:
            self.queue.enqueue_delivery(outbox_id)
        return ids


def _validate_secrets(settings: Settings) -> None:
    """Refuse to start with a secret for an unknown source or a malformed ``whsec_`` secret."""
    for source, secrets in settings.webhook_secrets.items():
        if source not in VERIFIERS:
            raise ValueError(f"BYLINECHECK_WEBHOOK_SECRETS: unknown source '{source}' (known: {sorted(VERIFIERS)})")
        for secret in secrets:
            value = secret.get_secret_value()
            if VERIFIERS[source] is verify_standard and not value.startswith(SECRET_PREFIX):
                raise ValueError(f"BYLINECHECK_WEBHOOK_SECRETS: {source} secrets must be whsec_<base64>")
            secret_key(value)
