"""Cross-generator transfer of the shipped face recipe (2.7.0): train on one generator, test on the other, both ways.

The issue asks for it because it predicts how the detector meets generators it never saw (Midjourney, FLUX,
Generated Photos). Until now the card carried 1.0.0's study (its CPU-trained 96 px CNN and cue trees only); this one
re-runs every fitted part of the shipped stack without the held-out generator ``H`` (the other, ``S``, is seen):

* the CNN v2: a GPU run of ``gpu_train.py --exclude-source H`` (the shipped recipe on a 140 s clock instead of 280 s;
  ``detectors/face/GPU_RUN.md``), its ONNX file passed as ``--run H=PATH``;
* the cue trees: refitted on the train faces without ``H``'s (same seed and recipe as shipped);
* the grid model (dlib's network's stage statistics per 2 x 2 cell): C chosen on train without ``H``, refitted on
  train + validation without ``H``, validation logits out of fold (2.7.0's cross-fitting);
* the stacker on the shipped inputs (``cnn_v2``, ``cues``, ``net_grid``), Platt calibration and thresholds: on the
  validation faces without ``H``'s. The face finder, crops and minimum face size are the shipped ones.

Measured on the TEST split: the service's detector built from those files (``report.test_report``: every source pair,
as submitted and after JPEG q60 + half size; the pairs with ``S`` are "seen", those with ``H`` "unseen"), and each
input alone on the test faces (each file as staged and once degraded, ``stacking.validation_logits``), beside the
shipped 2.7.0 models (trained on both generators) on the same faces.

Run (about 15 minutes on 2 cores; caches under ``--cache-dir``)::

    python -m detectors.face.cross_generator --data ../shared/datasets/faces \\
        --run sd21=.devdata/face_xgen/without_sd21/face_cnn_v2.onnx \\
        --run stylegan1=.devdata/face_xgen/without_stylegan1/face_cnn_v2.onnx --out weights/face

Writes ``cross_generator_v2.json`` to ``--out`` and re-renders its model card.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.face.data import SOURCE_NAMES, build_cache, cache_name, list_records, split_records
from detectors.face.descriptor_model import SUMMARY_INPUTS
from detectors.face.scoring import CueTrees, Ensemble
from detectors.face.stacking import (
    CANDIDATES,
    ValidationLogits,
    _cached_validation,
    _descriptor_models,
    _manifest_fields,
    _place_files,
    ensemble_for,
    fit_stacker,
    training_finder,
    write_manifest_v2,
)
from detectors.manifest import MANIFEST_NAME, sha256_file
from detectors.metrics import auroc, tpr_at_fpr

logger = logging.getLogger(__name__)

FILE = "cross_generator_v2.json"
SHIPPED_INPUTS = CANDIDATES["v2+cues+grid"]  # 2.7.0's stacker inputs
GENERATORS = ("stylegan1", "sd21")
REALS = ("ffhq", "ciplab")


def _grid_logits(model: Any, val: ValidationLogits) -> np.ndarray:
    spec = SUMMARY_INPUTS["net_grid"]
    return np.asarray(model.logits(val.stages[:, spec.start : spec.stop]), dtype=np.float64)


def input_table(test: ValidationLogits, ensemble: Ensemble, grid_model: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """AUROC / TPR@1%FPR of each input and of the stack, per generator (all real test faces against its faces)."""
    columns = {**test.columns, "net_grid": _grid_logits(grid_model, test)}  # cues: the logits of ensemble's trees
    stack = np.full(len(test.labels), ensemble.stack_intercept)
    for coef, name in zip(ensemble.stack_coef, ensemble.inputs, strict=True):
        stack = stack + coef * columns[name]
    columns["stack"] = stack
    out: dict[str, dict[str, Any]] = {}
    for generator in GENERATORS:
        mask = (test.labels == 0) | (test.source == SOURCE_NAMES.index(generator))
        out[generator] = {name: {"auroc": auroc(col[mask], test.labels[mask]),
                                 "tpr_at_1pct_fpr": tpr_at_fpr(col[mask], test.labels[mask]),
                                 "n_real": int((test.labels[mask] == 0).sum()), "n_ai": int(test.labels[mask].sum())}
                          for name, col in columns.items() if name in (*SHIPPED_INPUTS, "stack")}
    return out


def held_out_study(data_dir: Path, held_out: str, cnn_v2: Path, work_dir: Path, seed: int, cache_dir: Path,
                   min_evidence: float) -> dict[str, Any]:
    """Every fitted part of the shipped stack without ``held_out``'s faces (``cnn_v2`` trained without them); the
    detector written to ``work_dir`` and measured on the test split."""
    from detectors.face.report import test_report
    from detectors.face.training import fit_cue_model

    start = time.perf_counter()
    finder = training_finder(work_dir)
    splits = split_records(list_records(data_dir), seed)
    arrays = build_cache(splits, cache_dir / cache_name(seed, finder), seed, finder)
    index = SOURCE_NAMES.index(held_out)
    keep = arrays["train_source"] != index
    trees = fit_cue_model(arrays["train_cues"][keep], arrays["train_labels"][keep], seed)
    val_all = _cached_validation(splits["validation"], None, cnn_v2, trees, seed, cache_dir, finder)
    val = val_all.subset(val_all.source != index)
    (descriptor, _), summary_fits = _descriptor_models(splits["train"], seed, cache_dir, finder, val,
                                                       splits["validation"], exclude_source=held_out)
    coef, intercept = fit_stacker(np.stack([val.columns[name] for name in SHIPPED_INPUTS], axis=1), val.labels)
    ensemble = Ensemble(trees=trees, stack_coef=coef, stack_intercept=intercept, inputs=SHIPPED_INPUTS)
    fields, stats = _manifest_fields(val, ensemble, seed)
    _place_files(work_dir, cnn_v2, None, fields, trees, descriptor, {k: v[0] for k, v in summary_fits.items()})
    write_manifest_v2(work_dir, fields, min_evidence)
    test_faces = _cached_validation(splits["test"], None, cnn_v2, trees, seed, cache_dir, finder, split="test")
    return {
        "held_out": held_out,
        "seen": next(g for g in GENERATORS if g != held_out),
        "cnn_v2_sha256": sha256_file(cnn_v2),
        "train_faces_for_trees": int(keep.sum()),
        "validation_faces": int(len(val.labels)),
        "stacker": {"inputs": list(SHIPPED_INPUTS), "coef": list(coef), "intercept": intercept},
        "validation": {k: v for k, v in stats.items() if k != "val_family_accuracy"},
        "thresholds": fields["thresholds"],
        "grid_model": {k: v for k, v in summary_fits["net_grid"][1].items() if k in ("chosen_c", "train_faces")},
        "test_inputs": input_table(test_faces, ensemble, summary_fits["net_grid"][0]),
        "test": test_report(work_dir, splits["test"]),
        "seconds": time.perf_counter() - start,
    }


def shipped_inputs(data_dir: Path, weights: Path, seed: int, cache_dir: Path) -> dict[str, Any]:
    """The shipped models' per-input table on the same test faces (trained on both generators)."""
    from detectors.face.descriptor_model import DescriptorModel

    manifest = json.loads((weights / MANIFEST_NAME).read_text(encoding="utf-8"))
    trees = CueTrees.load(weights / manifest["files"]["cue_trees"]["path"])
    ensemble = ensemble_for(trees, manifest["extra"]["ensemble"])
    spec = SUMMARY_INPUTS["net_grid"]
    grid = DescriptorModel.load(weights / manifest["files"][spec.role]["path"], dim=spec.dim)
    splits = split_records(list_records(data_dir), seed)
    finder = training_finder(weights)
    test_faces = _cached_validation(splits["test"], None, weights / manifest["files"]["model_v2"]["path"], trees, seed,
                                    cache_dir, finder, split="test")
    return input_table(test_faces, ensemble, grid)


def pair_rows(study: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(pair, seen | unseen, its test_report entry) for the four real/generator pairs of one held-out study."""
    rows = []
    for real in REALS:
        for generator in GENERATORS:
            which = "unseen" if generator == study["held_out"] else "seen"
            rows.append((f"{real} vs {generator}", which, study["test"][f"{real} vs {generator}"]))
    return rows


def run(data_dir: Path, runs: dict[str, Path], out_dir: Path, seed: int, cache_dir: Path) -> dict[str, Any]:
    min_evidence = float(json.loads((out_dir / MANIFEST_NAME).read_text(encoding="utf-8"))["min_evidence"])
    result: dict[str, Any] = {"shipped_inputs": shipped_inputs(data_dir, out_dir, seed, cache_dir), "studies": {}}
    for held_out, cnn in runs.items():
        with tempfile.TemporaryDirectory(prefix=f"xgen_{held_out}_") as work:
            study = held_out_study(data_dir, held_out, cnn, Path(work), seed, cache_dir, min_evidence)
        result["studies"][f"train on {study['seen']}, test on {held_out}"] = study
        logger.info("held out %s: %s", held_out, json.dumps({p: (w, e["as_submitted"]["auroc"]) for p, w, e in pair_rows(study)}))
    (out_dir / FILE).write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
    metrics_path = out_dir / "metrics.json"
    if metrics_path.is_file():
        from detectors.face.card import write_model_card

        write_model_card(out_dir, json.loads(metrics_path.read_text(encoding="utf-8")))
    return result


def _run_arg(text: str) -> tuple[str, Path]:
    name, _, path = text.partition("=")
    if name not in GENERATORS or not path:
        raise argparse.ArgumentTypeError(f"expected GENERATOR=PATH with GENERATOR in {GENERATORS}: {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/faces"))
    parser.add_argument("--run", type=_run_arg, action="append", required=True,
                        help="HELD_OUT=CNN.onnx: the CNN v2 trained without that generator")
    parser.add_argument("--out", type=Path, default=Path("weights/face"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/face_cache"))
    args = parser.parse_args(argv)
    run(args.data, dict(args.run), args.out, args.seed, args.cache_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

