"""Periodic housekeeping owned by the app's lifespan: headshot image retention.

Caveats first: only kept images are deleted (``keep_headshot_images``); their hashes and
embeddings stay so that reuse detection keeps working after the images are gone.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from service.config import Settings
from service.store import Store

logger = logging.getLogger(__name__)


def purge_expired_images(store: Store, settings: Settings, now: datetime | None = None) -> int:
    """Delete kept headshot images older than the retention period; returns how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.headshot_retention_days)
    count = store.purge_headshot_images(cutoff)
    if count:
        logger.info("retention: deleted %d headshot images older than %s", count, cutoff.isoformat())
    return count


class RetentionSweeper:
    """Runs :func:`purge_expired_images` at start and then every ``interval_s``."""

    def __init__(self, store: Store, settings: Settings, interval_s: float = 3600.0) -> None:
        self.store = store
        self.settings = settings
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="retention-sweeper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(purge_expired_images, self.store, self.settings)
            except Exception:
                logger.exception("retention sweep failed; will retry")
            await asyncio.sleep(self.interval_s)
