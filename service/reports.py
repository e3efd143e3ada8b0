"""Turn detector outputs and energy shares into the report's sections."""

from __future__ import annotations

from collections.abc import Sequence

from detectors.contract import DetectorOutput, Verdict
from detectors.energy import EnergySource
from service.batching import BatchedResult
from service.config import Settings
from service.energy_setup import kwh
from service.overhead import OVERHEAD_PART
from service.schemas import EnergyPart, EnergyReport, SentenceScore, TextReport


def abstained_text(reason: str, model: str | None = None) -> TextReport:
    return TextReport(ai_probability=None, verdict=Verdict.ABSTAIN, abstain_reason=reason, model=model)


def text_section(out: DetectorOutput) -> TextReport:
    return TextReport(
        ai_probability=out.probability,
        verdict=out.verdict,
        abstain_reason=out.abstain_reason,
        sentences=[SentenceScore(start=s.start, end=s.end, ai_probability=s.probability) for s in out.spans],
        model=f"{out.detector}@{out.version}",
        threshold=out.threshold,
        raw_score=out.raw_score,
        score_direction=out.direction.value,
        evidence_words=out.evidence,
        flags=list(out.flags),
    )


def energy_part(result: BatchedResult) -> EnergyPart:
    """One detector's energy for one check: its share of the forward pass plus its own preprocessing.

    The part is ``measured`` only when the forward reading was measured and no preprocessing estimate
    was added; otherwise ``estimated``.
    """
    energy = result.energy
    reading = energy.reading
    method = reading.method.value if energy.preprocess_j == 0 else "estimated"
    note = reading.note
    if energy.preprocess_j:
        note += f"; preprocessing {energy.preprocess_cpu_s:.4f} CPU-s estimated at {energy.preprocess_j:.4f} J"
    return EnergyPart(
        detector=f"{result.output.detector}@{result.output.version}",
        joules=energy.joules,
        method=method,
        source=reading.source.value,
        device=reading.device,
        window_s=reading.window_s,
        batch_size=energy.batch_size,
        share=energy.share,
        below_resolution=reading.below_resolution,
        note=note,
        forward_j=energy.forward_j,
        preprocess_j=energy.preprocess_j,
    )


EVIDENCE_PART = "headshot-evidence"


def evidence_part(cpu_s: float, settings: Settings) -> EnergyPart:
    """A headshot's work outside the detectors: decoding the upload, reading its provenance and its pHash.

    Always a CPU-time estimate (this thread's CPU seconds times the per-core power figure).
    """
    joules = cpu_s * settings.cpu_core_power_w
    return EnergyPart(
        detector=EVIDENCE_PART, joules=joules, method="estimated", source="cpu-time-estimate", device="cpu",
        window_s=0.0, batch_size=1, share=1.0, preprocess_j=joules,
        note=f"decode, provenance and pHash: {cpu_s:.4f} CPU-s x {settings.cpu_core_power_w} W per core "
             f"({settings.cpu_core_power_source})",
    )


def billed_cpu_s(parts: Sequence[EnergyPart], settings: Settings) -> float:
    """The CPU seconds behind ``parts``' CPU-time estimates (whole parts estimated from CPU time; the preprocessing
    of parts whose forward pass was read from a power counter)."""
    joules = sum(p.joules if p.source == EnergySource.CPU_TIME else p.preprocess_j for p in parts)
    return joules / settings.cpu_core_power_w  # the setting is > 0


def overhead_part(cpu_s: float, settings: Settings) -> EnergyPart:
    """The check's share of the process's CPU that no detector part bills (see :mod:`service.overhead`)."""
    joules = cpu_s * settings.cpu_core_power_w
    return EnergyPart(
        detector=OVERHEAD_PART, joules=joules, method="estimated", source=EnergySource.CPU_TIME.value, device="cpu",
        window_s=0.0, batch_size=1, share=1.0, preprocess_j=joules,
        note=f"the worker process's CPU not billed to a detector (HTTP, event loop, store, reuse look-up, thread "
             f"hand-offs), averaged over recent checks: {cpu_s:.4f} CPU-s x {settings.cpu_core_power_w} W per core",
    )


def energy_section(parts: Sequence[EnergyPart], settings: Settings) -> EnergyReport:
    """Sum the parts. ``share`` is this check's fraction of the energy of the batches it ran in."""
    if not parts:
        return EnergyReport(
            joules=None, method="none", source="none", device=None, window_s=0.0, batch_size=0, share=0.0,
            kwh=None, gco2e=None, grid_gco2e_per_kwh=settings.grid_gco2e_per_kwh, grid_source=settings.grid_source,
            smartphone_charges=None, smartphone_charge_kwh=settings.smartphone_charge_kwh,
        )
    joules = sum(p.joules for p in parts)
    batch_joules = sum(p.forward_j / p.share + p.preprocess_j for p in parts if p.share > 0)
    # the device and source of the largest detector part (the apportioned service overhead is always the CPU's)
    main = max((p for p in parts if p.detector != OVERHEAD_PART), key=lambda p: p.joules, default=parts[0])
    energy_kwh = kwh(joules)
    return EnergyReport(
        joules=joules,
        method="measured" if all(p.method == "measured" for p in parts) else "estimated",
        source=main.source,
        device=main.device,
        window_s=sum(p.window_s for p in parts),
        batch_size=max(p.batch_size for p in parts),
        share=joules / batch_joules if batch_joules > 0 else 1.0,
        kwh=energy_kwh,
        gco2e=energy_kwh * settings.grid_gco2e_per_kwh,
        grid_gco2e_per_kwh=settings.grid_gco2e_per_kwh,
        grid_source=settings.grid_source,
        smartphone_charges=energy_kwh / settings.smartphone_charge_kwh,
        smartphone_charge_kwh=settings.smartphone_charge_kwh,
        below_resolution=any(p.below_resolution for p in parts),
        parts=list(parts),
    )
