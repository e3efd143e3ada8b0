"""The Ray engine: Ray Data ``map_batches`` over actors that each hold a started pipeline (the detectors).

Caveats first: ``ray`` is imported here only (install the ``cluster`` extra). Each actor opens the
store at ``settings.database_url``; on a multi-machine cluster that must be a database every node
reaches (PostgreSQL), or idempotency only holds per node. Results come back to the driver, which
checkpoints them, so outputs never depend on the actors' database. Jobs are sent in windows of
``window`` articles so an archive of any size streams. Actors ask for ``num_gpus=1`` when
``settings.device`` is ``cuda``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from service.audit.checkpoint import ItemResult
from service.audit.engines import ArticleJob, DetectorFactory, ResultSink, check_job
from service.config import DeviceSetting, Settings
from service.pipeline import Pipeline
from service.store import Store


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError('the Ray engine needs the cluster extra: pip install "bylinecheck[cluster]"') from None
    return ray


class CheckActor:
    """Holds one started pipeline on its own event loop; called with batches of pickled jobs."""

    def __init__(self, settings: Settings, factory: DetectorFactory | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = Store(settings.database_url, settings.secret_key.get_secret_value())
        self.pipeline = Pipeline(settings, self.store, detectors=factory() if factory else None)
        self.loop.run_until_complete(self.pipeline.start())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        jobs: list[ArticleJob] = [pickle.loads(blob) for blob in batch["job"]]
        results = self.loop.run_until_complete(self._check(jobs))
        return {"result": [pickle.dumps(r) for r in results]}

    async def _check(self, jobs: list[ArticleJob]) -> list[ItemResult]:
        return list(await asyncio.gather(*(check_job(self.pipeline, j) for j in jobs)))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # best effort at actor teardown
            self.loop.run_until_complete(self.pipeline.close())
            self.store.close()


class RayEngine:
    """Runs jobs on Ray. ``address`` None starts (or reuses) a local Ray; else connects to that cluster."""

    def __init__(self, settings: Settings, *, address: str | None = None, actors: int = 2, batch_size: int = 16,
                 window: int = 512, factory: DetectorFactory | None = None) -> None:
        self.settings = settings
        self.address = address
        self.actors = actors
        self.batch_size = batch_size
        self.window = window
        self.factory = factory

    def _connect(self) -> Any:
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False  # the audit draws its own
        return ray

    def run_sync(self, jobs: Iterator[ArticleJob], sink: Callable[[ItemResult], None]) -> None:
        ray = self._connect()
        gpus = 1 if self.settings.device is DeviceSetting.CUDA else 0
        while True:
            window = list(itertools.islice(jobs, self.window))
            if not window:
                return
            dataset = ray.data.from_items([{"job": pickle.dumps(j)} for j in window])
            results = dataset.map_batches(
                CheckActor, fn_constructor_args=(self.settings, self.factory), batch_size=self.batch_size,
                batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=max(1, min(self.actors, len(window)))),
                num_gpus=gpus,
            )
            for row in results.iter_rows():
                sink(pickle.loads(row["result"]))

    async def run(self, jobs: Iterator[ArticleJob], sink: ResultSink) -> None:
        loop = asyncio.get_running_loop()

        def blocking_sink(result: ItemResult) -> None:
            asyncio.run_coroutine_threadsafe(sink(result), loop).result()

        await asyncio.to_thread(self.run_sync, jobs, blocking_sink)
