"""Ensembles: a role's detectors stacked by a logistic regression (``bylinecheck calibrate --ensemble``).

Caveats first: the stacker uses each member's *raw* score (calibrated or not); a member that
abstained for lack of evidence, or could not run, counts as its mean score and is listed as
``imputed``. When no member could judge, the role abstains with the first member's reason. A
stacker fitted for other members than the settings name is refused (``WeightsCorruptError``), and a
missing stacker manifest leaves the role as it would be without the ensemble while ``/readyz`` says
why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors.calibration import Thresholds
from detectors.contract import DetectorError, Verdict, WeightsCorruptError, WeightsMissingError
from detectors.custom.stacking import Stacker
from service.config import EnsembleSpec, Settings
from service.custom_detectors import UNAVAILABLE, MemberResult
from service.schemas import EnsembleReport


@dataclass(frozen=True)
class EnsembleOutcome:
    probability: float | None
    verdict: Verdict
    abstain_reason: str | None
    logit: float | None
    report: EnsembleReport


@dataclass(frozen=True)
class LoadedEnsemble:
    role: str
    name: str
    version: str
    stacker: Stacker
    thresholds: Thresholds

    def judge(self, members: Sequence[MemberResult]) -> EnsembleOutcome:
        by_name = {m.name: m for m in members}
        scores = {name: by_name[name].usable_score if name in by_name else None for name in self.stacker.members}
        used = [n for n, v in scores.items() if v is not None]
        imputed = [n for n, v in scores.items() if v is None]
        base = EnsembleReport(stacker=f"{self.name}@{self.version}", members=list(self.stacker.members), used=used,
                              imputed=imputed, threshold=self.thresholds.likely_ai)
        if not used:
            return EnsembleOutcome(None, Verdict.ABSTAIN, _first_reason(members), None, base)
        logit = self.stacker.logit(scores)
        probability = self.stacker.probability(scores)
        report = base.model_copy(update={"logit": logit})
        return EnsembleOutcome(probability, self.thresholds.verdict(probability), None, logit, report)


def _first_reason(members: Sequence[MemberResult]) -> str:
    for m in members:
        reason = m.output.abstain_reason if m.output is not None else m.reason
        if reason:
            return reason
    return UNAVAILABLE


def stacker_version(data: dict[str, Any]) -> str:
    body = json.dumps({k: data[k] for k in ("stacker", "thresholds")}, sort_keys=True)
    return f"sha-{hashlib.sha256(body.encode()).hexdigest()[:12]}"


def load_ensemble(spec: EnsembleSpec) -> LoadedEnsemble:
    """Read a stacker manifest. Raises WeightsMissingError / WeightsCorruptError."""
    if not spec.manifest.is_file():
        raise WeightsMissingError(f"no stacker manifest at {spec.manifest} (run: bylinecheck calibrate --ensemble "
                                  f"{spec.role} --input FILE.jsonl)")
    try:
        data = json.loads(spec.manifest.read_text(encoding="utf-8"))
        stacker = Stacker.from_dict(data["stacker"])
        thresholds = Thresholds(likely_ai=float(data["thresholds"]["likely_ai"]),
                                likely_human=float(data["thresholds"]["likely_human"]))
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise WeightsCorruptError(f"malformed stacker manifest {spec.manifest}: {exc}") from exc
    if list(stacker.members) != list(spec.members) or data.get("role") != spec.role:
        raise WeightsCorruptError(f"stacker {spec.manifest} was fitted for {data.get('role')} {list(stacker.members)}, "
                                  f"settings say {spec.role} {spec.members}: re-run calibrate --ensemble")
    return LoadedEnsemble(spec.role, str(data.get("name", f"ensemble-{spec.role}")), str(data["version"]), stacker,
                          thresholds)


def load_ensembles(settings: Settings) -> tuple[dict[str, LoadedEnsemble], dict[str, str]]:
    """Every configured ensemble by role, and a status per ``ensemble:<role>`` for ``/readyz``."""
    loaded: dict[str, LoadedEnsemble] = {}
    statuses: dict[str, str] = {}
    for spec in settings.ensembles:
        try:
            loaded[spec.role] = load_ensemble(spec)
            statuses[f"ensemble:{spec.role}"] = "ready"
        except DetectorError as exc:
            statuses[f"ensemble:{spec.role}"] = f"{type(exc).__name__}: {exc}"
    return loaded, statuses


def write_stacker_manifest(path: Path, role: str, stacker: Stacker, thresholds: dict[str, float],
                           provenance: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"name": f"ensemble-{role}", "kind": "stacker", "role": role,
                            "stacker": stacker.to_dict(), "thresholds": thresholds}
    data["version"] = stacker_version(data)
    data["threshold_provenance"] = provenance
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data
