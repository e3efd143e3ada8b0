"""A declared detector's calibration state: read from (and written to) ``manifest.json`` in its folder.

Caveats first: a folder without a manifest, or whose manifest has ``"calibration": null``, is
*uncalibrated*: its outputs carry the raw score but ``probability=None``, verdict ``abstain`` and
``abstain_reason="uncalibrated"``; nothing pretends to be a probability. ``bylinecheck calibrate``
writes the calibration, the thresholds and how they were chosen. When a manifest exists, every file
it lists is checked against its sha256 (unless the spec turns that off for very large models).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.calibration import Calibration, Thresholds
from detectors.contract import Modality, ScoreDirection, Verdict, WeightsCorruptError, WeightsMissingError
from detectors.manifest import MANIFEST_NAME, load_manifest, sha256_file

UNCALIBRATED = "uncalibrated"
NO_SCORE = "no_score"


@dataclass(frozen=True)
class Judgement:
    probability: float | None
    verdict: Verdict
    threshold: float | None
    abstain_reason: str | None


@dataclass(frozen=True)
class CalibrationState:
    """Calibration and thresholds when calibrated; ``extra`` is the manifest's ``extra`` either way."""

    version: str
    calibration: Calibration | None = None
    thresholds: Thresholds | None = None
    min_evidence: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, Path] = field(default_factory=dict)

    @property
    def is_calibrated(self) -> bool:
        return self.calibration is not None and self.thresholds is not None

    def judge(self, raw: float | None, reason: str | None = None) -> Judgement:
        """Probability and verdict for ``raw``; abstains with ``reason``, ``no_score`` or ``uncalibrated``."""
        threshold = self.thresholds.likely_ai if self.thresholds else None
        if reason is not None or raw is None:
            return Judgement(None, Verdict.ABSTAIN, threshold, reason or NO_SCORE)
        if self.calibration is None or self.thresholds is None:
            return Judgement(None, Verdict.ABSTAIN, None, UNCALIBRATED)
        probability = self.calibration(raw)
        return Judgement(probability, self.thresholds.verdict(probability), threshold, None)

    def probability(self, raw: float) -> float | None:
        return self.calibration(raw) if self.calibration is not None else None


def read_state(directory: Path, *, verify: bool = True, fallback: Path | None = None) -> CalibrationState:
    """Read ``directory/manifest.json``, else ``fallback/manifest.json`` (a model folder's own manifest,
    as ``models export`` writes), else uncalibrated. Raises WeightsMissingError / WeightsCorruptError."""
    path = directory / MANIFEST_NAME
    if not path.is_file() and fallback is not None:
        directory, path = fallback, fallback / MANIFEST_NAME
    if not path.is_file():
        return CalibrationState(version=UNCALIBRATED)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsCorruptError(f"malformed manifest {path}: {exc}") from exc
    if data.get("calibration") is None:
        files = _check_files(directory, data.get("files", {}), verify)
        return CalibrationState(version=str(data.get("version", UNCALIBRATED)), extra=dict(data.get("extra", {})),
                                files=files)
    manifest = load_manifest(directory, verify=verify)
    return CalibrationState(version=manifest.version, calibration=manifest.calibration, thresholds=manifest.thresholds,
                            min_evidence=manifest.min_evidence, extra=dict(manifest.extra), files=manifest.files)


def _check_files(directory: Path, entries: Mapping[str, Any], verify: bool) -> dict[str, Path]:
    files = {}
    for role, entry in entries.items():
        file = (directory / str(entry["path"])).resolve()
        if not file.is_file():
            raise WeightsMissingError(f"{role} file {file} is missing")
        if verify and sha256_file(file) != entry["sha256"]:
            raise WeightsCorruptError(f"{role} file {file} does not match its sha256")
        files[role] = file
    return files


def model_files(folders: Iterable[Path]) -> list[Path]:
    """Every regular file under ``folders`` (recursively), except manifests and hidden folders."""
    found: list[Path] = []
    for folder in folders:
        for file in sorted(folder.rglob("*")):
            rel = file.relative_to(folder)
            if file.is_file() and file.name != MANIFEST_NAME and not any(p.startswith(".") for p in rel.parts):
                found.append(file)
    return found


def file_entries(directory: Path, files: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """Manifest ``files`` entries, paths relative to ``directory`` (``..`` allowed for a second model)."""
    entries = {}
    for file in files:
        rel = os.path.relpath(file.resolve(), directory.resolve())
        entries[rel] = {"path": rel, "sha256": sha256_file(file), "size_bytes": file.stat().st_size}
    return entries


def version_of(entries: Mapping[str, Mapping[str, Any]]) -> str:
    """A content version: the first 12 hex digits of the hash of the files' hashes."""
    digest = hashlib.sha256()
    for rel in sorted(entries):
        digest.update(f"{rel}:{entries[rel]['sha256']}\n".encode())
    return f"sha-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class ManifestDraft:
    """What :func:`write_manifest` writes; ``calibration``/``thresholds`` None = uncalibrated."""

    name: str
    modality: Modality
    direction: ScoreDirection
    evidence_unit: str
    min_evidence: float
    calibration: Mapping[str, Any] | None = None
    thresholds: Mapping[str, float] | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


def write_manifest(directory: Path, draft: ManifestDraft, files: Iterable[Path]) -> dict[str, Any]:
    """Write ``directory/manifest.json`` listing ``files`` with their sha256; returns what was written."""
    entries = file_entries(directory, files)
    data = {
        "name": draft.name,
        "version": version_of(entries),
        "modality": draft.modality.value,
        "score_direction": draft.direction.value,
        "calibration": dict(draft.calibration) if draft.calibration is not None else None,
        "thresholds": dict(draft.thresholds) if draft.thresholds is not None else None,
        "threshold_provenance": dict(draft.provenance),
        "min_evidence": draft.min_evidence,
        "evidence_unit": draft.evidence_unit,
        "files": entries,
        "extra": dict(draft.extra),
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data
