"""One audit run: read the archive, skip what the checkpoint says is finished, check the rest on an
engine, checkpoint each result, then roll up per author and write the outputs.

Caveats first: an audit's id is derived from the archive's bytes, its format and the headshot
source, so running the same command again resumes the same audit (``fresh`` starts a new one).
A finished audit re-run checks nothing and only rewrites its outputs. Ctrl-C marks the audit
``interrupted``; a SIGKILL leaves it ``running``; both resume the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from detectors.contract import Detector
from service.audit.articles import Article, articles_from_rows
from service.audit.checkpoint import AuditLog, AuditStatus, ItemResult
from service.audit.engines import ArticleJob, DetectorFactory, Engine, LocalEngine
from service.audit.fetch import HeadshotFetcher, HeadshotFetchError
from service.audit.headshots import HeadshotSource
from service.audit.outputs import OutputPaths, write_outputs
from service.audit.readers import ArchiveFormat, detect_format, read_rows
from service.config import Settings
from service.errors import ServiceError
from service.pipeline import Pipeline
from service.store import Store

logger = logging.getLogger(__name__)

Detectors = Mapping[str, Detector[Any]] | DetectorFactory


class AuditIncompleteError(ServiceError):
    code = "audit_incomplete"


class EngineName(StrEnum):
    LOCAL = "local"
    RAY = "ray"


@dataclass(frozen=True)
class AuditOptions:
    fmt: ArchiveFormat = ArchiveFormat.AUTO
    headshots: Path | None = None
    engine: EngineName = EngineName.LOCAL
    ray_address: str | None = None
    concurrency: int = 16
    ray_actors: int = 2
    fresh: bool = False


@dataclass(frozen=True)
class Progress:
    """``start(already_done, total)`` once, then ``advance(n)`` per checkpointed article."""

    start: Callable[[int, int], None] | None = None
    advance: Callable[[int], None] | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def derived_audit_id(input_sha256: str, fmt: ArchiveFormat, headshots: Path | None) -> str:
    key = f"{input_sha256}|{fmt.value}|{headshots.resolve() if headshots else ''}"
    return "aud_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def new_audit_id() -> str:
    return f"aud_{secrets.token_hex(12)}"


def detector_factory(detectors: Detectors | None) -> DetectorFactory | None:
    if detectors is None or callable(detectors):
        return detectors
    mapping = detectors
    return lambda: mapping


def default_fetcher(settings: Settings) -> HeadshotFetcher | None:
    """A fetcher when ``settings.fetch_allow_hosts`` names any host; else None (URLs are skipped)."""
    return HeadshotFetcher(settings) if settings.fetch_allow_hosts else None


class AuditRun:
    """Everything one audit needs; :meth:`execute` runs it to the end (or raises, checkpoint intact)."""

    def __init__(self, settings: Settings, store: Store, archive: Path, paths: OutputPaths, options: AuditOptions, *,
                 audit_id: str | None = None, source: str = "cli", api_key_id: str | None = None,
                 detectors: Detectors | None = None, fetcher: HeadshotFetcher | None = None) -> None:
        self.settings, self.store, self.archive, self.paths, self.options = settings, store, archive, paths, options
        self.log = AuditLog(store)
        self.audit_id = audit_id
        self.source, self.api_key_id = source, api_key_id
        self.factory = detector_factory(detectors)
        self.fetcher = fetcher
        self.fmt = options.fmt

    async def prepare(self) -> str:
        """Resolve the format and the audit id, open (or reopen) the audit row. Returns the id."""
        if self.fmt is ArchiveFormat.AUTO:
            self.fmt = await asyncio.to_thread(detect_format, self.archive)
        sha = await asyncio.to_thread(file_sha256, self.archive)
        if self.audit_id is None:
            self.audit_id = new_audit_id() if self.options.fresh else derived_audit_id(sha, self.fmt, self.options.headshots)
        await asyncio.to_thread(self.log.open, self.audit_id, source=self.source, input_name=self.archive.name,
                                input_sha256=sha, fmt=self.fmt.value, out_dir=str(self.paths.jsonl.parent),
                                api_key_id=self.api_key_id)
        return self.audit_id

    async def execute(self, pipeline: Pipeline | None, progress: Progress | None = None) -> dict[str, Any]:
        """Run to the end and write the outputs; returns the summary. Marks the audit on the way out."""
        audit_id = self.audit_id or await self.prepare()
        try:
            await self._check_all(audit_id, pipeline, progress or Progress())
            summary = await asyncio.to_thread(self._finish, audit_id)
        except (KeyboardInterrupt, asyncio.CancelledError):
            await asyncio.shield(asyncio.to_thread(self.log.update, audit_id, status=AuditStatus.INTERRUPTED))
            raise
        except Exception as exc:
            await asyncio.to_thread(self.log.update, audit_id, status=AuditStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
        return summary

    async def _check_all(self, audit_id: str, pipeline: Pipeline | None, progress: Progress) -> None:
        total = await asyncio.to_thread(lambda: sum(1 for _ in read_rows(self.archive, self.fmt)))
        finished = await asyncio.to_thread(self.log.finished_keys, audit_id)
        await asyncio.to_thread(self.log.update, audit_id, total=total)
        if progress.start:
            progress.start(len(finished), total)

        async def sink(result: ItemResult) -> None:
            await asyncio.to_thread(self.log.record, audit_id, result)
            if progress.advance:
                progress.advance(1)

        await self._engine(pipeline).run(self._jobs(audit_id, finished), sink)

    def _engine(self, pipeline: Pipeline | None) -> Engine:
        if self.options.engine is EngineName.RAY:
            from service.audit.ray_engine import RayEngine

            return RayEngine(self.settings, address=self.options.ray_address, actors=self.options.ray_actors,
                             factory=self.factory)
        if pipeline is None:
            raise ValueError("the local engine needs a started pipeline")
        return LocalEngine(pipeline, self.options.concurrency)

    def _jobs(self, audit_id: str, finished: set[str]) -> Iterator[ArticleJob]:
        source = HeadshotSource(self.archive.parent, self.options.headshots, self.fetcher)
        for seq, article in enumerate(articles_from_rows(read_rows(self.archive, self.fmt))):
            first = source.is_first_for_author(article)
            if article.key not in finished:
                yield self._job(audit_id, seq, article, source, first)

    @staticmethod
    def _job(audit_id: str, seq: int, article: Article, source: HeadshotSource, first: bool) -> ArticleJob:
        if article.read_error:
            return ArticleJob(audit_id, seq, article, error_code="unreadable_row", error_message=article.read_error)
        try:
            uploads = source.read(source.references(article, first))
        except OSError as exc:
            return ArticleJob(audit_id, seq, article, error_code="unreadable_headshot", error_message=str(exc))
        except HeadshotFetchError as exc:
            return ArticleJob(audit_id, seq, article, error_code=exc.code, error_message=exc.message)
        return ArticleJob(audit_id, seq, article, uploads)

    def _finish(self, audit_id: str) -> dict[str, Any]:
        meta = {"audit_id": audit_id, "input": self.archive.name, "format": self.fmt.value,
                "engine": self.options.engine.value, "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "detectors": self._detectors(audit_id)}
        summary, authors = write_outputs(self.paths, meta, self.log.results(audit_id), self.settings.reuse_phash_max_distance)
        summary = {**summary, "flagged": [a for a in authors if a["flagged"]]}
        info = self.log.get(audit_id)
        if info is not None and info.total is not None and summary["articles"] != info.total:
            raise AuditIncompleteError(f"{summary['articles']} of {info.total} articles are checkpointed; run again to resume")
        self.log.update(audit_id, status=AuditStatus.DONE, summary=summary, done=summary["articles"])
        return summary

    def _detectors(self, audit_id: str) -> dict[str, str]:
        for result in self.log.results(audit_id):
            if result.report and result.report.get("detectors"):
                return dict(result.report["detectors"])
        return {}
