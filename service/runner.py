"""Run the pipeline outside HTTP (CLI check, audit): open store and pipeline, close them after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from detectors.contract import Detector
from service.config import Settings
from service.pipeline import Pipeline
from service.store import Store


@asynccontextmanager
async def open_pipeline(settings: Settings, *, store: Store | None = None,
                        detectors: Mapping[str, Detector[Any]] | None = None) -> AsyncIterator[Pipeline]:
    """A started pipeline. ``store`` (already migrated) stays open afterwards; ``detectors`` replace the built ones."""
    own = store is None
    if store is None:
        store = Store(settings.database_url, settings.secret_key.get_secret_value())
        store.migrate()
    pipeline = Pipeline(settings, store, detectors=detectors)
    await pipeline.start()
    try:
        yield pipeline
    finally:
        await pipeline.close()
        if own:
            store.close()
