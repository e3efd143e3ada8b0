"""Model manifests: the file list with sha256, version, calibration, thresholds and their provenance.

A manifest lives beside its model files as ``weights/<name>/manifest.json``. Loading verifies every
file's sha256 before any runtime sees it. Raises :class:`WeightsMissingError` when a file is absent
and :class:`WeightsCorruptError` when a hash or field is wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.calibration import Calibration, Thresholds, calibration_from_dict
from detectors.contract import Modality, ScoreDirection, WeightsCorruptError, WeightsMissingError

MANIFEST_NAME = "manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A parsed, verified manifest. ``files`` maps a role (``model``) to its absolute path."""

    name: str
    version: str
    modality: Modality
    direction: ScoreDirection
    calibration: Calibration
    thresholds: Thresholds
    min_evidence: float
    evidence_unit: str
    files: Mapping[str, Path]
    provenance: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


def _verified_files(root: Path, entries: Mapping[str, Any], verify: bool) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for role, entry in entries.items():
        path = (root / str(entry["path"])).resolve()
        if not path.is_file():
            raise WeightsMissingError(f"{role} file {path} is missing")
        if verify and sha256_file(path) != entry["sha256"]:
            raise WeightsCorruptError(f"{role} file {path} does not match its sha256")
        files[role] = path
    return files


def load_manifest(directory: Path, *, verify: bool = True) -> Manifest:
    """Read and verify ``directory/manifest.json``."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise WeightsMissingError(f"no manifest at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = _verified_files(directory, data["files"], verify)
        return Manifest(
            name=str(data["name"]),
            version=str(data["version"]),
            modality=Modality(data["modality"]),
            direction=ScoreDirection(data["score_direction"]),
            calibration=calibration_from_dict(data["calibration"]),
            thresholds=Thresholds(
                likely_ai=float(data["thresholds"]["likely_ai"]),
                likely_human=float(data["thresholds"]["likely_human"]),
            ),
            min_evidence=float(data.get("min_evidence", 0.0)),
            evidence_unit=str(data.get("evidence_unit", "items")),
            files=files,
            provenance=dict(data.get("threshold_provenance", {})),
            extra=dict(data.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise WeightsCorruptError(f"malformed manifest {path}: {exc}") from exc


def file_entry(root: Path, path: Path) -> dict[str, Any]:
    """A manifest ``files`` entry for ``path`` (relative to ``root``), for training scripts."""
    return {"path": str(path.relative_to(root)), "sha256": sha256_file(path), "size_bytes": path.stat().st_size}
