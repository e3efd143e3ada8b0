from __future__ import annotations

import time
from pathlib import Path

import pytest

from detectors.contract import Device, DeviceKind
from detectors.energy import CpuTimeMeter, EnergyMethod, EnergySource, NvmlMeter, RaplMeter
from service.config import Settings
from service.energy_setup import build_meter
from tests.fakes import FakeNvml


def _rapl_tree(root: Path, value: int, max_range: int = 262143328850) -> Path:
    zone = root / "intel-rapl:0"
    (zone / "intel-rapl:0:0").mkdir(parents=True, exist_ok=True)
    (zone / "energy_uj").write_text(str(value))
    (zone / "max_energy_range_uj").write_text(str(max_range))
    (zone / "intel-rapl:0:0" / "energy_uj").write_text("5")  # sub-zone: must be ignored
    return zone


def _burn(seconds: float) -> None:
    """Spin until this process has used ``seconds`` of CPU (not wall) time: on a loaded machine a
    wall-clock spin gets only part of a core, which made the CPU-time estimate test flaky."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_rapl_meter_reads_package_counter_and_handles_wraparound(tmp_path: Path) -> None:
    zone = _rapl_tree(tmp_path, 1_000_000)
    meter = RaplMeter(tmp_path, CpuTimeMeter(5.0, "test"))
    token = meter.begin()
    _burn(0.01)
    (zone / "energy_uj").write_text(str(3_500_000))
    reading = meter.end(token)
    assert reading.method is EnergyMethod.MEASURED
    assert reading.source is EnergySource.RAPL
    assert reading.joules == pytest.approx(2.5)

    (zone / "energy_uj").write_text(str(1000 - 10))
    (zone / "max_energy_range_uj").write_text("1000")
    token = meter.begin()
    _burn(0.01)
    (zone / "energy_uj").write_text("40")
    assert meter.end(token).joules == pytest.approx(50e-6)


def test_rapl_counter_that_did_not_move_is_flagged_not_zero(tmp_path: Path) -> None:
    _rapl_tree(tmp_path, 42)
    meter = RaplMeter(tmp_path, CpuTimeMeter(5.0, "test"))
    reading = meter.end(meter.begin())
    assert reading.below_resolution
    assert reading.joules > 0
    assert reading.method is EnergyMethod.ESTIMATED


def test_nvml_meter_with_fake_nvml() -> None:
    nvml = FakeNvml(step_mj=3000)
    synced: list[int] = []
    meter = NvmlMeter(nvml, 0, CpuTimeMeter(5.0, "test"), synchronize=lambda: synced.append(1), update_period_s=0.0)
    reading = meter.end(meter.begin())
    assert nvml.initialised
    assert synced == [1, 1]
    assert reading.source is EnergySource.NVML
    assert reading.joules == pytest.approx(3.0)
    short = NvmlMeter(FakeNvml(), 0, CpuTimeMeter(5.0, "test"), update_period_s=10.0)
    flagged = short.end(short.begin())
    assert flagged.below_resolution
    assert flagged.joules > 0


def test_cpu_time_estimate_uses_power_figure() -> None:
    meter = CpuTimeMeter(10.0, "test figure")
    token = meter.begin()
    _burn(0.05)
    reading = meter.end(token)
    assert reading.method is EnergyMethod.ESTIMATED
    assert reading.joules == pytest.approx(10.0 * 0.05, rel=0.6)
    assert "test figure" in reading.note


def test_meter_selection_from_settings(tmp_path: Path) -> None:
    _rapl_tree(tmp_path, 100)
    auto = Settings(rapl_root=tmp_path)
    assert isinstance(build_meter(auto, Device()), RaplMeter)
    assert isinstance(build_meter(Settings(rapl_root=tmp_path / "none"), Device()), CpuTimeMeter)
    gpu = Settings(device="cuda", energy_backend="nvml")
    assert isinstance(build_meter(gpu, Device(kind=DeviceKind.CUDA), nvml=FakeNvml()), NvmlMeter)
    with pytest.raises(FileNotFoundError):
        build_meter(Settings(energy_backend="rapl", rapl_root=tmp_path / "none"), Device())


@pytest.mark.gpu
def test_real_nvml_counter_moves() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except Exception:
        pytest.skip("no NVIDIA driver")
    meter = NvmlMeter(pynvml, 0, CpuTimeMeter(5.0, "test"), update_period_s=0.1)
    token = meter.begin()
    time.sleep(0.5)
    assert meter.end(token).joules > 0
