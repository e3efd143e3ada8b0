"""Train the synthetic-headshot detector: CNN + cue model + stacker, calibrated, exported to ONNX.

Caveats first: heavy imports (torch, scikit-learn) happen inside functions. Splits are seeded and by
source file (SD prompts grouped); validation is used only for the stacker, calibration, thresholds
and the face-size study; the test split only for the model card. Runs on one CPU thread: the CNN
trains a fixed ``CNN_EPOCHS`` (about 12 minutes on a free core; ``budget_s`` only warns when a busy
machine will overrun it), plus a one-off feature cache of about 6 minutes under ``cache_dir`` and
about 5 minutes of studies. Reproduce 1.0.0 with
``python -m detectors.face.training --data ../shared/datasets/faces --out weights/face`` then
``... --cross-generator`` (adds the cross-generator table to the card). 2.x (GPU-trained v2 CNN) is
``... --stack-v2 OUT/face_cnn_v2.onnx --gpu-log OUT/train_log.json [--cnn-v1 V1.onnx]`` after the GPU run
(``detectors/face/GPU_RUN.md``; the step itself is ``detectors.face.stacking``). ``bylinecheck train faces`` without
``--stack-v2`` reproduces the shipped 2.x from the committed CNN (``stacking.reproduce_shipped``); ``--v1`` runs this
module's 1.0.0 recipe.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.calibration import fit_platt
from detectors.face.data import SOURCE_NAMES, Record, build_cache, cache_name, list_records, split_records
from detectors.face.pipeline import CROP_SIZE
from detectors.face.scoring import CueTrees, Ensemble
from detectors.manifest import MANIFEST_NAME, file_entry
from detectors.metrics import auroc, threshold_at_fpr, tpr_at_fpr

logger = logging.getLogger(__name__)

NAME = "face"
VERSION = "1.0.0"
MAX_FPR = 0.01
DEFAULT_CACHE = Path("/tmp/face_cache")
CUE_TREES_FILE = "cue_trees.npz"
CNN_EPOCHS = 7


def fit_cue_model(cues: np.ndarray, labels: np.ndarray, seed: int) -> CueTrees:
    """Boosted trees (100 rounds, 31 leaves, no early stopping) on the engineered cues, flattened."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=seed)
    trees = CueTrees.from_sklearn(model.fit(cues, labels))
    gap = float(np.abs(trees.logits(cues[:256]) - model.decision_function(cues[:256])).max())
    if gap > 1e-6:
        raise RuntimeError(f"flattened cue trees disagree with scikit-learn by {gap}")
    return trees


def fit_ensemble(train: dict[str, np.ndarray], val: dict[str, np.ndarray], val_cnn: np.ndarray, seed: int) -> Ensemble:
    """Cue trees on train; 2-input logistic stacker (CNN logit, cue logit) on validation."""
    from sklearn.linear_model import LogisticRegression

    trees = fit_cue_model(train["cues"], train["labels"], seed)
    stack_x = np.stack([val_cnn, trees.logits(val["cues"])], axis=1)
    stacker = LogisticRegression(C=1.0, max_iter=1000).fit(stack_x, val["labels"])
    a, b = (float(v) for v in stacker.coef_[0])
    return Ensemble(trees=trees, stack_coef=(a, b), stack_intercept=float(stacker.intercept_[0]))


def choose_thresholds(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """likely_ai keeps validation FPR <= 1%; likely_human lets <= 1% of validation AI faces below it."""
    likely_ai = min(1.0, threshold_at_fpr(probs, labels, MAX_FPR))
    ai_probs = np.sort(probs[labels == 1])
    likely_human = float(ai_probs[int(np.floor(MAX_FPR * len(ai_probs)))]) if len(ai_probs) else 0.0
    likely_human = float(np.nextafter(likely_human, -np.inf))
    return {"likely_ai": float(likely_ai), "likely_human": float(max(0.0, min(likely_human, likely_ai)))}


def calibrated_thresholds(raw: np.ndarray, labels: np.ndarray, split: str) -> dict[str, Any]:
    """Platt calibration of validation raw scores, the thresholds (``choose_thresholds``) and their provenance:
    the manifest's ``calibration``, ``thresholds`` and ``threshold_provenance`` fields. ``split`` describes
    the validation data."""
    platt = fit_platt(raw.tolist(), labels.tolist())
    probs = np.array([platt(r) for r in raw])
    thresholds = choose_thresholds(probs, labels)
    return {
        "calibration": {"method": "platt", "a": platt.a, "b": platt.b, "fitted_on": "validation"},
        "thresholds": thresholds,
        "threshold_provenance": {
            "data": "../shared/datasets/faces (FFHQ, CIPLAB real; StyleGAN v1, SD 2.1)",
            "split": split,
            "objective": "likely_ai: FPR on real photos <= 1%; likely_human: <= 1% of AI faces below",
            "fpr_reached": float((probs[labels == 0] >= thresholds["likely_ai"]).mean()),
        },
    }


def _split_arrays(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {key[len(prefix) + 1 :]: value for key, value in arrays.items() if key.startswith(prefix + "_")}


def _onnx_logits(model_path: Path, crops: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    from detectors.face.cnn import to_nchw

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"crops": to_nchw(crops[i : i + 256])})[0] for i in range(0, len(crops), 256)])


def write_manifest(out_dir: Path, fields: dict[str, Any]) -> None:
    """Write ``manifest.json`` listing ``model.onnx`` with its sha256."""
    manifest = {
        "name": NAME,
        "version": VERSION,
        "modality": "image",
        "score_direction": "higher_is_ai",
        "evidence_unit": "face_pixels",
        "files": {
            "model": file_entry(out_dir, out_dir / "model.onnx"),
            "cue_trees": file_entry(out_dir, out_dir / CUE_TREES_FILE),
        },
        **fields,
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _fit_head(arrays: dict[str, np.ndarray], out_dir: Path, seed: int, cnn_budget_s: float) -> tuple[Ensemble, dict[str, Any]]:
    """Train the CNN, export it, fit the ensemble, calibration and thresholds; returns manifest fields."""
    from detectors.face.cnn import export_onnx, train_cnn

    train, val = _split_arrays(arrays, "train"), _split_arrays(arrays, "val")
    model = train_cnn(train["crops"], train["labels"], train["family"], seed, CNN_EPOCHS, cnn_budget_s)
    out_dir.mkdir(parents=True, exist_ok=True)
    max_diff = export_onnx(model, out_dir / "model.onnx", CROP_SIZE, val["crops"][:64])
    logger.info("ONNX export: max |torch - onnxruntime| = %.2e", max_diff)
    val_logits = _onnx_logits(out_dir / "model.onnx", val["crops"])
    ensemble = fit_ensemble(train, val, val_logits[:, 0], seed)
    ensemble.trees.save(out_dir / CUE_TREES_FILE)
    raw = ensemble.raw_scores(val_logits[:, 0], val["cues"])
    ai = val["labels"] == 1
    fam_acc = float(((val_logits[ai, 1] > 0) == (val["family"][ai] == 1)).mean())
    stats = {
        "onnx_max_abs_diff": max_diff,
        "val_auroc_cnn": auroc(val_logits[:, 0], val["labels"]),
        "val_auroc_cues": auroc(ensemble.cue_logits(val["cues"]), val["labels"]),
        "val_auroc_ensemble": auroc(raw, val["labels"]),
        "val_tpr_at_1pct_fpr": tpr_at_fpr(raw, val["labels"]),
        "val_family_accuracy": fam_acc,
        "val_n": int(len(raw)),
    }
    fields = {
        **calibrated_thresholds(raw, val["labels"], f"validation (seed {seed}; as staged + one random degradation per image)"),
        "extra": {
            "ensemble": ensemble.stacker_dict(),
            "family": {"diffusion_above": 0.9, "gan_below": 0.1},
            "crop_size": CROP_SIZE,
            "work_side": 448,
            "seed": seed,
        },
    }
    return ensemble, {"manifest": fields, "stats": stats}


def train_face_model(
    data_dir: Path, out_dir: Path, seed: int = 0, budget_s: float = 1200, cache_dir: Path = DEFAULT_CACHE
) -> dict[str, Any]:
    """Train, calibrate, export and evaluate; writes model.onnx, manifest.json, MODEL_CARD.md to ``out_dir``.

    Returns the summary that the model card is written from.
    """
    import torch

    from detectors.face.report import face_size_study, shortcut_check, speed_check, test_report, write_model_card

    torch.set_num_threads(1)
    start = time.perf_counter()
    splits = split_records(list_records(data_dir), seed)
    arrays = build_cache(splits, cache_dir / cache_name(seed), seed)
    cnn_budget = max(60.0, 0.6 * budget_s - (time.perf_counter() - start))
    _, head = _fit_head(arrays, out_dir, seed, cnn_budget)
    fields = head["manifest"]
    write_manifest(out_dir, {**fields, "min_evidence": 0.0})
    size = face_size_study(out_dir, splits["validation"])
    fields["min_evidence"] = float(size["min_face_pixels"])
    write_manifest(out_dir, fields)
    summary: dict[str, Any] = {
        "seed": seed,
        "splits": {name: _split_counts(recs) for name, recs in splits.items()},
        "validation": head["stats"],
        "thresholds": fields["thresholds"],
        "fpr_reached": fields["threshold_provenance"]["fpr_reached"],
        "face_size": size,
        "test": test_report(out_dir, splits["test"]),
        "shortcut": shortcut_check(arrays, splits["train"]),
        "speed": speed_check(out_dir, splits["test"]),
        "train_seconds": time.perf_counter() - start,
    }
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
    write_model_card(out_dir, summary)
    return summary


def _split_counts(records: list[Record]) -> dict[str, int]:
    return {name: sum(r.source == name for r in records) for name in SOURCE_NAMES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the synthetic-headshot detector")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("weights/face"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=1200)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--cross-generator", action="store_true", help="only run the cross-generator study")
    parser.add_argument("--speed", action="store_true", help="only re-measure speed and re-write the card")
    parser.add_argument("--stack-v2", type=Path, help="face_cnn_v2.onnx from the GPU run: stack, calibrate, write 2.x")
    parser.add_argument("--cnn-v1", type=Path, help="with --stack-v2: 1.0.0's model.onnx, adds v1's CNN to the candidates")
    parser.add_argument("--gpu-log", type=Path, help="with --stack-v2: the GPU run's train_log.json (for the card)")
    parser.add_argument("--crop-store", type=Path, default=Path(".devdata/face_gpu"), help="with --stack-v2: gpu_data's output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.stack_v2:
        from detectors.face.stacking import stack_face_v2

        stack_face_v2(args.data, args.out, args.stack_v2, args.seed, args.cache_dir, args.cnn_v1, args.gpu_log, args.crop_store)
    elif args.speed:
        from detectors.face.report import refresh_speed

        refresh_speed(args.data, args.out, args.seed)
    elif args.cross_generator:
        from detectors.face.report import cross_generator_study

        cross_generator_study(args.data, args.out, args.seed, args.budget_s, args.cache_dir)
    else:
        train_face_model(args.data, args.out, args.seed, args.budget_s, args.cache_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
