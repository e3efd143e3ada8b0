"""Run the pipeline outside HTTP (CLI check, audit): open store and pipeline, close them after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.config import Settings
from service.pipeline import Pipeline
from service.store import Store


@asynccontextmanager
async def open_pipeline(settings: Settings) -> AsyncIterator[Pipeline]:
    store = Store(settings.database_url, settings.secret_key.get_secret_value())
    store.migrate()
    pipeline = Pipeline(settings, store)
    await pipeline.start()
    try:
        yield pipeline
    finally:
        await pipeline.close()
        store.close()
