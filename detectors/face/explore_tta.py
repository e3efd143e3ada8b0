"""Experiment: does test-time augmentation of the v2 CNN (flip, scale) lift the 2.2.0 face stacker?

Run (a few minutes on the shared 2-core machine; arrays cached under ``/tmp/face_cache``)::

    nice -n 19 .venv/bin/python -m detectors.face.explore_tta \
        --data ../shared/datasets/faces --weights weights/face > /tmp/explore_tta.md

``detectors/face/explore_tta_results.md`` is that output (seed 0) with a conclusion added.

What it measures (validation split only; the test split is never read, nothing is fitted on train):

* Faces exactly as ``explore_descriptor`` makes them (``judged_faces``: each validation file as staged and once
  degraded, the same rng offset), with the shipped ``cues`` and ``descriptor`` logits.
* The shipped ``model_v2.onnx`` logit on the inference path's crop and on views of it the CNN was trained to
  ignore (its recipe has flips and 0.93-1.07 scale jitter): the mirrored crop, and the crop re-aligned at 0.96x and
  1.04x scale (each also mirrored). A view's logit is the mean of its crops' logits.
* Each view's logit in place of the single-crop one in the 2.2.0 stacker (cnn_v2 + cues + descriptor):
  5-fold grouped OOF AUROC / TPR@1%FPR overall and per pair, and a paired file bootstrap of the AUROC difference.
  Cost: every extra crop is one more forward pass of the CNN (~8 ms on one core) and, for re-aligned crops, one
  more ``align_face`` (~2 ms).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detectors.face.alignment import align_face, jitter_matrix
from detectors.face.data import SOURCE_NAMES, Record, judged_faces, list_records, split_records
from detectors.face.descriptor_model import DescriptorModel
from detectors.face.explore_descriptor import CACHE_DIR, bootstrap_diff, experiment_args, pair_cells, say, table_header
from detectors.face.finding import FaceEmbedder
from detectors.face.pipeline import V2_CROP
from detectors.face.scoring import CueTrees
from detectors.face.stacking import VAL_RNG_OFFSET, _onnx_logits, out_of_fold
from detectors.metrics import auroc, tpr_at_fpr

SCALES = (0.96, 1.04)  # re-aligned views, inside the training recipe's 0.93-1.07


def views(records: list[Record], seed: int, weights: Path) -> dict[str, np.ndarray]:
    """Per judged validation face: CNN logits of each crop (columns: crop, mirror, then each scale and its
    mirror), the cue and descriptor logits, and (label, source, file, condition)."""
    path = CACHE_DIR / f"explore_tta_validation_seed{seed}_n{len(records)}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return dict(cached)
    embedder = FaceEmbedder()
    crops, cues, desc, meta = [], [], [], []
    for judged in judged_faces(records, np.random.default_rng(seed + VAL_RNG_OFFSET), V2_CROP, label="tta"):
        crop = judged.inputs.wide_crop
        if crop is None:
            continue
        scaled = [align_face(judged.pixels, judged.face.landmarks, V2_CROP.size, zoom=V2_CROP.zoom,
                             jitter=jitter_matrix(V2_CROP.size, (0.0, 0.0), scale, 0.0)) for scale in SCALES]
        crops.append(np.stack([v for c in (crop, *scaled) for v in (c, np.ascontiguousarray(c[:, ::-1]))]))
        cues.append(judged.inputs.cues)
        desc.append(np.array(embedder.embed(judged.pixels, judged.face.landmarks)))
        meta.append(np.array((judged.record.label, SOURCE_NAMES.index(judged.record.source), judged.index,
                              judged.condition)))
    stacked = np.stack(crops)  # (faces, views, H, W, 3)
    flat = _onnx_logits(weights / "model_v2.onnx", stacked.reshape(-1, *stacked.shape[2:]))[:, 0]
    arrays = {
        "cnn": flat.reshape(stacked.shape[0], stacked.shape[1]),
        "cue_logit": CueTrees.load(weights / "cue_trees.npz").logits(np.stack(cues)),
        "desc_logit": DescriptorModel.load(weights / "descriptor_lr.npz").logits(np.stack(desc)),
        "meta": np.stack(meta),
    }
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return arrays


def main() -> None:
    args = experiment_args(__doc__ or "")
    val = views(split_records(list_records(args.data), args.seed)["validation"], args.seed, args.weights)
    y, source, files = val["meta"][:, 0], val["meta"][:, 1], val["meta"][:, 2]
    cnn = val["cnn"]
    candidates = {
        "single crop (shipped 2.2.0)": (cnn[:, 0], 1),
        "crop + mirror": (cnn[:, :2].mean(axis=1), 2),
        "crop at 3 scales": (cnn[:, 0::2].mean(axis=1), 3),
        "crop + mirror at 3 scales": (cnn.mean(axis=1), 6),
    }
    say(f"# Test-time augmentation of the v2 CNN in the 2.2.0 stacker (seed {args.seed})\n")
    say(f"validation: {len(y)} judged faces of {len(np.unique(files))} files (staged + 1 degraded each)\n")
    table_header(["CNN view", "crops", "CNN alone AUROC", "stacked OOF AUROC", "OOF TPR@1%"], ["AUROC diff 95% CI"])
    base = out_of_fold(np.column_stack([cnn[:, 0], val["cue_logit"], val["desc_logit"]]), y, files)
    for name, (logit, n_crops) in candidates.items():
        stacked = out_of_fold(np.column_stack([logit, val["cue_logit"], val["desc_logit"]]), y, files)
        lo, hi, _ = bootstrap_diff(base, stacked, y, files, args.seed)
        say(f"| {name} | {n_crops} | {auroc(logit, y):.4f} | {auroc(stacked, y):.4f} | {tpr_at_fpr(stacked, y, 0.01):.4f} "
            f"| {pair_cells(stacked, y, source)} | [{lo:+.4f}, {hi:+.4f}] |")


if __name__ == "__main__":
    main()
