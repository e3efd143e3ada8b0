"""Engines run article jobs through a pipeline and hand back results: in-process (``local``) or on Ray.

Caveats first: both engines call the same :func:`check_job`, so an article gets the same verdicts
and probabilities whichever engine ran it. Results arrive in completion order; the caller
checkpoints each one and sorts by ``seq`` when writing outputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from detectors.contract import Detector
from service.audit.articles import Article
from service.audit.checkpoint import ItemResult, idempotency_key
from service.domain import CheckRequest, HeadshotUpload
from service.errors import ServiceError
from service.pipeline import Pipeline

DetectorFactory = Callable[[], Mapping[str, Detector[Any]]]
ResultSink = Callable[[ItemResult], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ArticleJob:
    """An article ready to check: headshot bytes already read (so a remote worker needs no files)."""

    audit_id: str
    seq: int
    article: Article
    headshots: tuple[HeadshotUpload, ...] = ()
    error_code: str | None = None
    error_message: str | None = None

    def result(self, **fields: Any) -> ItemResult:
        a = self.article
        return ItemResult(seq=self.seq, key=a.key, article_id=a.id, byline=a.byline, published=a.published, **fields)


def request_for(job: ArticleJob) -> CheckRequest:
    a = job.article
    return CheckRequest(text=a.text, byline=a.byline, bio=a.bio, headshots=job.headshots,
                        idempotency_key=idempotency_key(job.audit_id, a.key), source="audit", external_id=a.id)


async def check_job(pipeline: Pipeline, job: ArticleJob) -> ItemResult:
    """Check one article; a ServiceError becomes an error result, never an exception."""
    if job.error_code is not None:
        return job.result(error_code=job.error_code, error_message=job.error_message)
    try:
        report = await pipeline.check(request_for(job))
    except ServiceError as exc:
        return job.result(error_code=exc.code, error_message=exc.message)
    return job.result(report=report)


class Engine(Protocol):
    """Runs every job and awaits ``sink`` once per result (in completion order)."""

    async def run(self, jobs: Iterator[ArticleJob], sink: ResultSink) -> None: ...


class LocalEngine:
    """Checks up to ``concurrency`` articles at once on the pipeline's micro-batchers."""

    def __init__(self, pipeline: Pipeline, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.pipeline = pipeline
        self.concurrency = concurrency

    async def run(self, jobs: Iterator[ArticleJob], sink: ResultSink) -> None:
        pending: set[asyncio.Task[ItemResult]] = set()
        try:
            while True:
                job = await asyncio.to_thread(next, jobs, None)
                if job is None:
                    break
                pending.add(asyncio.create_task(check_job(self.pipeline, job)))
                if len(pending) >= self.concurrency:
                    pending = await self._drain(pending, sink, asyncio.FIRST_COMPLETED)
            await self._drain(pending, sink, asyncio.ALL_COMPLETED)
        finally:
            for task in pending:
                task.cancel()

    @staticmethod
    async def _drain(pending: set[asyncio.Task[ItemResult]], sink: ResultSink, when: str) -> set[asyncio.Task[ItemResult]]:
        if not pending:
            return pending
        done, rest = await asyncio.wait(pending, return_when=when)
        for task in sorted(done, key=lambda t: t.result().seq):
            await sink(task.result())
        return rest
