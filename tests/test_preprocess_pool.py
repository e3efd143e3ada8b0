"""Preprocessing on a bounded pool beside the inference lane, and the content-hash cache of preprocessed items."""

from __future__ import annotations

import asyncio
import io
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from detectors.contract import TextItem
from detectors.energy import CpuTimeMeter
from service.api import create_app
from service.batching import ItemRejectedError, MicroBatcher
from service.caching import PreparedCache
from service.config import Settings
from service.domain import Scope
from service.errors import DeadlineExceededError, OverloadedError, UnavailableError
from tests.fakes import FakeFaceDetector, FakeTextDetector

TEXT = "one two three four five six seven eight"


class CountingTextDetector(FakeTextDetector):
    """The fake text detector, counting preprocess calls; ``spin`` words of busy CPU per word (for CPU time)."""

    def __init__(self, version: str = "0", spin: int = 0, prepare_delay_s: float = 0.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.version = version
        self.spin = spin
        self.prepare_delay_s = prepare_delay_s
        self.prepared = 0

    def preprocess(self, item: TextItem) -> Any:
        with self._lock:
            self.prepared += 1
        time.sleep(self.prepare_delay_s)
        total = 0
        for i in range(self.spin * len(item.text.split())):
            total += i * i
        return super().preprocess(item)


def _batcher(detector: FakeTextDetector, pool: ThreadPoolExecutor, **kw: Any) -> MicroBatcher:
    options = {"max_batch_size": 8, "max_wait_s": 0.02, "max_queue": 64, "preprocess_power_w": 10.0, **kw}
    return MicroBatcher(detector, CpuTimeMeter(5.0, "test"), ThreadPoolExecutor(max_workers=1),  # type: ignore[arg-type]
                        preprocess_pool=pool, **options)


def test_pool_resolves_every_future_and_bills_each_item_its_own_cpu() -> None:
    detector = CountingTextDetector(spin=20_000)
    pool = ThreadPoolExecutor(max_workers=2)

    async def run() -> list[Any]:
        batcher = _batcher(detector, pool)
        batcher.start()
        now = time.monotonic()
        submissions = [batcher.submit(TextItem(TEXT * (1 + i % 3)), now + 10) for i in range(9)]
        submissions += [batcher.submit(TextItem("bad \ufffd " + TEXT), now + 10),
                        batcher.submit(TextItem(TEXT), now - 1)]
        results = await asyncio.wait_for(asyncio.gather(*submissions, return_exceptions=True), 30)
        await batcher.close()
        return results

    *good, bad, late = asyncio.run(run())
    pool.shutdown()
    assert isinstance(bad, ItemRejectedError)
    assert isinstance(late, DeadlineExceededError)
    assert not any(isinstance(r, BaseException) for r in good)
    for result in good:
        assert result.energy.preprocess_j == pytest.approx(result.energy.preprocess_cpu_s * 10.0)
        assert result.energy.joules == pytest.approx(result.energy.forward_j + result.energy.preprocess_j)
    by_words = sorted(good, key=lambda r: r.output.evidence)
    assert by_words[-1].energy.preprocess_cpu_s > by_words[0].energy.preprocess_cpu_s  # 3x the words, 3x the spin


def test_pool_answers_a_failed_batch_and_a_closed_batcher() -> None:
    pool = ThreadPoolExecutor(max_workers=2)

    async def failing() -> list[Any]:
        batcher = _batcher(CountingTextDetector(fail_forward=True), pool)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(TextItem(TEXT), time.monotonic() + 5) for _ in range(4)),
                                       return_exceptions=True)
        await batcher.close()
        return results

    async def closing() -> list[Any]:
        batcher = _batcher(CountingTextDetector(prepare_delay_s=0.2), pool)
        batcher.start()
        tasks = [asyncio.ensure_future(batcher.submit(TextItem(TEXT), time.monotonic() + 5)) for _ in range(3)]
        await asyncio.sleep(0.05)  # the items are being prepared
        await batcher.close()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)

    assert all(isinstance(r, UnavailableError) for r in asyncio.run(failing()))
    assert all(isinstance(r, UnavailableError) for r in asyncio.run(closing()))
    pool.shutdown()


def test_items_being_prepared_count_against_the_queue_limit() -> None:
    pool = ThreadPoolExecutor(max_workers=2)

    async def run() -> list[Any]:
        batcher = _batcher(CountingTextDetector(prepare_delay_s=0.1), pool, max_queue=2)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(TextItem(TEXT), time.monotonic() + 5) for _ in range(6)),
                                       return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(run())
    pool.shutdown()
    overloaded = [r for r in results if isinstance(r, OverloadedError)]
    assert len(overloaded) == 4
    assert overloaded[0].headers["Retry-After"] == "1"
    assert sum(not isinstance(r, BaseException) for r in results) == 2


def test_lru_cache_is_bounded_and_zero_disables_it() -> None:
    cache = PreparedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == (1, 3, 2)
    assert (cache.hits, cache.misses) == (3, 1)
    off = PreparedCache(0)
    off.put("a", 1)
    assert off.get("a") is None
    with pytest.raises(ValueError, match="max_entries"):
        PreparedCache(-1)


def test_cache_hit_skips_preprocessing_and_a_new_model_version_misses() -> None:
    cache = PreparedCache(8)
    pool = ThreadPoolExecutor(max_workers=2)
    old, new = CountingTextDetector(version="1"), CountingTextDetector(version="2")

    async def run() -> list[Any]:
        out = []
        for detector in (old, old, new):
            batcher = _batcher(detector, pool, cache=cache)
            batcher.start()
            out.append(await batcher.submit(TextItem(TEXT), time.monotonic() + 5, cache_key="sha256-of-the-text"))
            await batcher.close()
        return out

    first, second, third = asyncio.run(run())
    pool.shutdown()
    assert (old.prepared, new.prepared) == (1, 1)  # the second check of the same content hit the cache
    assert second.output == first.output
    assert third.output.version == "2"
    assert (cache.hits, cache.misses) == (1, 2)


def test_output_cache_answers_a_repeat_without_preprocess_or_forward() -> None:
    cache, outputs = PreparedCache(8), PreparedCache(8)
    pool = ThreadPoolExecutor(max_workers=2)
    old, new = CountingTextDetector(version="1"), CountingTextDetector(version="2")

    async def run() -> list[Any]:
        out = []
        for detector, key in ((old, "k"), (old, "k"), (old, "other"), (new, "k")):
            batcher = _batcher(detector, pool, cache=cache, outputs=outputs)
            batcher.start()
            out.append(await batcher.submit(TextItem(TEXT), time.monotonic() + 5, cache_key=key))
            await batcher.close()
        return out

    first, repeat, other, newer = asyncio.run(run())
    pool.shutdown()
    assert (old.prepared, sum(old.batch_sizes)) == (2, 2)  # "k" once, "other" once: the repeat ran neither
    assert (new.prepared, sum(new.batch_sizes)) == (1, 1)  # a new model version misses
    assert repeat.output is first.output
    assert (outputs.hits, outputs.misses) == (1, 3)
    assert (cache.hits, cache.misses) == (0, 3)  # the repeat never reached the preprocessed-item cache
    energy = repeat.energy
    assert (energy.forward_j, energy.batch_size, energy.share) == (0.0, 1, 1.0)
    assert energy.joules == pytest.approx(energy.preprocess_cpu_s * 10.0)
    assert energy.reading.method.value == "estimated"
    assert "no forward pass" in energy.reading.note
    assert min(first.energy.forward_j, other.energy.forward_j, newer.energy.forward_j) > 0


def _jpeg(red: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1024, 1024), (red, 90, 80)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _headshot_report(client: TestClient, auth: dict[str, str], image: bytes) -> dict[str, Any]:
    """The first headshot section of a check of TEXT with ``image`` through the API."""
    resp = client.post("/v1/checks", data={"text": TEXT}, files=[("headshots", ("h.jpg", image, "image/jpeg"))],
                       headers=auth)
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["headshots"][0])


def test_the_same_headshot_twice_hits_both_caches_through_the_api(settings: Settings,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A repeated upload skips face preprocessing and the forward pass (output cache) and the provenance readers
    (evidence cache)."""
    from service import headshots

    calls: list[int] = []
    real = headshots.provenance

    def counted(original: bytes, full_bgr: Any = None) -> list[Any]:
        calls.append(len(original))
        return real(original, full_bgr)

    monkeypatch.setattr(headshots, "provenance", counted)
    app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {app.state.store.create_api_key('t', [Scope.CHECK])}"}
        first, again, other = (_headshot_report(client, auth, _jpeg(red)) for red in (200, 200, 20))
        pipeline = app.state.pipeline
        faces, outputs, evidence = pipeline.headshot_cache, pipeline.headshot_outputs, pipeline.evidence_cache
    assert (outputs.hits, outputs.misses) == (1, 2)
    assert (faces.hits, faces.misses) == (0, 2)  # answered from the output cache before preprocessing
    assert again["synthetic_probability"] == first["synthetic_probability"]
    assert again["face_box"] == first["face_box"]
    assert other["synthetic_probability"] != first["synthetic_probability"]
    assert (evidence.hits, evidence.misses) == (1, 2)
    assert len(calls) == 2  # the repeated upload was not read again
    assert (again["provenance"], again["phash"]) == (first["provenance"], first["phash"])


class SignallingFaceDetector(FakeFaceDetector):
    """Sets ``started`` when its preprocessing begins."""

    def __init__(self) -> None:
        import threading

        self.started = threading.Event()

    def preprocess(self, item: Any) -> Any:
        self.started.set()
        return super().preprocess(item)


def test_provenance_and_face_preprocessing_of_a_headshot_overlap(settings: Settings,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The provenance readers do not hold up the face model: while they run, the face is already being prepared
    on the pool's other thread (before round 8 the face was submitted only after them)."""
    from service import headshots

    face = SignallingFaceDetector()
    seen: list[bool] = []
    real = headshots.provenance

    def waits_for_the_face(original: bytes, full_bgr: Any = None) -> list[Any]:
        seen.append(face.started.wait(timeout=5.0))
        return real(original, full_bgr)

    monkeypatch.setattr(headshots, "provenance", waits_for_the_face)
    two_threads = settings.model_copy(update={"preprocess_workers": 2})
    app = create_app(two_threads, detectors={"text": FakeTextDetector(), "face": face})
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {app.state.store.create_api_key('t', [Scope.CHECK])}"}
        report = _headshot_report(client, auth, _jpeg(210))
    assert seen == [True]
    assert report["verdict"] == "likely_ai"
    assert report["phash"]


def test_lane_meter_counts_only_its_own_thread() -> None:
    """Another thread's work in the window (the pool preparing other checks) is not billed to the forward pass."""
    import threading

    from detectors.contract import Device, DeviceKind
    from detectors.energy import CpuTimeMeter, ThreadCpuTimeMeter
    from service.energy_setup import lane_meter

    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(i * i for i in range(1000))

    thread_meter, process_meter = ThreadCpuTimeMeter(10.0, "test"), CpuTimeMeter(10.0, "test")
    other = threading.Thread(target=spin)
    other.start()
    try:
        thread_token, process_token = thread_meter.begin(), process_meter.begin()
        time.sleep(0.3)  # this thread idles while the other one works
        thread_reading, process_reading = thread_meter.end(thread_token), process_meter.end(process_token)
    finally:
        stop.set()
        other.join()
    assert thread_reading.joules < process_reading.joules / 3
    assert thread_reading.joules > 0
    single = Settings(intra_op_threads=1)
    assert isinstance(lane_meter(single, Device(), process_meter), ThreadCpuTimeMeter)
    assert lane_meter(Settings(intra_op_threads=0), Device(), process_meter) is process_meter
    assert lane_meter(single, Device(kind=DeviceKind.CUDA), process_meter) is process_meter


def test_headshot_decode_and_provenance_are_billed_to_the_check(settings: Settings) -> None:
    app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {app.state.store.create_api_key('t', [Scope.CHECK])}"}
        resp = client.post("/v1/checks", data={"text": TEXT}, files=[("headshots", ("h.jpg", _jpeg(120), "image/jpeg"))],
                           headers=auth)
    energy = resp.json()["energy"]
    [evidence] = [p for p in energy["parts"] if p["detector"] == "headshot-evidence"]
    assert evidence["joules"] > 0
    assert evidence["method"] == "estimated"
    assert evidence["preprocess_j"] == pytest.approx(evidence["joules"])
    assert energy["joules"] == pytest.approx(sum(p["joules"] for p in energy["parts"]))
    assert energy["share"] <= 1.0


def test_started_pipeline_keeps_opencv_on_the_calling_threads(settings: Settings) -> None:
    """OpenCV's own worker threads would do billed-to-nobody work: the started service runs OpenCV single-threaded."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
        with TestClient(app):
            assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)


class SlowWhenAskedTextDetector(FakeTextDetector):
    """Preprocessing takes ``delay_s`` for texts that contain 'slow', no time otherwise."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def preprocess(self, item: TextItem) -> Any:
        if "slow" in item.text:
            time.sleep(self.delay_s)
        return super().preprocess(item)


def test_a_lone_item_is_forwarded_without_waiting_for_a_batch() -> None:
    """Nothing queued and nothing being prepared: no item can join, so the batch must not sit out max_wait_s."""
    detector = FakeTextDetector()
    pool = ThreadPoolExecutor(max_workers=2)

    async def run() -> Any:
        batcher = _batcher(detector, pool, max_wait_s=60.0)
        batcher.start()
        try:  # 60 s of waiting would time out here
            return await asyncio.wait_for(batcher.submit(TextItem(TEXT), time.monotonic() + 120), 20)
        finally:
            await batcher.close()

    result = asyncio.run(run())
    pool.shutdown()
    assert result.energy.batch_size == 1
    assert detector.batch_sizes == [1]


def test_the_batch_waits_for_an_item_still_being_prepared() -> None:
    detector = SlowWhenAskedTextDetector(delay_s=0.3)
    pool = ThreadPoolExecutor(max_workers=2)

    async def run() -> list[Any]:
        batcher = _batcher(detector, pool, max_wait_s=30.0)
        batcher.start()
        try:
            deadline = time.monotonic() + 120
            return await asyncio.wait_for(asyncio.gather(batcher.submit(TextItem(TEXT), deadline),
                                                         batcher.submit(TextItem("slow " + TEXT), deadline)), 20)
        finally:
            await batcher.close()

    results = asyncio.run(run())
    pool.shutdown()
    assert detector.batch_sizes == [2]  # the fast item waited for the slow one, then nothing more was coming
    assert [r.energy.batch_size for r in results] == [2, 2]


def test_the_preprocessing_pool_has_four_threads_per_core_unless_set(settings: Settings) -> None:
    assert settings.model_copy(update={"preprocess_workers": 0}).preprocess_threads(2) == 8
    assert settings.model_copy(update={"preprocess_workers": 0}).preprocess_threads(None) == 4
    assert settings.model_copy(update={"preprocess_workers": 0}).preprocess_threads(64) == 64
    assert settings.model_copy(update={"preprocess_workers": 3}).preprocess_threads(2) == 3
