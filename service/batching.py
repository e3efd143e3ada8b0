"""Micro-batching per detector and device, with limits, deadlines and energy windows.

Caveats first: every submitted future resolves — with a result, with the item's own error, or with
the batch's error — even when a batch fails or the worker dies (then :attr:`MicroBatcher.is_alive`
turns False and ``/readyz`` reports it). The queue is bounded (full: :class:`OverloadedError`, 429),
and a request whose deadline passed while it waited fails with :class:`DeadlineExceededError` (504)
before any inference is spent on it.

Each batch's ``forward`` runs on its device's *lane*, a single thread shared by every detector on
that device, inside an energy window, then postprocess. The window's reading is shared among the
batch's items in proportion to their ``work`` (tokens, pixels), so the shares add up to the measured
total. Preprocessing (face finding, featurisation: the CPU-heavy part) runs either on the lane too, or,
when a ``preprocess_pool`` is given, on that pool as soon as each item is submitted, so that several
items are prepared at once on several cores while the lane forwards earlier batches. Either way each
item's preprocessing CPU time is its own thread's (``time.thread_time`` around its own preprocess), and
the queue limit counts items being prepared as well as items waiting for a batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from detectors.contract import Detector, DetectorOutput, InvalidItemError, Prepared
from detectors.energy import EnergyMeter, EnergyMethod, EnergyReading, EnergySource
from service.caching import PreparedCache
from service.errors import BadInputError, DeadlineExceededError, OverloadedError, UnavailableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnergyShare:
    """One item's energy: its share of the batch's forward-pass reading plus its own preprocessing.

    ``forward_j`` is ``share`` of the batch's measured (or estimated) window; ``preprocess_j`` is the
    item's own preprocessing CPU time (face finding, featurisation) times the per-core power figure,
    always an estimate (0 when no figure was given). ``joules`` is their sum.
    """

    joules: float
    share: float
    batch_size: int
    reading: EnergyReading
    forward_j: float = 0.0
    preprocess_j: float = 0.0
    preprocess_cpu_s: float = 0.0


@dataclass(frozen=True)
class BatchedResult:
    output: DetectorOutput
    energy: EnergyShare


_UNPREPARED = object()


@dataclass
class _Pending:
    item: Any
    deadline: float
    future: asyncio.Future[BatchedResult]
    prepared: Any = _UNPREPARED  # set when the item was preprocessed on the pool
    prep_cpu_s: float = 0.0
    key: str | None = None  # the cache key, when its output is to be kept in ``outputs``


@dataclass(frozen=True)
class BatchStats:
    """What the batcher reports to metrics after each batch."""

    detector: str
    size: int
    reading: EnergyReading


class ItemRejectedError(BadInputError):
    status_code = 422
    code = "item_rejected"


class MicroBatcher:
    """Groups concurrent submissions for one detector into batches of up to ``max_batch_size``."""

    def __init__(
        self,
        detector: Detector[Any],
        meter: EnergyMeter,
        lane: Executor,
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int,
        retry_after_s: int = 1,
        on_batch: Any = None,
        preprocess_power_w: float | None = None,
        preprocess_pool: Executor | None = None,
        cache: PreparedCache | None = None,
        outputs: PreparedCache | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self.detector = detector
        self.meter = meter
        self.lane = lane
        self.max_batch_size = min(max_batch_size, detector.max_batch_size)
        self.max_wait_s = max_wait_s
        self.retry_after_s = retry_after_s
        self.on_batch = on_batch
        self.preprocess_power_w = preprocess_power_w
        self.preprocess_pool = preprocess_pool
        self.cache = cache
        self.outputs = outputs
        self.max_queue = max_queue
        self._preparing = 0
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self.failure: str | None = None

    @property
    def is_alive(self) -> bool:
        return self._task is not None and not self._task.done() and self.failure is None

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() + self._preparing

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.detector.name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail_waiting(UnavailableError("service shutting down"))

    async def submit(self, item: Any, deadline: float, cache_key: str | None = None) -> BatchedResult:
        """Queue ``item``; ``deadline`` is a ``time.monotonic()`` instant.

        With a ``cache`` and a preprocessing pool, ``cache_key`` (what identifies the item's content, e.g. the
        sha256 of an upload) looks up an earlier item's preprocessing; the detector's name and version are
        added to the key here. With ``outputs`` too, an earlier item's finished output is looked up first: a hit
        is answered at once, without preprocessing or a forward pass (see :meth:`_cached`).
        """
        if not self.is_alive:
            raise UnavailableError(f"detector {self.detector.name} worker is not running")
        if self.preprocess_pool is None:
            return await self._enqueue(_Pending(item=item, deadline=deadline, future=self._new_future()))
        key = None if cache_key is None or self.cache is None else \
            f"{self.detector.name}@{self.detector.version}:{cache_key}"
        if key is not None and self.outputs is not None:
            started = time.thread_time()
            output: DetectorOutput | None = self.outputs.get(key)
            if output is not None:
                return self._cached(output, time.thread_time() - started)
        if self.queue_depth >= self.max_queue:
            raise self._overloaded()
        self._preparing += 1
        try:
            loop = asyncio.get_running_loop()
            prepared, cpu_s = await loop.run_in_executor(self.preprocess_pool, self._prepare, item, deadline, key)
        finally:
            self._preparing -= 1
        if isinstance(prepared, BaseException):
            raise prepared
        if not self.is_alive:  # the worker died (or closed) while this item was being prepared
            raise UnavailableError(f"detector {self.detector.name} worker is not running")
        pending = _Pending(item=item, deadline=deadline, future=self._new_future(), prepared=prepared, prep_cpu_s=cpu_s,
                           key=key if self.outputs is not None else None)
        return await self._enqueue(pending)

    def _cached(self, output: DetectorOutput, cpu_s: float) -> BatchedResult:
        """An earlier identical item's output. Its energy is the look-up's own CPU time (an estimate): no
        preprocessing and no forward pass ran for it, so it has no share of any batch."""
        joules = cpu_s * (self.preprocess_power_w or 0.0)
        reading = EnergyReading(joules=joules, method=EnergyMethod.ESTIMATED, source=EnergySource.CPU_TIME,
                                device="cpu", window_s=0.0,
                                note="output of an identical earlier item (same detector version): no forward pass")
        return BatchedResult(output=output, energy=EnergyShare(joules=joules, share=1.0, batch_size=1, reading=reading,
                                                               preprocess_j=joules, preprocess_cpu_s=cpu_s))

    @staticmethod
    def _new_future() -> asyncio.Future[BatchedResult]:
        return asyncio.get_running_loop().create_future()

    def _overloaded(self) -> OverloadedError:
        return OverloadedError(f"{self.detector.name} queue is full", headers={"Retry-After": str(self.retry_after_s)})

    async def _enqueue(self, pending: _Pending) -> BatchedResult:
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise self._overloaded() from None
        return await pending.future

    def _prepare(self, item: Any, deadline: float, key: str | None = None) -> tuple[Prepared | BaseException, float]:
        """Runs on the pool: one item's preprocess (or cache hit) and its own thread's CPU seconds."""
        if deadline <= time.monotonic():
            return DeadlineExceededError("deadline passed before inference"), 0.0
        started = time.thread_time()
        prepared = None if key is None or self.cache is None else self.cache.get(key)
        if prepared is None:
            prepared = self._preprocess_one(item)
            if key is not None and self.cache is not None and not isinstance(prepared, BaseException):
                self.cache.put(key, prepared)
        return prepared, time.thread_time() - started

    def _preprocess_one(self, item: Any) -> Prepared | BaseException:
        try:
            return self.detector.preprocess(item)
        except InvalidItemError as exc:
            return ItemRejectedError(f"{exc.code}: {exc}")
        except Exception as exc:
            logger.warning("preprocess failed in %s: %s", self.detector.name, type(exc).__name__)
            return ItemRejectedError(f"could not prepare item: {type(exc).__name__}")

    async def _run(self) -> None:
        try:
            while True:
                batch = await self._collect()
                live = self._drop_expired(batch)
                if live:
                    await self._process(live)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the worker must never die silently
            self.failure = f"{type(exc).__name__}: {exc}"
            logger.exception("batcher for %s died", self.detector.name)
            self._fail_waiting(UnavailableError(f"detector {self.detector.name} worker died"))

    async def _collect(self) -> list[_Pending]:
        """The next batch: the first queued item, then more for up to ``max_wait_s`` while more can come.

        With a preprocessing pool an item reaches the queue only after its preprocessing, so when the queue is empty
        and no item is being prepared nothing can join within the wait: the batch goes at once instead of adding
        ``max_wait_s`` to a lone check's latency. Under load items are always being prepared and batches wait as before.
        """
        batch = [await self._queue.get()]
        until = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if self.preprocess_pool is not None and self._preparing == 0 and self._queue.empty():
                break
            remaining = until - time.monotonic()
            if remaining <= 0:
                while len(batch) < self.max_batch_size and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    @staticmethod
    def _drop_expired(batch: list[_Pending]) -> list[_Pending]:
        now = time.monotonic()
        live = []
        for pending in batch:
            if pending.future.done():
                continue
            if pending.deadline <= now:
                pending.future.set_exception(DeadlineExceededError("deadline passed before inference"))
            else:
                live.append(pending)
        return live

    async def _process(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(self.lane, self._run_batch, batch)
        except Exception as exc:
            logger.exception("batch of %d failed in %s", len(batch), self.detector.name)
            for pending in batch:
                _resolve(pending.future, exc=UnavailableError(f"inference failed: {type(exc).__name__}"))
            return
        except BaseException:  # worker death or cancellation: answer the batch, then let it end the loop
            for pending in batch:
                _resolve(pending.future, exc=UnavailableError(f"detector {self.detector.name} worker stopped"))
            raise
        results, reading = outcome
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                _resolve(pending.future, exc=result)
            else:
                if pending.key is not None and self.outputs is not None:
                    self.outputs.put(pending.key, result.output)
                _resolve(pending.future, value=result)
        if self.on_batch is not None and reading is not None:
            self.on_batch(BatchStats(detector=self.detector.name, size=len(batch), reading=reading))

    def _run_batch(self, pending: Sequence[_Pending]) -> tuple[list[BatchedResult | BaseException], EnergyReading | None]:
        """Runs on the lane thread: preprocess each (unless the pool did), forward the good ones, share the energy."""
        prepared: list[Prepared | BaseException] = []
        prep_cpu_s: list[float] = []
        for entry in pending:
            if entry.prepared is not _UNPREPARED:
                prepared.append(entry.prepared)
                prep_cpu_s.append(entry.prep_cpu_s)
                continue
            started = time.thread_time()
            prepared.append(self._preprocess_one(entry.item))
            prep_cpu_s.append(time.thread_time() - started)
        good = sorted((i for i, p in enumerate(prepared) if not isinstance(p, BaseException)),
                      key=lambda i: _work(prepared[i]))
        if not good:
            return [p for p in prepared if isinstance(p, BaseException)], None
        batch = [prepared[i] for i in good]
        token = self.meter.begin()
        raw = self.detector.forward(batch)  # type: ignore[arg-type]
        reading = self.meter.end(token)
        outputs = self.detector.postprocess(batch, raw)  # type: ignore[arg-type]
        total_work = sum(max(_work(p), 1e-9) for p in batch)
        results: list[BatchedResult | BaseException] = list(prepared)  # type: ignore[arg-type]
        for i, p, out in zip(good, batch, outputs, strict=True):
            share = max(_work(p), 1e-9) / total_work
            forward_j = reading.joules * share
            preprocess_j = prep_cpu_s[i] * self.preprocess_power_w if self.preprocess_power_w else 0.0
            results[i] = BatchedResult(
                output=out,
                energy=EnergyShare(joules=forward_j + preprocess_j, share=share, batch_size=len(batch),
                                   reading=reading, forward_j=forward_j, preprocess_j=preprocess_j,
                                   preprocess_cpu_s=prep_cpu_s[i]),
            )
        return results, reading

    def _fail_waiting(self, exc: Exception) -> None:
        while not self._queue.empty():
            _resolve(self._queue.get_nowait().future, exc=exc)


def _work(prepared: Any) -> float:
    return float(getattr(prepared, "work", 1.0))


def _resolve(future: asyncio.Future[BatchedResult], *, value: BatchedResult | None = None,
             exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)  # type: ignore[arg-type]
