"""The service-overhead energy part: the worker process's CPU that no detector part bills, per check."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.domain import Scope
from service.overhead import OVERHEAD_PART, OverheadMeter
from service.reports import billed_cpu_s, energy_section, overhead_part
from service.schemas import EnergyPart
from tests.fakes import FakeClock, FakeFaceDetector, FakeTextDetector, jpeg_bytes

TEXT = "The council met on Tuesday. It voted to repair the bridge on Main Street before winter comes."


def test_a_lone_checks_window_is_its_own_unbilled_cpu() -> None:
    clock = FakeClock()
    meter = OverheadMeter(smoothing=1.0, clock=clock)
    window = meter.begin()
    clock.now += 0.050
    assert meter.finish(window, billed_cpu_s=0.030) == pytest.approx(0.020)
    assert meter.in_flight == 0


def test_idle_cpu_between_busy_periods_is_billed_to_no_check() -> None:
    clock = FakeClock()
    meter = OverheadMeter(smoothing=1.0, clock=clock)
    meter.finish(meter.begin(), billed_cpu_s=0.0)
    clock.now += 9.0  # background threads while nothing is in flight
    window = meter.begin()
    clock.now += 0.010
    assert meter.finish(window, billed_cpu_s=0.004) == pytest.approx(0.006)


def test_concurrent_checks_share_the_busy_periods_unbilled_cpu() -> None:
    clock = FakeClock()
    meter = OverheadMeter(smoothing=1.0, clock=clock)
    first, second = meter.begin(), meter.begin()
    clock.now += 0.100
    meter.finish(first, billed_cpu_s=0.060)  # window 0.100: 0.040 unbilled so far
    clock.now += 0.080
    # the second check's window starts where the first one's ended: over both windows the process used 0.180 s,
    # the checks billed 0.060 + 0.070, so 0.050 is unbilled in all
    assert meter.finish(second, billed_cpu_s=0.070) == pytest.approx(0.010)
    assert meter.in_flight == 0


def test_the_average_is_smoothed_and_never_reported_below_zero() -> None:
    clock = FakeClock()
    meter = OverheadMeter(smoothing=0.5, clock=clock)
    window = meter.begin()
    clock.now += 0.010
    assert meter.finish(window, billed_cpu_s=0.030) == 0.0  # a window can bill CPU spent before it opened
    assert meter.average_s == pytest.approx(-0.020)
    window = meter.begin()
    clock.now += 0.100
    assert meter.finish(window, billed_cpu_s=0.020) == pytest.approx(-0.020 + 0.5 * (0.080 + 0.020))


def test_abandoned_checks_close_once_and_leave_the_average_alone() -> None:
    clock = FakeClock()
    meter = OverheadMeter(smoothing=1.0, clock=clock)
    kept, refused = meter.begin(), meter.begin()
    meter.abandon(refused)
    meter.abandon(refused)
    assert meter.in_flight == 1
    clock.now += 0.040
    assert meter.finish(kept, billed_cpu_s=0.030) == pytest.approx(0.010)  # the refused request's CPU included
    meter.abandon(kept)  # after finish: a no-op
    assert meter.in_flight == 0
    assert meter.average_s == pytest.approx(0.010)
    with pytest.raises(ValueError, match="smoothing"):
        OverheadMeter(smoothing=0.0)


def test_billed_cpu_counts_cpu_time_parts_whole_and_only_the_preprocessing_of_counter_readings() -> None:
    settings = Settings(cpu_core_power_w=5.0)
    parts = [
        EnergyPart(detector="text", joules=0.5, method="estimated", source="cpu-time-estimate", device="cpu",
                   window_s=0.1, batch_size=1, share=1.0, preprocess_j=0.2),
        EnergyPart(detector="face", joules=2.0, method="estimated", source="nvml", device="cuda:0",
                   window_s=0.1, batch_size=4, share=0.25, forward_j=1.5, preprocess_j=0.5),
    ]
    assert billed_cpu_s(parts, settings) == pytest.approx((0.5 + 0.5) / 5.0)


@pytest.mark.parametrize("overhead", [True, False])
def test_reports_carry_the_overhead_part_when_enabled(settings: Settings, overhead: bool) -> None:
    app = create_app(settings.model_copy(update={"energy_overhead": overhead}),
                     detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {app.state.store.create_api_key('test', [Scope.CHECK])}"}
        files = [("text", ("a.txt", TEXT.encode(), "text/plain")),
                 ("headshots", ("h.jpg", jpeg_bytes((200, 90, 90)), "image/jpeg"))]
        for _ in range(3):
            resp = client.post("/v1/checks", data={"byline": "Jane Roe"}, files=files, headers=auth)
            assert resp.status_code == 200, resp.text
        energy = resp.json()["energy"]
        parts = [p for p in energy["parts"] if p["detector"] == OVERHEAD_PART]
        assert energy["joules"] == pytest.approx(sum(p["joules"] for p in energy["parts"]))
        if not overhead:
            assert parts == []
            return
        [part] = parts
        assert part["joules"] >= 0.0
        assert part["method"] == "estimated"
        assert part["source"] == "cpu-time-estimate"
        assert "not billed to a detector" in part["note"]
        assert app.state.pipeline.overhead.in_flight == 0
        # a refused request closes its window too
        assert client.post("/v1/checks", json={"text": ""}, headers=auth).status_code == 400
        assert app.state.pipeline.overhead.in_flight == 0


def test_the_reports_device_is_the_largest_detector_parts_not_the_overhead() -> None:
    settings = Settings()
    gpu = EnergyPart(detector="face", joules=0.05, method="measured", source="nvml", device="cuda:0",
                     window_s=0.01, batch_size=8, share=0.125, forward_j=0.05)
    report = energy_section([gpu, overhead_part(0.02, settings)], settings)
    assert report.device == "cuda:0"
    assert report.source == "nvml"
    assert report.method == "estimated"  # one part is an estimate
    assert report.joules == pytest.approx(0.05 + 0.02 * settings.cpu_core_power_w)
