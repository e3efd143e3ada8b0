"""``bylinecheck worker``: a huey consumer in its own process, running webhook jobs and callbacks.

Caveats first: the pipeline (with the detectors registered from ``settings.weights_dir``) runs on an
event loop in a background thread; huey's worker threads hand checks to it. On start, open jobs and
pending callbacks are re-enqueued (crash recovery), so a worker killed with SIGKILL loses nothing:
restart it. SIGINT stops gracefully (finishes running tasks), SIGTERM stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from service.config import Settings
from service.pipeline import Pipeline
from service.store import Store
from service.webhooks.queue import WorkQueue
from service.webhooks.repository import WebhookStore
from service.webhooks.runner import JobRunner

logger = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Block until the consumer is stopped by a signal."""
    store = Store(settings.database_url, settings.secret_key.get_secret_value())
    store.migrate()
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="pipeline-loop", daemon=True)
    loop_thread.start()
    pipeline = Pipeline(settings, store)
    asyncio.run_coroutine_threadsafe(pipeline.start(), loop).result()
    jobs = WebhookStore(store)
    queue = WorkQueue(settings)
    queue.bind(JobRunner(settings, jobs, queue, pipeline, loop))
    try:
        queue.recover(jobs)
        logger.info("worker ready: %d thread(s), queue %s", settings.queue_workers,
                    "redis" if settings.redis_url else settings.queue_path)
        queue.consumer().run()
    finally:
        asyncio.run_coroutine_threadsafe(pipeline.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(timeout=5)
        queue.close()
        store.close()
