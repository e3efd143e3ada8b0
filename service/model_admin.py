"""Admin commands for declared detectors: ONNX export and calibration (detector or ensemble stacker).

Caveats first: calibration is fitted and its thresholds chosen on the labelled rows given (JSONL,
``{"text": ...}`` or ``{"image": "path relative to the file"}`` plus ``"label": "human"|"ai"``);
use rows the models never trained on. Rows a detector abstains on for lack of evidence are left out
and counted. Everything runs in-process on the configured device, without the HTTP service.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors.contract import Detector, DetectorError, DetectorOutput, ImageItem, Modality, ScoreDirection, TextItem
from detectors.custom.calibrated import ManifestDraft, model_files, read_state, write_manifest
from detectors.custom.stacking import choose_thresholds, expected_calibration_error, fit_platt_smoothed, fit_stacker
from detectors.custom.textclass import DEFAULT_MIN_TOKENS
from detectors.metrics import auroc, tpr_at_fpr
from service.config import CustomDetectorSpec, Settings
from service.ensembles import write_stacker_manifest
from service.inputs import decode_image
from service.registry import build_custom_slot, build_slot, custom_spec, device_from_settings

LABELS = {"human": 0, "ai": 1, "0": 0, "1": 1}
USABLE = (None, "uncalibrated")
DEFAULT_MIN_PIXELS = 32.0 * 32.0


class AdminError(Exception):
    """A command cannot proceed (unknown name, detector not ready, unusable data); the message says why."""


@dataclass(frozen=True)
class LabelledData:
    items: list[TextItem | ImageItem]
    labels: list[int]
    source: Path
    sha256: str


def find_spec(settings: Settings, name: str) -> CustomDetectorSpec:
    for spec in settings.custom_detectors:
        if spec.name == name:
            return spec
    raise AdminError(f"no custom detector named {name!r} in BYLINECHECK_CUSTOM_DETECTORS")


def export_model(settings: Settings, name: str, out: Path | None = None) -> dict[str, Any]:
    """Export a declared transformers classifier to ONNX in ``out`` (default: ``<path>-onnx``)."""
    from detectors.custom.export import export_onnx

    spec = find_spec(settings, name)
    target = out or spec.path.with_name(spec.path.name + "-onnx")
    try:
        manifest = export_onnx(custom_spec(spec), target)
    except DetectorError as exc:
        raise AdminError(f"cannot export {name}: {exc}") from exc
    declare = {"name": f"{name}-onnx", "kind": "onnx", "path": str(target), "role": spec.role}
    return {"out": str(target), "manifest": manifest, "declare": declare}


def read_labelled(path: Path, settings: Settings, role: str) -> LabelledData:
    """Parse the rows of ``role`` (text rows or image rows) from the labelled JSONL; other rows are skipped.

    Raises AdminError on a bad row (with its line number).
    """
    items: list[TextItem | ImageItem] = []
    labels: list[int] = []
    raw = path.read_bytes()
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if ("text" in row) != (role == "text"):
                continue
            labels.append(LABELS[str(row["label"]).lower()])
            if "text" in row:
                items.append(TextItem(text=str(row["text"])))
            else:
                image = decode_image((path.parent / str(row["image"])).read_bytes(), settings)
                items.append(ImageItem(pixels=image.pixels, original=image.original))
        except (KeyError, ValueError, OSError, json.JSONDecodeError) as exc:
            raise AdminError(f"{path}:{number}: {type(exc).__name__}: {exc}") from exc
    return LabelledData(items, labels, path, hashlib.sha256(raw).hexdigest())


def score_items(detector: Detector[Any], items: Sequence[Any]) -> list[DetectorOutput]:
    """Run the detector's own preprocess / forward / postprocess in batches of its max size."""
    outputs: list[DetectorOutput] = []
    for start in range(0, len(items), detector.max_batch_size):
        prepared = [detector.preprocess(i) for i in items[start : start + detector.max_batch_size]]
        outputs.extend(detector.postprocess(prepared, detector.forward(prepared)))
    return outputs


def _loaded(settings: Settings, name: str) -> Detector[Any]:
    if name in ("text", "face"):
        slot = build_slot(name, settings, device_from_settings(settings))
        detector, status = slot.detector, slot.status
    else:
        custom = build_custom_slot(find_spec(settings, name), settings)
        detector, status = custom.detector, custom.status
    if detector is None:
        raise AdminError(f"detector {name} is not ready: {status}")
    return detector


def _provided(settings: Settings, provided: Mapping[str, Detector[Any]] | None, name: str) -> Detector[Any] | None:
    detector = (provided or {}).get(name)
    if detector is not None:
        detector.load(device_from_settings(settings))
    return detector


def _provenance(data: LabelledData, used: Sequence[int], labels: Sequence[int], probs: Sequence[float],
                excluded: Counter[str], target_fpr: float, raw_auroc: float) -> tuple[dict[str, float], dict[str, Any]]:
    choice = choose_thresholds(probs, labels, target_fpr=target_fpr)
    thresholds = {"likely_ai": choice.likely_ai, "likely_human": choice.likely_human}
    provenance = {
        "data": str(data.source), "data_sha256": data.sha256, "split": "as given: rows the model never trained on",
        "n": len(used), "n_human": int(sum(1 for y in labels if y == 0)), "n_ai": int(sum(labels)),
        "excluded": dict(excluded),
        "objective": f"likely_ai: smallest probability with FPR <= {target_fpr:g} on the human rows; likely_human: "
                     f"largest probability (<= likely_ai) with FNR <= {target_fpr:g} on the ai rows",
        "target_fpr": target_fpr, "fpr_reached": choice.fpr, "tpr_at_likely_ai": choice.tpr,
        "fnr_at_likely_human": choice.fnr_at_likely_human, "auroc": raw_auroc,
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return thresholds, provenance


def _usable(outputs: Sequence[DetectorOutput], labels: Sequence[int]) -> tuple[list[int], Counter[str]]:
    used, excluded = [], Counter[str]()
    for i, out in enumerate(outputs):
        if out.raw_score is not None and out.abstain_reason in USABLE:
            used.append(i)
        else:
            excluded[out.abstain_reason or "no_score"] += 1
    if len({labels[i] for i in used}) < 2:
        raise AdminError(f"calibration needs usable human and ai rows; excluded: {dict(excluded)}")
    return used, excluded


def calibrate_detector(settings: Settings, name: str, input_path: Path, target_fpr: float = 0.01) -> dict[str, Any]:
    """Fit Platt scaling and thresholds for a declared detector; write its manifest (``manifest_dir``)."""
    spec = find_spec(settings, name)
    data = read_labelled(input_path, settings, spec.role)
    detector = _loaded(settings, name)
    outputs = score_items(detector, data.items)
    used, excluded = _usable(outputs, data.labels)
    raw = [float(outputs[i].raw_score) for i in used]  # type: ignore[arg-type]
    labels = [data.labels[i] for i in used]
    platt = fit_platt_smoothed(raw, labels)
    probs = [platt(r) for r in raw]
    sign = -1.0 if outputs[used[0]].direction is ScoreDirection.LOWER_IS_AI else 1.0
    thresholds, provenance = _provenance(data, used, labels, probs, excluded, target_fpr,
                                         auroc([sign * r for r in raw], labels))
    pure = custom_spec(spec)
    existing = read_state(pure.calibration_dir, verify=False, fallback=spec.path)
    modality = Modality.TEXT if spec.role == "text" else Modality.IMAGE
    draft = ManifestDraft(
        name=name, modality=modality, direction=outputs[used[0]].direction,
        evidence_unit="tokens" if modality is Modality.TEXT else "pixels",
        min_evidence=spec.min_evidence if spec.min_evidence is not None else
        (DEFAULT_MIN_TOKENS if modality is Modality.TEXT else DEFAULT_MIN_PIXELS),
        calibration={"method": "platt", "a": platt.a, "b": platt.b}, thresholds=thresholds,
        provenance={**provenance, "method": "platt (Platt's smoothed targets)"},
        extra={**dict(existing.extra), "kind": spec.kind},
    )
    folders = [spec.path] + ([spec.performer_path] if spec.performer_path else [])
    try:
        pure.calibration_dir.mkdir(parents=True, exist_ok=True)
        manifest = write_manifest(pure.calibration_dir, draft, model_files(folders))
    except OSError as exc:
        raise AdminError(f"cannot write the manifest in {pure.calibration_dir} ({exc}); "
                         "set manifest_dir for this detector to a writable folder") from exc
    return {"manifest": str(pure.calibration_dir / "manifest.json"), "version": manifest["version"],
            "calibration": manifest["calibration"], "thresholds": thresholds, "provenance": provenance}


def calibrate_ensemble(settings: Settings, role: str, input_path: Path, target_fpr: float = 0.01,
                       provided: Mapping[str, Detector[Any]] | None = None) -> dict[str, Any]:
    """Fit the role's stacker (logistic regression on member raw scores) and its thresholds.

    ``provided`` detectors (already constructed, e.g. in tests) replace the shipped ones by role.
    """
    spec = next((e for e in settings.ensembles if e.role == role), None)
    if spec is None:
        raise AdminError(f"no ensemble for role {role!r} in BYLINECHECK_ENSEMBLES")
    data = read_labelled(input_path, settings, role)
    columns = {m: score_items(_provided(settings, provided, m) or _loaded(settings, m), data.items) for m in spec.members}
    rows = [{m: (out[i].raw_score if out[i].abstain_reason in USABLE else None) for m, out in columns.items()}
            for i in range(len(data.items))]
    used = [i for i, r in enumerate(rows) if any(v is not None for v in r.values())]
    excluded = Counter({"no_member_could_judge": len(rows) - len(used)})
    labels = [data.labels[i] for i in used]
    if len(set(labels)) < 2:
        raise AdminError("stacking needs rows of both labels that at least one member could judge")
    try:
        stacker = fit_stacker(spec.members, [rows[i] for i in used], labels)
    except ValueError as exc:
        raise AdminError(f"cannot stack: {exc}") from exc
    probs = [stacker.probability(rows[i]) for i in used]
    thresholds, provenance = _provenance(data, used, labels, probs, excluded, target_fpr, auroc(probs, labels))
    versions = {m: f"{out[0].detector}@{out[0].version}" for m, out in columns.items() if out}
    manifest = write_stacker_manifest(spec.manifest, role, stacker, thresholds,
                                      {**provenance, "method": "logistic-regression (L2 = 1, standardised raw scores)",
                                       "member_versions": versions})
    return {"manifest": str(spec.manifest), "version": manifest["version"], "stacker": manifest["stacker"],
            "thresholds": thresholds, "provenance": manifest["threshold_provenance"]}


def evaluate_detector(settings: Settings, name: str, input_path: Path, target_fpr: float = 0.01) -> dict[str, Any]:
    """AUROC and TPR at ``target_fpr`` of the raw score, FPR/TPR at the calibrated threshold, ECE and coverage.

    ``name`` is a declared detector, or ``text`` / ``face`` for ours. Raw-score metrics use every row
    with a raw score; the threshold metrics and ECE use the rows the detector did not abstain on.
    """
    role = "text" if name == "text" else "image" if name == "face" else find_spec(settings, name).role
    data = read_labelled(input_path, settings, role)
    outputs = score_items(_loaded(settings, name), data.items)
    scored = [i for i, o in enumerate(outputs) if o.raw_score is not None]
    sign = {i: -1.0 if outputs[i].direction is ScoreDirection.LOWER_IS_AI else 1.0 for i in scored}
    raw = [sign[i] * float(outputs[i].raw_score) for i in scored]  # type: ignore[arg-type]
    raw_labels = [data.labels[i] for i in scored]
    covered = [i for i, o in enumerate(outputs) if o.probability is not None]
    probs = [float(outputs[i].probability) for i in covered]  # type: ignore[arg-type]
    labels = [data.labels[i] for i in covered]
    judged = [(outputs[i].verdict.value, data.labels[i]) for i in covered]
    human_rows, ai_rows = labels.count(0), labels.count(1)
    return {
        "detector": name, "version": outputs[0].version if outputs else None, "data": str(input_path), "n": len(outputs),
        "coverage": len(covered) / len(outputs) if outputs else 0.0,
        "abstained": dict(Counter(o.abstain_reason for o in outputs if o.probability is None)),
        "auroc_raw": auroc(raw, raw_labels), f"tpr_at_{target_fpr:g}_fpr_raw": tpr_at_fpr(raw, raw_labels, target_fpr),
        "threshold": outputs[covered[0]].threshold if covered else None,
        "fpr_at_threshold": sum(v == "likely_ai" and y == 0 for v, y in judged) / human_rows if human_rows else None,
        "tpr_at_threshold": sum(v == "likely_ai" and y == 1 for v, y in judged) / ai_rows if ai_rows else None,
        "ece": expected_calibration_error(probs, labels) if covered else None,
    }


def list_models(settings: Settings) -> list[dict[str, Any]]:
    """Each declared detector and ensemble: folder present, calibrated or not, version; loads no model."""
    rows: list[dict[str, Any]] = []
    for spec in settings.custom_detectors:
        pure = custom_spec(spec)
        row: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "role": spec.role, "path": str(spec.path),
                               "present": spec.path.is_dir() and (spec.performer_path is None or spec.performer_path.is_dir())}
        if row["present"]:
            try:
                state = read_state(pure.calibration_dir, verify=False, fallback=spec.path)
                row |= {"calibrated": state.is_calibrated, "version": state.version,
                        "likely_ai": state.thresholds.likely_ai if state.thresholds else None}
            except DetectorError as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    for ensemble in settings.ensembles:
        rows.append({"name": f"ensemble:{ensemble.role}", "kind": "stacker", "role": ensemble.role,
                     "members": ensemble.members, "path": str(ensemble.manifest), "present": ensemble.manifest.is_file()})
    return rows
