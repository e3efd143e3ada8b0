"""Face detector 2.x: stack the GPU-trained v2 CNN (``face_cnn_v2.onnx``) on validation, calibrate, choose.

Caveats first: the v2 CNN is trained on a GPU (``scripts/gpu_train_face.sh``, see
``detectors/face/GPU_RUN.md``); this step runs on CPU. Validation logits are computed through the
inference path (``find_and_prepare`` with the v2 crop) on each validation file as staged and once
degraded (``augment.degrade_image``, rng ``seed + VAL_RNG_OFFSET``: the same recipe as
``data._eval_samples``, fresh draws), so v1's CNN, v2's CNN and the cue trees see the same images.
The stacker (2-4 parameters), Platt calibration and thresholds are fitted in-sample on validation;
the candidate is chosen by 5-fold out-of-fold AUROC on validation (folds grouped by file), never on
test. Heavy imports (scikit-learn, onnxruntime) happen inside functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from detectors.face.blazeface import BlazeFace
from detectors.face.card import FALLBACK_EVAL_FILE
from detectors.face.data import SOURCE_NAMES, Record, build_cache, cache_name, judged_faces, list_records, split_records
from detectors.face.descriptor_model import (
    DESCRIPTOR_FILE,
    SUMMARY_INPUTS,
    TRAIN_RNG_OFFSET,
    DescriptorModel,
    cached_face_descriptors,
    cross_fitted,
    fit_descriptor_model,
    fit_with_c,
)
from detectors.face.finding import COARSE_LEVELS, WORK_SIDE, FaceEmbedder, FaceFinder
from detectors.face.pipeline import CROP_SIZE, V2_CROP
from detectors.face.report import PAIRS
from detectors.face.scoring import CueTrees, Ensemble
from detectors.manifest import MANIFEST_NAME, file_entry, sha256_file
from detectors.metrics import auroc, tpr_at_fpr

logger = logging.getLogger(__name__)

VERSION = "2.7.0"
FALLBACK_MODEL_FILE = "finder_fallback.onnx"  # the face finder's BlazeFace model (not trained here)
# BlazeFace's model as committed (converted by detectors.face.blazeface_export); copied into an empty out_dir.
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "weights" / "face"
SHIPPED_FALLBACK = SHIPPED_DIR / FALLBACK_MODEL_FILE
# BlazeFace first, trusted alone when its largest face is >= this share of the longest side (FaceFinder); 0 = dlib's
# passes first, BlazeFace only where they find nothing (2.4.0: asking it first cost test AUROC, benchmarks/NOTES.md
# round 13).
FIRST_TRUST_SIDE = 0.0
VAL_RNG_OFFSET = 2
V1_FILE, V2_FILE = "model.onnx", "model_v2.onnx"
FOLDS = 5
SIMPLER_WITHIN = 0.002
# name -> stacker inputs, simplest first; "v1+cues" is the shipped 1.0.0 recipe, a reference only.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "v2": ("cnn_v2",),
    "v2+cues": ("cnn_v2", "cues"),
    "v2+v1+cues": ("cnn_v2", "cnn", "cues"),
    "v2+cues+descriptor": ("cnn_v2", "cues", "descriptor"),
    "v2+cues+stages": ("cnn_v2", "cues", "net_stages"),
    "v2+cues+descriptor+stages": ("cnn_v2", "cues", "descriptor", "net_stages"),
    "v2+cues+grid": ("cnn_v2", "cues", "net_grid"),
    "v2+cues+stages+grid": ("cnn_v2", "cues", "net_stages", "net_grid"),
}
REFERENCE = {"v1+cues": ("cnn", "cues")}


@dataclass(frozen=True)
class ValidationLogits:
    """Per judged validation face: the logits of each input, label, family (1 = diffusion), source, file, dlib's
    128-d descriptor and its network's summary (``stages``: stage statistics, then the grid's; the ``descriptor``,
    ``net_stages`` and ``net_grid`` columns are models of them fitted on train, added by the caller)."""

    columns: dict[str, np.ndarray]
    family_logit: np.ndarray
    labels: np.ndarray
    family: np.ndarray
    source: np.ndarray
    record: np.ndarray
    condition: np.ndarray
    descriptors: np.ndarray
    stages: np.ndarray

    def subset(self, mask: np.ndarray) -> ValidationLogits:
        """The faces where ``mask`` is true (the columns too)."""
        return ValidationLogits({k: v[mask] for k, v in self.columns.items()}, self.family_logit[mask], self.labels[mask],
                                self.family[mask], self.source[mask], self.record[mask], self.condition[mask],
                                self.descriptors[mask], self.stages[mask])


def _onnx_logits(model_path: Path, crops: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    parts = []
    for start in range(0, len(crops), 64):
        nchw = np.ascontiguousarray(crops[start : start + 64].transpose(0, 3, 1, 2), dtype=np.float32)
        parts.append(session.run(None, {"crops": nchw})[0])
    return np.concatenate(parts).astype(np.float64)


def training_finder(out_dir: Path) -> FaceFinder:
    """The face finder the service will run with the weights written to ``out_dir`` (2.4.0 on): dlib's passes with
    BlazeFace as the fallback (and first, if ``FIRST_TRUST_SIDE`` > 0), its model copied into ``out_dir`` when missing
    there."""
    model = out_dir / FALLBACK_MODEL_FILE
    if not model.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHIPPED_FALLBACK, model)
    fallback = BlazeFace()
    fallback.load(model)
    return FaceFinder(WORK_SIDE, COARSE_LEVELS, fallback, FIRST_TRUST_SIDE)


def validation_logits(
    records: list[Record], v1_model: Path | None, v2_model: Path, trees: CueTrees, seed: int,
    finder: FaceFinder | None = None,
) -> ValidationLogits:
    """v1 CNN (when given), v2 CNN and cue-tree logits for every validation file, as staged and degraded, its faces
    found by ``finder`` (by default dlib's alone)."""
    embedder = FaceEmbedder()
    crops, wide, cues, meta, descriptors, stages = [], [], [], [], [], []
    for judged in judged_faces(records, np.random.default_rng(seed + VAL_RNG_OFFSET), V2_CROP, "validation logits",
                               finder):
        inputs, record = judged.inputs, judged.record
        if inputs.wide_crop is None:
            continue
        descriptor, statistics = embedder.describe(judged.pixels, judged.face.landmarks)  # as FaceDetector.preprocess
        descriptors.append(descriptor)
        stages.append(statistics)
        crops.append(inputs.crop)
        wide.append(inputs.wide_crop)
        cues.append(inputs.cues)
        meta.append((record.label, int(record.family == "diffusion"), SOURCE_NAMES.index(record.source), judged.index,
                     judged.condition))
    v2 = _onnx_logits(v2_model, np.stack(wide))
    columns = {"cnn_v2": v2[:, 0], "cues": trees.logits(np.stack(cues))}
    if v1_model is not None:
        columns["cnn"] = _onnx_logits(v1_model, np.stack(crops))[:, 0]
    m = np.array(meta, dtype=np.int64)
    return ValidationLogits(columns, v2[:, 1], m[:, 0], m[:, 1], m[:, 2], m[:, 3], m[:, 4],
                            np.asarray(descriptors, dtype=np.float64), np.stack(stages))


def _design(val: ValidationLogits, inputs: tuple[str, ...]) -> np.ndarray:
    return np.stack([val.columns[name] for name in inputs], axis=1)


def fit_stacker(x: np.ndarray, labels: np.ndarray) -> tuple[tuple[float, ...], float]:
    """Logistic regression (C = 1, as v1's stacker) on the input logits: (coefficients, intercept)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, labels)
    return tuple(float(v) for v in model.coef_[0]), float(model.intercept_[0])


def out_of_fold(x: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Stacked logits where each file's faces are scored by a stacker fitted on the other folds."""
    from sklearn.model_selection import GroupKFold

    scores = np.zeros(len(labels))
    for fit_idx, held_idx in GroupKFold(n_splits=FOLDS).split(x, labels, groups):
        coef, intercept = fit_stacker(x[fit_idx], labels[fit_idx])
        scores[held_idx] = x[held_idx] @ np.array(coef) + intercept
    return scores


def compare_candidates(val: ValidationLogits) -> dict[str, dict[str, Any]]:
    """Per candidate (and the v1 reference): in-sample and out-of-fold validation AUROC / TPR@1%FPR."""
    result: dict[str, dict[str, Any]] = {}
    for name, inputs in {**CANDIDATES, **REFERENCE}.items():
        if not set(inputs) <= set(val.columns):
            continue
        x = _design(val, inputs)
        coef, intercept = fit_stacker(x, val.labels)
        in_sample = x @ np.array(coef) + intercept
        oof = out_of_fold(x, val.labels, val.record)
        result[name] = {
            "inputs": list(inputs),
            "stack_coef": list(coef),
            "stack_intercept": intercept,
            "auroc_in_sample": auroc(in_sample, val.labels),
            "tpr_at_1pct_fpr_in_sample": tpr_at_fpr(in_sample, val.labels),
            "auroc_out_of_fold": auroc(oof, val.labels),
            "tpr_at_1pct_fpr_out_of_fold": tpr_at_fpr(oof, val.labels),
        }
    return result


def choose_candidate(comparison: dict[str, dict[str, Any]]) -> str:
    """Best out-of-fold validation AUROC among CANDIDATES; a simpler one within SIMPLER_WITHIN wins."""
    names = [name for name in CANDIDATES if name in comparison]
    top = max(comparison[name]["auroc_out_of_fold"] for name in names)
    return next(name for name in names if comparison[name]["auroc_out_of_fold"] >= top - SIMPLER_WITHIN)


def ensemble_for(trees: CueTrees, chosen: dict[str, Any]) -> Ensemble:
    return Ensemble(
        trees=trees,
        stack_coef=tuple(chosen["stack_coef"]),
        stack_intercept=float(chosen["stack_intercept"]),
        inputs=tuple(chosen["inputs"]),
    )


def _cached_validation(
    records: list[Record], v1_model: Path | None, v2_model: Path, trees: CueTrees, seed: int, cache_dir: Path,
    finder: FaceFinder, split: str = "validation",
) -> ValidationLogits:
    """``validation_logits`` (of ``records``, the ``split`` named for the cache key), cached under ``cache_dir`` by the
    models' and the trees' content and the finder."""
    parts = [sha256_file(v2_model), sha256_file(v1_model) if v1_model else "-", str(seed), str(len(records)), "descriptors",
             "stages", "grid", finder.settings_tag(), *([split] if split != "validation" else [])]
    key = hashlib.sha256("".join(parts).encode() + trees.value.tobytes()).hexdigest()[:16]
    path = cache_dir / f"face_v2_val_{key}.npz"
    if path.is_file():
        with np.load(path) as d:
            cols = {k[4:]: d[k] for k in d.files if k.startswith("col_")}
            return ValidationLogits(cols, d["family_logit"], d["labels"], d["family"], d["source"], d["record"], d["condition"],
                                    d["descriptors"], d["stages"])
    val = validation_logits(records, v1_model, v2_model, trees, seed, finder)
    cache_dir.mkdir(parents=True, exist_ok=True)
    arrays = {f"col_{k}": v for k, v in val.columns.items()}
    meta = {"family_logit": val.family_logit, "labels": val.labels, "family": val.family, "source": val.source,
            "record": val.record, "condition": val.condition, "descriptors": val.descriptors, "stages": val.stages}
    np.savez(path, **arrays, **meta)  # type: ignore[arg-type]
    return val


def _manifest_fields(val: ValidationLogits, ensemble: Ensemble, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Platt calibration, thresholds and manifest fields for the chosen stacker; and validation stats."""
    from detectors.face.training import calibrated_thresholds

    raw = _design(val, ensemble.inputs) @ np.array(ensemble.stack_coef) + ensemble.stack_intercept
    ai = val.labels == 1
    stats = {
        "val_auroc_ensemble": auroc(raw, val.labels),
        "val_tpr_at_1pct_fpr": tpr_at_fpr(raw, val.labels),
        "val_family_accuracy": float(((val.family_logit[ai] > 0) == (val.family[ai] == 1)).mean()),
        "val_n": int(len(raw)),
        "val_auroc_per_input": {name: auroc(col, val.labels) for name, col in val.columns.items()},
    }
    cnn_files = {"cnn": V1_FILE, "cnn_v2": V2_FILE}
    split = f"validation (seed {seed}; as staged + one random degradation per image, rng seed {seed + VAL_RNG_OFFSET})"
    fields = {
        **calibrated_thresholds(raw, val.labels, split),
        "extra": {
            "ensemble": ensemble.stacker_dict(),
            "family": {"diffusion_above": 0.9, "gan_below": 0.1, "from": "cnn_v2"},
            "crop_size": CROP_SIZE,
            "cnn_v2": {"crop_size": V2_CROP.size, "zoom": V2_CROP.zoom},
            "work_side": WORK_SIDE,  # the FaceFinder every validation logit was computed with (training_finder)
            "coarse_levels": COARSE_LEVELS,
            "blazeface_first_trust_side": FIRST_TRUST_SIDE,
            "seed": seed,
        },
        "cnn_files": [cnn_files[name] for name in ("cnn", "cnn_v2") if name in ensemble.inputs or name == "cnn_v2"],
    }
    return fields, stats


def write_manifest_v2(out_dir: Path, fields: dict[str, Any], min_evidence: float) -> None:
    """``manifest.json`` listing the CNN file(s) the stacker uses and the cue trees, with sha256 and size."""
    from detectors.face.training import CUE_TREES_FILE, NAME

    roles = {V1_FILE: "model", V2_FILE: "model_v2"}
    files = {roles[name]: file_entry(out_dir, out_dir / name) for name in fields["cnn_files"]}
    files["cue_trees"] = file_entry(out_dir, out_dir / CUE_TREES_FILE)
    if "descriptor" in fields["extra"]["ensemble"]["inputs"]:
        files["descriptor_model"] = file_entry(out_dir, out_dir / DESCRIPTOR_FILE)
    for name, spec in SUMMARY_INPUTS.items():
        if name in fields["extra"]["ensemble"]["inputs"]:
            files[spec.role] = file_entry(out_dir, out_dir / spec.file)
    if (out_dir / FALLBACK_MODEL_FILE).is_file():  # put there by detectors.face.blazeface_export (2.3.0 on)
        files["finder_fallback"] = file_entry(out_dir, out_dir / FALLBACK_MODEL_FILE)
    manifest = {
        "name": NAME,
        "version": VERSION,
        "modality": "image",
        "score_direction": "higher_is_ai",
        "evidence_unit": "face_pixels",
        "files": files,
        **{k: v for k, v in fields.items() if k != "cnn_files"},
        "min_evidence": float(min_evidence),
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _place_files(out_dir: Path, cnn_v2: Path, cnn_v1: Path | None, fields: dict[str, Any], trees: CueTrees,
                 descriptor: DescriptorModel, summary_models: dict[str, DescriptorModel]) -> None:
    from detectors.face.training import CUE_TREES_FILE

    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / V2_FILE).resolve() != cnn_v2.resolve():
        shutil.copyfile(cnn_v2, out_dir / V2_FILE)
    if V1_FILE in fields["cnn_files"] and cnn_v1 is not None and (out_dir / V1_FILE).resolve() != cnn_v1.resolve():
        shutil.copyfile(cnn_v1, out_dir / V1_FILE)
    elif V1_FILE not in fields["cnn_files"]:
        (out_dir / V1_FILE).unlink(missing_ok=True)
    trees.save(out_dir / CUE_TREES_FILE)
    models = [("descriptor", descriptor, DESCRIPTOR_FILE)]
    models += [(name, summary_models[name], spec.file) for name, spec in SUMMARY_INPUTS.items()]
    for name, model, file in models:
        if name in fields["extra"]["ensemble"]["inputs"]:
            model.save(out_dir / file)
        else:
            (out_dir / file).unlink(missing_ok=True)


def stack_face_v2(
    data_dir: Path, out_dir: Path, cnn_v2: Path, seed: int, cache_dir: Path, cnn_v1: Path | None = None,
    gpu_log: Path | None = None, store_dir: Path = Path(".devdata/face_gpu"), studies: bool = True,
) -> dict[str, Any]:
    """Cue trees (train), validation logits, stacker choice, calibration, thresholds; then the face-size
    study (validation), the test report, the shortcut check and speed. Writes the weights, metrics.json
    and MODEL_CARD.md to ``out_dir``. ``cnn_v1`` adds v1's CNN to the candidates (its 1.0.0 model.onnx)."""
    from detectors.face.training import fit_cue_model

    start = time.perf_counter()
    replaced = _replaced(out_dir)
    previous, carried = _previous_test(out_dir, replaced), _carried(replaced)
    finder = training_finder(out_dir)
    splits = split_records(list_records(data_dir), seed)
    arrays = build_cache(splits, cache_dir / cache_name(seed, finder), seed, finder)
    trees = fit_cue_model(arrays["train_cues"], arrays["train_labels"], seed)
    val = _cached_validation(splits["validation"], cnn_v1, cnn_v2, trees, seed, cache_dir, finder)
    (descriptor, descriptor_summary), summary_fits = _descriptor_models(splits["train"], seed, cache_dir, finder, val,
                                                                         splits["validation"])
    val.columns["descriptor"] = descriptor.logits(val.descriptors)  # not cross-fitted: a candidate no longer chosen
    comparison = compare_candidates(val)
    chosen = choose_candidate(comparison)
    logger.info("stacker candidates: %s; chosen %s", json.dumps(comparison), chosen)
    ensemble = ensemble_for(trees, comparison[chosen])
    fields, stats = _manifest_fields(val, ensemble, seed)
    _place_files(out_dir, cnn_v2, cnn_v1, fields, trees, descriptor, {k: v[0] for k, v in summary_fits.items()})
    write_manifest_v2(out_dir, fields, 0.0)
    summary: dict[str, Any] = {
        "seed": seed,
        "splits": {name: {src: sum(r.source == src for r in recs) for src in SOURCE_NAMES} for name, recs in splits.items()},
        "validation": {**stats, "candidates": comparison, "chosen": chosen},
        "descriptor_model": descriptor_summary,
        **{SUMMARY_INPUTS[name].role: fit[1] for name, fit in summary_fits.items()},
        "thresholds": fields["thresholds"],
        "fpr_reached": fields["threshold_provenance"]["fpr_reached"],
        "gpu": _gpu_summary(gpu_log) or carried.get("gpu", {}),
        "gpu_carried_from": None if _gpu_summary(gpu_log) else carried.get("version"),
        "cnn_v2_sha256": sha256_file(cnn_v2),
        "cnn_v1_sha256": sha256_file(cnn_v1) if cnn_v1 is not None else None,
        **({"previous_test": previous} if previous else {}),
    }
    if studies:
        summary.update(_studies(out_dir, fields, splits, store_dir, seed))
        if not summary["shortcut"] and carried.get("shortcut"):  # no crop store here: the CNN's data is unchanged
            summary["shortcut"], summary["shortcut_carried_from"] = carried["shortcut"], carried["version"]
    summary["stack_seconds"] = time.perf_counter() - start
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
    if studies:
        from detectors.face.card import write_model_card

        write_model_card(out_dir, summary)
    return summary


FittedModel = tuple[DescriptorModel, dict[str, Any]]


def _descriptor_models(train: list[Record], seed: int, cache_dir: Path, finder: FaceFinder, val: ValidationLogits,
                       val_records: list[Record], exclude_source: str | None = None,
                       ) -> tuple[FittedModel, dict[str, FittedModel]]:
    """The logistic regression on the descriptor (train split's faces, as staged + one degraded copy) and those on
    each slice of the network summary (``SUMMARY_INPUTS``): C chosen on train, then refitted on train + validation
    (2.7.0 on), with ``val``'s column of that input set to the out-of-fold validation logits
    (``descriptor_model.cross_fitted``, folds grouped as the train CV's: by file, SD images by prompt). Each with its
    summary. ``exclude_source`` leaves that source's train faces out (the cross-generator study; ``val`` is then
    already without them)."""
    name = cache_name(seed, finder).removesuffix(".npz")
    arrays = cached_face_descriptors(train, seed, TRAIN_RNG_OFFSET, cache_dir / f"descriptors_train_{name}_n{len(train)}.npz",
                                     finder)
    if exclude_source is not None:
        keep = np.array([train[int(i)].source != exclude_source for i in arrays["record"]])
        arrays = {k: v[keep] for k, v in arrays.items()}
    common = {"train_faces": int(len(arrays["labels"])), "train_files": int(len(np.unique(arrays["record"]))),
              "degraded_copy_rng": seed + TRAIN_RNG_OFFSET}
    model, cv = fit_descriptor_model(arrays["descriptors"], arrays["labels"], arrays["group"])
    val_groups = np.array([val_records[int(i)].group for i in val.record])
    added = {"validation_faces_added": int(len(val.labels)), "validation_files_added": int(len(np.unique(val.record))),
             "cross_fit_folds": FOLDS}
    summary_fits = {}
    for name, spec in SUMMARY_INPUTS.items():
        train_x = arrays["stages"][:, spec.start : spec.stop]
        _, fit_cv = fit_descriptor_model(train_x, arrays["labels"], arrays["group"])
        oof, fit = cross_fitted(train_x, arrays["labels"], val.stages[:, spec.start : spec.stop], val.labels, val_groups,
                                partial(fit_with_c, c=float(fit_cv["chosen_c"])))
        val.columns[name] = oof
        summary_fits[name] = (fit, {**common, **fit_cv, **added})
    return (model, {**common, **cv}), summary_fits


def _studies(
    out_dir: Path, fields: dict[str, Any], splits: dict[str, list[Record]], store_dir: Path, seed: int
) -> dict[str, Any]:
    from detectors.face.report import face_size_study, shortcut_check_v2, speed_check, test_report

    size = face_size_study(out_dir, splits["validation"])
    write_manifest_v2(out_dir, fields, float(size["min_face_pixels"]))
    return {
        "face_size": size,
        "test": test_report(out_dir, splits["test"]),
        "shortcut": shortcut_check_v2(splits["train"], store_dir, seed),
        "speed": speed_check(out_dir, splits["test"]),
    }


def reproduce_shipped(data_dir: Path, out_dir: Path, seed: int, cache_dir: Path,
                      shipped_dir: Path = SHIPPED_DIR) -> dict[str, Any]:
    """``bylinecheck train faces`` without a GPU run: everything after the CNN refitted on this machine from the
    committed CNN (``model_v2.onnx``, the GPU run's output, as ``bylinecheck train text`` reuses the committed
    encoder): cue trees, side models, stacker choice, calibration, thresholds and the card's studies. Into a folder
    other than the shipped one, the shipped files are copied first, so that what a CPU cannot recompute (the GPU run's
    summary, the previous version's test table, the studies run apart: finder fallback, cross-generator) carries over
    as it does for a refit in place. Seeded: the manifest comes out as shipped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() != shipped_dir.resolve():
        for path in shipped_dir.iterdir():
            if path.is_file():
                shutil.copyfile(path, out_dir / path.name)
    return stack_face_v2(data_dir, out_dir, out_dir / V2_FILE, seed, cache_dir)


def _gpu_summary(gpu_log: Path | None) -> dict[str, Any]:
    """Epochs, time and export figures from the GPU run's ``train_log.json`` (empty when not given)."""
    if gpu_log is None or not gpu_log.is_file():
        return {}
    log = json.loads(gpu_log.read_text(encoding="utf-8"))
    keys = ("epochs_run", "planned_epochs", "train_s", "total_s", "n_train", "n_val", "export", "args")
    return {key: log.get(key) for key in keys}


def _replaced(out_dir: Path) -> tuple[str | None, dict[str, Any]] | None:
    """The version being replaced in ``out_dir`` and its ``metrics.json`` summary, or None when either file is missing."""
    manifest, metrics = out_dir / MANIFEST_NAME, out_dir / "metrics.json"
    if not manifest.is_file() or not metrics.is_file():
        return None
    version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    return version, json.loads(metrics.read_text(encoding="utf-8"))


def _carried(replaced: tuple[str | None, dict[str, Any]] | None) -> dict[str, Any]:
    """What a refit on CPU cannot recompute and does not change, from the ``metrics.json`` being replaced: the GPU
    run's summary (``gpu``) and the CNN training data's shortcut check (``shortcut``, which needs the GPU crop
    store), with the ``version`` they came from."""
    if replaced is None:
        return {}
    version, summary = replaced
    return {"version": summary.get("shortcut_carried_from", version), "gpu": summary.get("gpu") or {},
            "shortcut": summary.get("shortcut") or {}}


def _previous_test(out_dir: Path, replaced: tuple[str | None, dict[str, Any]] | None) -> dict[str, Any] | None:
    """The test table of the version being replaced in ``out_dir`` (or the one it carried), for the card."""
    if replaced is None:
        return None
    version, summary = replaced
    if version == VERSION:
        carried: dict[str, Any] | None = summary.get("previous_test")
        return carried
    if "test" not in summary:
        return None
    served = _served_test(out_dir / FALLBACK_EVAL_FILE, version)
    if served is not None:
        note = ("as served, with its finder fallback: from its finder_fallback_eval.json, same test split, same "
                "evaluation code, its own thresholds")
        return {"version": version, "note": note, "test": served}
    note = "from its own metrics.json: same test split, same evaluation code, its own thresholds"
    return {"version": version, "note": note, "test": summary["test"]}


def _served_test(path: Path, version: str | None) -> dict[str, Any] | None:
    """The test table of ``version`` with its finder fallback on, from ``detectors.face.fallback_eval``'s output (its
    metrics.json holds the numbers of the stack's own run, without the fallback), in the test report's layout."""
    if not path.is_file():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    if result.get("version") != version or "test" not in result:
        return None
    names = {"overall": "ffhq+ciplab vs stylegan1+sd21", **{f"{real}/{fake}": f"{real} vs {fake}" for real, fake in PAIRS}}
    table: dict[str, Any] = {}
    for condition, groups in result["test"].items():
        for group, name in names.items():
            if group in groups:
                table.setdefault(name, {})[condition] = groups[group]["with"]
    return table
