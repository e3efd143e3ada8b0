"""Declared detectors inside the pipeline: one micro-batcher per detector (on its device's lane and
energy meter), submitted to alongside the shipped detector of the same role.

Caveats first: a declared detector that is not ready (missing folder, missing extra) never blocks a
check: it is listed in the report as abstained with ``detector_unavailable`` and ``/readyz`` names
why. Its own item errors (422) and inference failures (503) become an abstention of that detector
only; queue-full (429) and deadline (504) errors surface as for the shipped detectors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from detectors.contract import DetectorOutput, Device, Verdict
from detectors.energy import EnergyMeter
from service.batching import BatchedResult, ItemRejectedError, MicroBatcher
from service.config import Settings
from service.energy_setup import build_meter
from service.errors import UnavailableError
from service.metrics import Metrics
from service.registry import CustomSlot, load_custom_slots
from service.reports import energy_part
from service.schemas import DetectorScore, EnergyPart, SentenceScore

UNAVAILABLE = "detector_unavailable"
SHIPPED = "shipped"


@dataclass(frozen=True)
class MemberResult:
    """One detector's answer for one item; ``output`` None = it could not judge (``reason`` says why)."""

    name: str
    kind: str
    output: DetectorOutput | None
    energy: EnergyPart | None
    reason: str | None = None

    @classmethod
    def of(cls, name: str, kind: str, result: BatchedResult | None, reason: str | None = None) -> MemberResult:
        if result is None:
            return cls(name, kind, None, None, reason or UNAVAILABLE)
        return cls(name, kind, result.output, energy_part(result))

    @property
    def usable_score(self) -> float | None:
        """The raw score an ensemble may use: judged, or only lacking calibration."""
        out = self.output
        if out is None or out.raw_score is None:
            return None
        return out.raw_score if out.abstain_reason in (None, "uncalibrated") else None


def detector_score(member: MemberResult) -> DetectorScore:
    out = member.output
    if out is None:
        return DetectorScore(name=member.name, kind=member.kind, verdict=Verdict.ABSTAIN, abstain_reason=member.reason)
    return DetectorScore(
        name=member.name, model=f"{out.detector}@{out.version}", kind=member.kind, ai_probability=out.probability,
        raw_score=out.raw_score, score_direction=out.direction.value, verdict=out.verdict,
        abstain_reason=out.abstain_reason, threshold=out.threshold,
        calibrated=out.threshold is not None, evidence=out.evidence, evidence_unit=out.evidence_unit,
        energy_j=member.energy.joules if member.energy else None,
        energy_method=member.energy.method if member.energy else None,
        sentences=[SentenceScore(start=s.start, end=s.end, ai_probability=s.probability) for s in out.spans],
    )


class ExtraDetectors:
    """The declared detectors of one pipeline: slots, lanes, meters and batchers; ``start``/``close``."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.slots: dict[str, CustomSlot] = {}
        self.batchers: dict[str, MicroBatcher] = {}
        self._own_lanes: dict[str, ThreadPoolExecutor] = {}

    async def start(self, lane: Executor, device: Device, meter: EnergyMeter) -> None:
        """Load every declared detector (in a thread) and start its batcher on its device's lane."""
        if not self.settings.custom_detectors:
            return
        self.slots = await asyncio.to_thread(load_custom_slots, self.settings)
        meters: dict[str, EnergyMeter] = {device.label: meter}
        lanes: dict[str, Executor] = {device.label: lane}
        for name, slot in self.slots.items():
            if slot.detector is None:
                continue
            label = slot.device.label
            if label not in lanes:
                self._own_lanes[label] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lane-{label}")
                lanes[label] = self._own_lanes[label]
                meters[label] = build_meter(self.settings, slot.device)
            batcher = MicroBatcher(
                slot.detector, meters[label], lanes[label], max_batch_size=slot.spec.max_batch_size,
                max_wait_s=self.settings.max_wait_s, max_queue=self.settings.max_queue,
                retry_after_s=self.settings.retry_after_s, on_batch=self.metrics.observe_batch,
                preprocess_power_w=self.settings.cpu_core_power_w,
            )
            batcher.start()
            self.batchers[name] = batcher

    async def close(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()
        for lane in self._own_lanes.values():
            lane.shutdown(wait=True, cancel_futures=True)

    def statuses(self) -> dict[str, str]:
        return {name: slot.status for name, slot in self.slots.items()}

    def workers(self) -> dict[str, bool]:
        return {name: b.is_alive for name, b in self.batchers.items()}

    def versions(self) -> dict[str, str]:
        return {name: f"{s.detector.name}@{s.detector.version}" for name, s in self.slots.items() if s.detector}

    async def judge(self, role: str, item: Any, deadline: float) -> list[MemberResult]:
        """Every declared detector of ``role`` on ``item``, concurrently, in declaration order."""
        slots = [s for s in self.slots.values() if s.spec.role == role]
        return list(await asyncio.gather(*(self._one(s, item, deadline) for s in slots)))

    async def _one(self, slot: CustomSlot, item: Any, deadline: float) -> MemberResult:
        batcher = self.batchers.get(slot.name)
        if batcher is None:
            return MemberResult.of(slot.name, slot.spec.kind, None)
        try:
            result = await batcher.submit(item, deadline)
        except ItemRejectedError as exc:
            return MemberResult.of(slot.name, slot.spec.kind, None, f"item_rejected: {exc.message}")
        except UnavailableError:
            return MemberResult.of(slot.name, slot.spec.kind, None, UNAVAILABLE)
        return MemberResult.of(slot.name, slot.spec.kind, result)


def members_energy(members: Sequence[MemberResult]) -> tuple[EnergyPart, ...]:
    return tuple(m.energy for m in members if m.energy is not None)
