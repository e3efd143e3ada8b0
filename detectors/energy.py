"""Energy meters: a measurement window around each batch's forward pass.

Caveats first:

* "not measured" is a state, never 0 and never a crash: a window shorter than a counter's update
  period, or one in which the counter did not move, is flagged ``below_resolution`` and its joules
  come from the CPU-time estimate, labelled ``estimated``.
* RAPL counts the whole CPU package (other processes included) and NVML the whole GPU; both are
  labelled ``measured`` because they are hardware counters, and a batch's reading is then shared
  among its items by the caller.
* The CPU-time estimate multiplies the process's CPU seconds in the window by a per-core power
  figure supplied by the caller (with its source).

Backends: :class:`NvmlMeter` (NVIDIA energy counter, Volta and newer), :class:`RaplMeter`
(``/sys/class/powercap/intel-rapl:*/energy_uj``), :class:`CpuTimeMeter`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class EnergyMethod(StrEnum):
    MEASURED = "measured"
    ESTIMATED = "estimated"


class EnergySource(StrEnum):
    NVML = "nvml"
    RAPL = "rapl"
    CPU_TIME = "cpu-time-estimate"


@dataclass(frozen=True)
class EnergyReading:
    """Energy of one window. ``joules`` is always > 0 when ``window_s`` > 0."""

    joules: float
    method: EnergyMethod
    source: EnergySource
    device: str
    window_s: float
    below_resolution: bool = False
    note: str = ""


class EnergyMeter(Protocol):
    """Begin/end around a forward pass; ``end`` takes what ``begin`` returned."""

    source: EnergySource
    update_period_s: float

    def begin(self) -> Any: ...

    def end(self, token: Any) -> EnergyReading: ...


@dataclass(frozen=True)
class _CpuMark:
    wall: float
    cpu: float


class CpuTimeMeter:
    """Process CPU seconds in the window times ``core_power_w`` (an estimate)."""

    source = EnergySource.CPU_TIME
    update_period_s = 0.0
    scope = ""  # said in the reading's note before "CPU-s"

    def __init__(self, core_power_w: float, power_source: str, device: str = "cpu") -> None:
        if core_power_w <= 0:
            raise ValueError("core_power_w must be > 0")
        self.core_power_w = core_power_w
        self.power_source = power_source
        self.device = device

    @staticmethod
    def _cpu_time() -> float:
        return time.process_time()

    def begin(self) -> _CpuMark:
        return _CpuMark(wall=time.perf_counter(), cpu=self._cpu_time())

    def end(self, token: _CpuMark) -> EnergyReading:
        window_s = max(time.perf_counter() - token.wall, 1e-9)
        cpu_s = max(self._cpu_time() - token.cpu, 0.0)
        if cpu_s == 0.0:  # the clock's resolution can be coarse; never report 0.
            cpu_s = window_s
        return EnergyReading(
            joules=cpu_s * self.core_power_w,
            method=EnergyMethod.ESTIMATED,
            source=self.source,
            device=self.device,
            window_s=window_s,
            note=f"{cpu_s:.6f} {self.scope}CPU-s x {self.core_power_w} W per core ({self.power_source})",
        )


class ThreadCpuTimeMeter(CpuTimeMeter):
    """The *calling thread's* CPU seconds in the window times ``core_power_w`` (an estimate).

    Caveats first: right only when the whole forward pass runs on the thread that calls ``begin`` and ``end``
    (the lane), i.e. ONNX Runtime with one intra-op thread. The process-wide :class:`CpuTimeMeter` would also
    count what other threads did in the window (other checks' preprocessing on the pool, which each check is
    already billed for), so with a preprocessing pool it double-counts.
    """

    scope = "lane-thread "

    @staticmethod
    def _cpu_time() -> float:
        return time.thread_time()


def rapl_package_zones(root: Path) -> list[Path]:
    """Top-level RAPL package zones under ``root`` whose ``energy_uj`` is readable."""
    zones = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:
            continue
        try:
            int((zone / "energy_uj").read_text())
        except (OSError, ValueError):
            continue
        zones.append(zone)
    return zones


class RaplMeter:
    """Sum of the package zones' ``energy_uj`` counters, with wrap-around handled."""

    source = EnergySource.RAPL
    update_period_s = 0.001

    def __init__(self, root: Path, fallback: CpuTimeMeter) -> None:
        self.zones = rapl_package_zones(root)
        if not self.zones:
            raise FileNotFoundError(f"no readable RAPL package zone under {root}")
        self.fallback = fallback

    def _read(self) -> list[int]:
        return [int((zone / "energy_uj").read_text()) for zone in self.zones]

    def _range(self, zone: Path) -> int:
        try:
            return int((zone / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            return 2**32

    def begin(self) -> tuple[list[int], _CpuMark]:
        return self._read(), self.fallback.begin()

    def end(self, token: tuple[list[int], _CpuMark]) -> EnergyReading:
        before, mark = token
        after = self._read()
        delta_uj = 0
        for zone, b, a in zip(self.zones, before, after, strict=True):
            delta_uj += a - b if a >= b else a + self._range(zone) - b
        estimate = self.fallback.end(mark)
        if delta_uj <= 0 or estimate.window_s < self.update_period_s:
            return _below_resolution(estimate, self.source, self.update_period_s)
        return EnergyReading(
            joules=delta_uj / 1e6,
            method=EnergyMethod.MEASURED,
            source=self.source,
            device="cpu",
            window_s=estimate.window_s,
            note=f"RAPL package zones: {', '.join(z.name for z in self.zones)}",
        )


class NvmlMeter:
    """NVML total-energy counter (millijoules) of one GPU. ``synchronize`` is called at both ends."""

    source = EnergySource.NVML

    def __init__(
        self,
        nvml: Any,
        index: int,
        fallback: CpuTimeMeter,
        synchronize: Callable[[], None] | None = None,
        update_period_s: float = 0.1,
    ) -> None:
        nvml.nvmlInit()
        self.nvml = nvml
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.device = f"cuda:{index}"
        self.fallback = fallback
        self.synchronize = synchronize or (lambda: None)
        self.update_period_s = update_period_s

    def _read_mj(self) -> int:
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def begin(self) -> tuple[int, _CpuMark]:
        self.synchronize()
        return self._read_mj(), self.fallback.begin()

    def end(self, token: tuple[int, _CpuMark]) -> EnergyReading:
        self.synchronize()
        before, mark = token
        delta_mj = self._read_mj() - before
        estimate = self.fallback.end(mark)
        if delta_mj <= 0 or estimate.window_s < self.update_period_s:
            return _below_resolution(estimate, self.source, self.update_period_s)
        return EnergyReading(
            joules=delta_mj / 1e3,
            method=EnergyMethod.MEASURED,
            source=self.source,
            device=self.device,
            window_s=estimate.window_s,
            note="NVML nvmlDeviceGetTotalEnergyConsumption",
        )


def _below_resolution(estimate: EnergyReading, source: EnergySource, period_s: float) -> EnergyReading:
    return EnergyReading(
        joules=estimate.joules,
        method=EnergyMethod.ESTIMATED,
        source=EnergySource.CPU_TIME,
        device=estimate.device,
        window_s=estimate.window_s,
        below_resolution=True,
        note=f"{source.value} counter did not advance within {estimate.window_s:.4f} s "
        f"(update period {period_s} s); fell back to {estimate.note}",
    )
