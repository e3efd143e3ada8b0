"""The check pipeline: one library used by the API, the webhooks and the audit.

Flow of :meth:`Pipeline.check`: validate (4xx before any work) → idempotency look-up → route text
to the text detector and every headshot to the face detector (micro-batched, energy-metered) and
to the provenance readers → combine into a report with a verdict → store (idempotent).

Caveats first: a missing detector is never replaced by a made-up score (that part abstains with
``detector_unavailable``); deadlines and queue limits surface as 504 / 429.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from detectors.contract import Detector, ImageItem, TextItem, Verdict
from detectors.energy import EnergyMeter, EnergySource
from service import headshots as evidence
from service.batching import MicroBatcher
from service.caching import PreparedCache
from service.config import Settings
from service.custom_detectors import SHIPPED, ExtraDetectors, MemberResult, detector_score, members_energy
from service.domain import CheckRequest, DecodedImage
from service.energy_setup import build_meter, keep_image_work_on_calling_threads, lane_meter
from service.ensembles import EnsembleOutcome, LoadedEnsemble, load_ensembles
from service.errors import ConflictError, InvalidRequestError, TooManyHeadshotsError
from service.inputs import decode_image, validate_text
from service.metrics import Metrics
from service.overhead import OverheadMeter, Window
from service.registry import DetectorSlot, device_from_settings, load_slots
from service.reports import (
    abstained_text,
    billed_cpu_s,
    energy_part,
    energy_section,
    evidence_part,
    overhead_part,
    text_section,
)
from service.reuse_index import ReuseCandidates, ReuseIndex
from service.schemas import EnergyPart, HeadshotReport, ProvenanceFinding, ReadyStatus, Report, TextReport
from service.store.repository import HeadshotRecord, Store, byline_key
from service.verdict import combine, headshot_verdict

logger = logging.getLogger(__name__)

UNAVAILABLE = "detector_unavailable"
_T = TypeVar("_T")


@dataclass(frozen=True)
class _HeadshotOutcome:
    report: HeadshotReport
    parts: tuple[EnergyPart, ...]
    record: HeadshotRecord


def new_check_id() -> str:
    """Time-ordered id: 13 hex digits of milliseconds, then 12 random hex digits."""
    return f"chk_{int(time.time() * 1000):013x}{secrets.token_hex(6)}"


def request_hash(text: str | None, request: CheckRequest, images: Sequence[DecodedImage]) -> str:
    digest = hashlib.sha256()
    for part in (text or "", request.byline or "", request.bio or "", *(i.sha256 for i in images)):
        digest.update(part.encode())
        digest.update(b"\x1f")
    return digest.hexdigest()


class Pipeline:
    """Owns the detectors, their batchers and the inference lane; ``start``/``close`` bracket its life."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        detectors: Mapping[str, Detector[Any]] | None = None,
        meter: EnergyMeter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or Metrics()
        self._provided = detectors
        self._meter = meter
        self.device = device_from_settings(settings)
        self.slots: dict[str, DetectorSlot] = {}
        self.batchers: dict[str, MicroBatcher] = {}
        self._lane: ThreadPoolExecutor | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.headshot_cache = PreparedCache(settings.headshot_cache_size)
        self.headshot_outputs = PreparedCache(settings.headshot_cache_size)  # the face detector's finished outputs
        self.evidence_cache = PreparedCache(settings.headshot_cache_size)  # (provenance findings, pHash) per upload
        self.extras = ExtraDetectors(settings, self.metrics)
        self.ensembles: dict[str, LoadedEnsemble] = {}
        self.ensemble_status: dict[str, str] = {}
        self.reuse_index = ReuseIndex(store, settings.reuse_candidate_limit)
        self.overhead = OverheadMeter() if settings.energy_overhead else None

    async def start(self) -> None:
        keep_image_work_on_calling_threads()
        self._lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lane-{self.device.label}")
        self._pool = ThreadPoolExecutor(max_workers=self.settings.preprocess_threads(os.cpu_count()),
                                        thread_name_prefix="preprocess")
        self.slots = await asyncio.to_thread(load_slots, self.settings, self.device, self._provided)
        meter = self._meter or build_meter(self.settings, self.device)
        shipped_meter = lane_meter(self.settings, self.device, meter)
        for role, slot in self.slots.items():
            if slot.detector is None:
                continue
            batcher = MicroBatcher(
                slot.detector, shipped_meter, self._lane, max_batch_size=self.settings.max_batch_size,
                max_wait_s=self.settings.max_wait_s, max_queue=self.settings.max_queue,
                retry_after_s=self.settings.retry_after_s, on_batch=self.metrics.observe_batch,
                preprocess_power_w=self.settings.cpu_core_power_w, preprocess_pool=self._pool,
                cache=self.headshot_cache if role == "face" else None,
                outputs=self.headshot_outputs if role == "face" else None,
            )
            batcher.start()
            self.batchers[role] = batcher
        await self.extras.start(self._lane, self.device, meter)
        self.ensembles, self.ensemble_status = load_ensembles(self.settings)

    async def close(self) -> None:
        await self.extras.close()
        for batcher in self.batchers.values():
            await batcher.close()
        if self._lane is not None:
            self._lane.shutdown(wait=True, cancel_futures=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def readiness(self) -> ReadyStatus:
        workers = {role: b.is_alive for role, b in self.batchers.items()} | self.extras.workers()
        for role, batcher in self.batchers.items():
            self.metrics.queue_depth.labels(role).set(batcher.queue_depth)
        detectors = {role: slot.status for role, slot in self.slots.items()}
        extra = self.extras.statuses() | self.ensemble_status
        ready = bool(self.slots) and all(s.is_ready for s in self.slots.values()) and all(workers.values()) \
            and all(status == "ready" for status in extra.values())
        detectors |= extra
        return ReadyStatus(ready=ready, detectors=detectors, workers=workers)

    def detector_versions(self) -> dict[str, str]:
        shipped = {role: f"{s.detector.name}@{s.detector.version}" for role, s in self.slots.items() if s.detector}
        return shipped | self.extras.versions()

    async def check(self, request: CheckRequest, api_key_id: str | None = None) -> dict[str, Any]:
        """Run one check and store it. Returns the report as JSON-ready dict."""
        window = self.overhead.begin() if self.overhead is not None else None
        try:
            return await self._check(request, api_key_id, window)
        finally:
            if self.overhead is not None and window is not None:
                self.overhead.abandon(window)  # a no-op once the report closed the window

    async def _check(self, request: CheckRequest, api_key_id: str | None, window: Window | None) -> dict[str, Any]:
        started = time.perf_counter()
        text, images, decode_cpu_s = await self._validated(request)
        req_hash = request_hash(text, request, images)
        if request.idempotency_key:
            existing = await asyncio.to_thread(self.store.find_idempotent, api_key_id, request.idempotency_key)
            if existing is not None:
                return _replayed(existing.report, existing.request_hash, req_hash)
        deadline = time.monotonic() + self.settings.request_deadline_s
        candidates = await asyncio.to_thread(self.reuse_index.candidates, byline_key(request.byline)) \
            if images else None
        gathered = await asyncio.gather(
            self._judge_text(text, deadline),
            *(self._judge_headshot(i, img, deadline, candidates, decode_cpu_s[i]) for i, img in enumerate(images)),
            return_exceptions=True,
        )
        for outcome in gathered:
            if isinstance(outcome, BaseException):
                raise outcome
        text_outcome = cast(tuple[TextReport | None, tuple[EnergyPart, ...]], gathered[0])
        heads = [cast(_HeadshotOutcome, o) for o in gathered[1:]]
        report = self._report(request, text_outcome, heads, window)
        stored = await asyncio.to_thread(
            self.store.save_check, report, request_hash=req_hash, api_key_id=api_key_id,
            idempotency_key=request.idempotency_key, source=request.source, headshots=[h.record for h in heads],
        )
        self.metrics.checks.labels(stored.report["verdict"], request.source).inc()
        self.metrics.check_latency.observe(time.perf_counter() - started)
        return _replayed(stored.report, stored.request_hash, req_hash)

    async def _validated(self, request: CheckRequest) -> tuple[str | None, list[DecodedImage], list[float]]:
        """The validated text, the decoded headshots and each decode's CPU seconds (billed to the check)."""
        text = validate_text(request.text, self.settings) if request.text is not None else None
        if text is None and not request.headshots:
            raise InvalidRequestError("a check needs text, at least one headshot, or both")
        if len(request.headshots) > self.settings.max_headshots:
            raise TooManyHeadshotsError(f"at most {self.settings.max_headshots} headshots per check")
        min_side = 0 if any(s.role == "image" for s in self.settings.custom_detectors) \
            else self.settings.headshot_decode_min_side
        decoded = await asyncio.gather(*(self._on_pool(_cpu_timed, decode_image, h.data, self.settings, min_side)
                                         for h in request.headshots))
        return text, [image for image, _ in decoded], [cpu_s for _, cpu_s in decoded]

    async def _on_pool(self, work: Callable[..., _T], *args: Any) -> _T:
        """Run CPU work on the preprocessing pool (bounded to the cores), or a plain thread before start()."""
        if self._pool is None:
            return await asyncio.to_thread(work, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)

    async def _judge_text(self, text: str | None, deadline: float) -> tuple[TextReport | None, tuple[EnergyPart, ...]]:
        if text is None:
            return None, ()
        batcher = self.batchers.get("text")
        item = TextItem(text=text)
        result, extra = await asyncio.gather(batcher.submit(item, deadline) if batcher else _nothing(),
                                             self.extras.judge("text", item, deadline))
        report = text_section(result.output) if result else abstained_text(UNAVAILABLE)
        parts = ((energy_part(result),) if result else ()) + members_energy(extra)
        members = [MemberResult.of("text", SHIPPED, result), *extra]
        update: dict[str, Any] = {"detectors": [detector_score(m) for m in members]}
        ensemble = self.ensembles.get("text")
        if ensemble is not None:
            out = ensemble.judge(members)
            update |= {"ai_probability": out.probability, "verdict": out.verdict, "abstain_reason": out.abstain_reason,
                       "threshold": ensemble.thresholds.likely_ai, "raw_score": out.logit,
                       "score_direction": "higher_is_ai", "model": out.report.stacker, "ensemble": out.report}
        return report.model_copy(update=update), parts

    async def _judge_headshot(self, index: int, image: DecodedImage, deadline: float,
                              candidates: ReuseCandidates | None, decode_cpu_s: float) -> _HeadshotOutcome:
        batcher = self.batchers.get("face")
        item = ImageItem(pixels=image.pixels, original=image.original, submitted_size=image.submitted_size)
        key = f"{image.sha256}:{image.pixels.shape}:{image.width}x{image.height}:embed={self.settings.face_embeddings}"
        # The provenance readers and the face model do not depend on each other: on an idle service they run on
        # two cores at once; under load they queue for the same pool as before.
        evidence_outcome, result, extra = await asyncio.gather(
            self._on_pool(_cpu_timed, self._evidence, image),
            batcher.submit(item, deadline, cache_key=key) if batcher else _nothing(),
            self.extras.judge("image", item, deadline))
        (findings, phash), evidence_cpu_s = evidence_outcome
        out = result.output if result else None
        proves_ai = any(f.strength == evidence.PROVES_AI for f in findings)
        members = [MemberResult.of("face", SHIPPED, result), *extra]
        stacked = self.ensembles["image"].judge(members) if "image" in self.ensembles else None
        classifier = stacked.verdict if stacked else out.verdict if out else Verdict.ABSTAIN
        verdict, reasons = headshot_verdict(classifier, proves_ai)
        reasons = [*reasons, *(out.flags if out else ())]  # the face detector's own notes on this face
        reuse = candidates.find(phash, out.embedding if out else None, self.settings) if candidates is not None else []
        report = HeadshotReport(
            index=index,
            synthetic_probability=out.probability if out else None,
            verdict=verdict,
            abstain_reason=None if verdict is not Verdict.ABSTAIN else (out.abstain_reason if out else UNAVAILABLE),
            face_box=out.region.as_list() if out and out.region else None,
            provenance=list(findings),
            model=f"{out.detector}@{out.version}" if out else None,
            threshold=out.threshold if out else None,
            raw_score=out.raw_score if out else None,
            family=out.family if out else None,
            width=image.width, height=image.height, sha256=image.sha256, phash=phash,
            reuse=reuse, reasons=reasons,
        )
        report = _with_members(report, members, stacked, self.ensembles.get("image"))
        record = HeadshotRecord(
            idx=index, sha256=image.sha256, phash=phash,
            embedding=evidence.embedding_bytes(out.embedding if out else None),
            image=image.original if self.settings.keep_headshot_images else None, verdict=verdict.value,
        )
        parts: tuple[EnergyPart, ...] = (evidence_part(decode_cpu_s + evidence_cpu_s, self.settings),)
        parts += ((energy_part(result),) if result else ()) + members_energy(extra)
        return _HeadshotOutcome(report, parts, record)

    def _evidence(self, image: DecodedImage) -> tuple[tuple[ProvenanceFinding, ...], str]:
        """Provenance findings and pHash of one decoded upload, cached by its sha256 and decoded shape (both are
        functions of the bytes and the decode size alone; ~20 ms of a 1024 px JPEG's CPU, mostly the watermark)."""
        key = f"{image.sha256}:{image.pixels.shape}"
        cached: tuple[tuple[ProvenanceFinding, ...], str] | None = self.evidence_cache.get(key)
        if cached is None:
            cached = (tuple(evidence.provenance(image.original, image.full_bgr)), evidence.phash(image.pixels))
            self.evidence_cache.put(key, cached)
        return cached

    def _report(self, request: CheckRequest, text_outcome: tuple[TextReport | None, tuple[EnergyPart, ...]],
                heads: Sequence[_HeadshotOutcome], window: Window | None = None) -> dict[str, Any]:
        text_report, text_parts = text_outcome
        verdict, reasons = combine(text_report, [h.report for h in heads])
        parts = [*text_parts, *(p for h in heads for p in h.parts)]
        if self.overhead is not None and window is not None and parts:
            unbilled_s = self.overhead.finish(window, billed_cpu_s(parts, self.settings))
            if not any(p.source == EnergySource.RAPL for p in parts):
                parts.append(overhead_part(unbilled_s, self.settings))
        report = Report(
            id=new_check_id(), created_at=datetime.now(UTC), verdict=verdict, reasons=reasons,
            byline=request.byline, text=text_report, headshots=[h.report for h in heads],
            energy=energy_section(parts, self.settings), detectors=self.detector_versions(),
        )
        return report.model_dump(mode="json")


async def _nothing() -> None:
    return None


def _cpu_timed(work: Callable[..., _T], *args: Any) -> tuple[_T, float]:
    """``work(*args)`` and the CPU seconds this thread spent on it (run on a pool thread)."""
    started = time.thread_time()
    result = work(*args)
    return result, time.thread_time() - started


def _with_members(report: HeadshotReport, members: Sequence[MemberResult], stacked: EnsembleOutcome | None,
                  ensemble: LoadedEnsemble | None) -> HeadshotReport:
    update: dict[str, Any] = {"detectors": [detector_score(m) for m in members]}
    if stacked is not None and ensemble is not None:
        reason = stacked.abstain_reason if report.verdict is Verdict.ABSTAIN else None
        update |= {"synthetic_probability": stacked.probability, "abstain_reason": reason,
                   "threshold": ensemble.thresholds.likely_ai, "raw_score": stacked.logit,
                   "model": stacked.report.stacker, "ensemble": stacked.report}
    return report.model_copy(update=update)


def _replayed(report: dict[str, Any], stored_hash: str, new_hash: str) -> dict[str, Any]:
    if stored_hash != new_hash:
        raise ConflictError("Idempotency-Key was already used with a different request")
    return report
