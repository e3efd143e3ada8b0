"""The durable queue: huey (SQLite file by default, Redis when ``settings.redis_url`` is set).

Caveats first: the queue only carries ids; the truth (status, attempts, report) lives in our store, so a
task lost in a crash is recovered by :meth:`WorkQueue.recover`, which re-enqueues every open job and
pending callback (run at API and worker start). Duplicate tasks are harmless: jobs are idempotent and
callbacks are leased. Retries are scheduled by the runner (exponential backoff with jitter), not by huey.
Tasks run in huey worker threads, either in ``bylinecheck worker`` or inside the API process
(``settings.queue_in_process``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from huey import RedisHuey, SqliteHuey
from huey.api import Huey, TaskWrapper
from huey.consumer import Consumer

from service.config import Environment, Settings
from service.webhooks.repository import Pending, WebhookStore, now

logger = logging.getLogger(__name__)


class Runner(Protocol):
    def run_job(self, job_id: str) -> None: ...

    def deliver(self, outbox_id: str) -> None: ...


def build_huey(settings: Settings) -> Huey:
    if settings.redis_url is not None:
        return RedisHuey("bylinecheck", url=settings.redis_url.get_secret_value(), results=False)
    settings.queue_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("bylinecheck", filename=str(settings.queue_path), results=False)


def runs_in_process(settings: Settings) -> bool:
    if settings.queue_in_process is not None:
        return settings.queue_in_process
    return settings.environment is not Environment.PRODUCTION


class WorkQueue:
    """Producer side everywhere; consumer side once :meth:`bind` gave it a runner."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.huey = build_huey(settings)
        self._runner: Runner | None = None
        self._consumer: Consumer | None = None
        self._job_task: TaskWrapper = self.huey.task(name="bylinecheck.run_job")(self._run_job)
        self._delivery_task: TaskWrapper = self.huey.task(name="bylinecheck.deliver")(self._deliver)

    def bind(self, runner: Runner) -> None:
        self._runner = runner

    def _run_job(self, job_id: str) -> None:
        if self._runner is None:
            raise RuntimeError("no runner bound to this queue")
        self._runner.run_job(job_id)

    def _deliver(self, outbox_id: str) -> None:
        if self._runner is None:
            raise RuntimeError("no runner bound to this queue")
        self._runner.deliver(outbox_id)

    def enqueue_job(self, job_id: str, not_before: datetime | None = None) -> None:
        self._schedule(self._job_task, job_id, not_before)

    def enqueue_delivery(self, outbox_id: str, not_before: datetime | None = None) -> None:
        self._schedule(self._delivery_task, outbox_id, not_before)

    def _schedule(self, task: TaskWrapper, item_id: str, not_before: datetime | None) -> None:
        delay = (not_before - now()).total_seconds() if not_before is not None else 0.0
        if delay > 0:
            task.schedule(args=(item_id,), delay=delay)
        else:
            task(item_id)

    def recover(self, store: WebhookStore) -> int:
        """Re-enqueue every open job and pending callback (crash recovery). Returns how many."""
        jobs: list[Pending] = store.open_jobs()
        deliveries: list[Pending] = store.pending_outbox()
        for job in jobs:
            self.enqueue_job(job.id, job.not_before)
        for delivery in deliveries:
            self.enqueue_delivery(delivery.id, delivery.not_before)
        if jobs or deliveries:
            logger.info("re-enqueued %d open jobs and %d pending callbacks", len(jobs), len(deliveries))
        return len(jobs) + len(deliveries)

    def consumer(self, **options: Any) -> Consumer:
        return self.huey.create_consumer(workers=self.settings.queue_workers, worker_type="thread",
                                         initial_delay=min(0.1, self.settings.queue_poll_max_s),
                                         max_delay=self.settings.queue_poll_max_s, periodic=False, **options)

    def start_threads(self) -> None:
        """Run the consumer's scheduler and workers as threads of this process (no signal handlers)."""
        self._consumer = self.consumer()
        self._consumer.scheduler.start()
        for _worker, thread in self._consumer.worker_threads:
            thread.start()

    def stop_threads(self, timeout_s: float = 30.0) -> None:
        if self._consumer is None:
            return
        self._consumer.shutdown_timeout = timeout_s
        self._consumer.stop(graceful=True)
        self._consumer = None

    def close(self) -> None:
        close = getattr(self.huey.storage, "close", None)
        if callable(close):
            close()
