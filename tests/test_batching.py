from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from detectors.contract import TextItem
from detectors.energy import CpuTimeMeter
from service.api import create_app
from service.batching import ItemRejectedError, MicroBatcher
from service.config import Settings
from service.domain import Scope
from service.errors import DeadlineExceededError, OverloadedError, UnavailableError
from tests.fakes import FakeTextDetector

TEXT = "one two three four five six seven eight"


def _batcher(detector: FakeTextDetector, **kw: float) -> MicroBatcher:
    lane = ThreadPoolExecutor(max_workers=1)
    options = {"max_batch_size": 8, "max_wait_s": 0.05, "max_queue": 64, **kw}
    return MicroBatcher(detector, CpuTimeMeter(5.0, "test"), lane, **options)  # type: ignore[arg-type]


def test_concurrent_requests_are_batched_and_energy_shares_add_up() -> None:
    detector = FakeTextDetector()

    async def run() -> list:
        batcher = _batcher(detector)
        batcher.start()
        deadline = time.monotonic() + 10
        texts = [TEXT + " extra" * i for i in range(8)]
        results = await asyncio.gather(*(batcher.submit(TextItem(t), deadline) for t in texts))
        await batcher.close()
        return results

    results = asyncio.run(run())
    assert max(detector.batch_sizes) > 1
    assert sum(detector.batch_sizes) == 8
    by_batch: dict[int, list] = {}
    for r in results:
        by_batch.setdefault(id(r.energy.reading), []).append(r)
    for group in by_batch.values():
        total = group[0].energy.reading.joules
        assert sum(r.energy.joules for r in group) == pytest.approx(total)
        assert sum(r.energy.share for r in group) == pytest.approx(1.0)
        assert all(r.energy.joules > 0 for r in group)
    # longer texts get a larger share within a batch
    biggest = max(by_batch.values(), key=len)
    ordered = sorted(biggest, key=lambda r: r.output.evidence)
    assert ordered[-1].energy.share >= ordered[0].energy.share


def test_queue_full_is_overloaded_with_retry_after() -> None:
    detector = FakeTextDetector(forward_delay_s=0.3)

    async def run() -> list:
        batcher = _batcher(detector, max_queue=2, max_batch_size=1, max_wait_s=0.0)
        batcher.start()
        deadline = time.monotonic() + 10
        results = await asyncio.gather(*(batcher.submit(TextItem(TEXT), deadline) for _ in range(8)),
                                       return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(run())
    overloaded = [r for r in results if isinstance(r, OverloadedError)]
    assert overloaded
    assert overloaded[0].headers["Retry-After"] == "1"
    assert all(not isinstance(r, Exception) or isinstance(r, OverloadedError) for r in results)


def test_expired_deadline_fails_before_inference() -> None:
    detector = FakeTextDetector(forward_delay_s=0.2)

    async def run() -> list:
        batcher = _batcher(detector, max_batch_size=1, max_wait_s=0.0)
        batcher.start()
        now = time.monotonic()
        results = await asyncio.gather(batcher.submit(TextItem(TEXT), now + 5),
                                       batcher.submit(TextItem(TEXT), now + 0.05), return_exceptions=True)
        await batcher.close()
        return results

    first, second = asyncio.run(run())
    assert not isinstance(first, Exception)
    assert isinstance(second, DeadlineExceededError)
    assert detector.batch_sizes == [1]


def test_failed_batch_answers_everyone_and_bad_item_fails_alone() -> None:
    failing = FakeTextDetector(fail_forward=True)
    good = FakeTextDetector()

    async def run(detector: FakeTextDetector, texts: list[str]) -> list:
        batcher = _batcher(detector)
        batcher.start()
        deadline = time.monotonic() + 5
        results = await asyncio.gather(*(batcher.submit(TextItem(t), deadline) for t in texts),
                                       return_exceptions=True)
        alive = batcher.is_alive
        await batcher.close()
        return [*results, alive]

    *results, alive = asyncio.run(run(failing, [TEXT] * 4))
    assert all(isinstance(r, UnavailableError) for r in results)
    assert alive  # a failed batch does not kill the worker
    *results, _ = asyncio.run(run(good, [TEXT, "bad \ufffd " + TEXT, TEXT]))
    assert isinstance(results[1], ItemRejectedError)
    assert not isinstance(results[0], Exception)
    assert not isinstance(results[2], Exception)


def test_dead_worker_flips_readyz(settings: Settings) -> None:
    detector = FakeTextDetector()
    app = create_app(settings, detectors={"text": detector})
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        detector.kill_worker = True
        token = app.state.store.create_api_key("t", [Scope.CHECK])
        resp = client.post("/v1/checks", json={"text": TEXT}, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["workers"]["text"] is False


def test_http_concurrency_batches_requests(settings: Settings) -> None:
    detector = FakeTextDetector(forward_delay_s=0.05)
    app = create_app(settings.model_copy(update={"max_wait_s": 0.05}), detectors={"text": detector})
    with TestClient(app) as client:
        token = app.state.store.create_api_key("t", [Scope.CHECK])
        headers = {"Authorization": f"Bearer {token}"}
        with ThreadPoolExecutor(max_workers=12) as pool:
            responses = list(pool.map(lambda i: client.post("/v1/checks", json={"text": f"{TEXT} {i}"}, headers=headers),
                                      range(12)))
    assert all(r.status_code == 200 for r in responses)
    assert max(detector.batch_sizes) > 1
    assert max(r.json()["energy"]["batch_size"] for r in responses) > 1


def test_preprocessing_cpu_time_is_added_as_an_estimate() -> None:
    detector = FakeTextDetector()

    async def run() -> list:
        batcher = MicroBatcher(detector, CpuTimeMeter(5.0, "test"), ThreadPoolExecutor(max_workers=1),
                               max_batch_size=4, max_wait_s=0.01, max_queue=8, preprocess_power_w=10.0)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(TextItem(TEXT * 200), time.monotonic() + 5) for _ in range(3)))
        await batcher.close()
        return results

    for result in asyncio.run(run()):
        energy = result.energy
        assert energy.preprocess_cpu_s >= 0
        assert energy.preprocess_j == pytest.approx(energy.preprocess_cpu_s * 10.0)
        assert energy.joules == pytest.approx(energy.forward_j + energy.preprocess_j)
