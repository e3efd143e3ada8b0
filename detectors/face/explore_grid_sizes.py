"""Experiment: finer grids than 2.6.0's 2 x 2 for the statistics of dlib's face network's stage maps.

Run (a few minutes on the shared 2-core machine; arrays cached under ``/tmp/face_cache``)::

    nice -n 19 .venv/bin/python -m detectors.face.explore_grid_sizes \
        --data ../shared/datasets/faces --weights weights/face > /tmp/explore_grid_sizes.md

Each stage map is cut into k x k cells (rows and columns at ``i * side // k``; a map smaller than k is cut into as
many cells as it has rows), and each channel's mean and standard deviation per cell (two passes) is a feature. A
standardised logistic regression per grid is fitted on the train faces (``fit_descriptor_model``: C by grouped
5-fold AUROC on train) and compared on validation against 2.6.0's stacker (``cnn_v2``, ``cues``, ``net_grid`` with
the shipped ``grid_lr.npz``), 5-fold grouped out-of-fold, in place of ``net_grid`` and beside it. Faces are the
stacker's (train: as staged and once degraded, ``TRAIN_RNG_OFFSET``; validation: ``VAL_RNG_OFFSET``); the test
split is never read. Caveat: these validation faces also chose 2.5.0 and 2.6.0, so a gain here is partly selection.

``--wide``: instead, the 2 x 2 grid of a second, wider chip (``dlib.get_face_chip`` padding 0.8 instead of 0.25: hair,
ears and background, where StyleGAN v1 leaves blobs), one more network pass per face (~5 ms).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detectors.face.data import SOURCE_NAMES, Record, judged_faces, list_records, split_records
from detectors.face.descriptor_model import GRID_FILE, TRAIN_RNG_OFFSET, DescriptorModel, fit_descriptor_model
from detectors.face.embedding import CHIP_SIZE, GRID_DIM, STAGES_DIM, NumpyFaceNet, OnnxFaceNet
from detectors.face.explore_descriptor import bootstrap_diff, cached_arrays, pair_cells, say, table_header
from detectors.face.explore_stages_followups import WIDE_PADDING, stage_maps_session
from detectors.face.finding import EMBEDDING_FILE, FaceEmbedder, dlib_model_path
from detectors.face.pipeline import V2_CROP
from detectors.face.scoring import CueTrees
from detectors.face.stacking import VAL_RNG_OFFSET, _onnx_logits, out_of_fold, training_finder
from detectors.metrics import auroc, tpr_at_fpr

SIZES = (3, 4)


def grid_k(maps: list[np.ndarray], k: int) -> np.ndarray:
    """Per stage map (1, C, H, W): each channel's mean and standard deviation in each of k x k cells."""
    parts = []
    for stage in maps:
        x = stage[0].astype(np.float64)
        side = x.shape[1]
        cells = min(k, side)
        edges = [i * side // cells for i in range(cells + 1)]
        for r in range(cells):
            for c in range(cells):
                cell = x[:, edges[r] : edges[r + 1], edges[c] : edges[c + 1]]
                mean = cell.mean(axis=(1, 2))
                parts += [mean, np.sqrt(((cell - mean[:, None, None]) ** 2).mean(axis=(1, 2)))]
    return np.concatenate(parts).astype(np.float32)


def arrays(records: list[Record], seed: int, offset: int, weights: Path, name: str) -> dict[str, np.ndarray]:
    return cached_arrays(f"explore_grid_sizes_{name}_seed{seed}_n{len(records)}.npz",
                         lambda: _arrays(records, seed, offset, weights, name))


def _arrays(records: list[Record], seed: int, offset: int, weights: Path, name: str) -> dict[str, np.ndarray]:
    net = NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE))
    session, maps = stage_maps_session(net)
    plain = OnnxFaceNet.build(net)
    embedder = FaceEmbedder()
    group_ids = {g: i for i, g in enumerate(sorted({r.group for r in records}))}
    rows: dict[str, list[np.ndarray]] = {**{f"grid{k}": [] for k in SIZES}, "grid2": [], "crops": [], "cues": []}
    meta = []
    for judged in judged_faces(records, np.random.default_rng(seed + offset), V2_CROP, name, training_finder(weights)):
        if judged.inputs.wide_crop is None:
            continue
        chip = embedder.chip(judged.pixels, judged.face.landmarks)
        outputs = session.run(maps, {"chip": chip[None]})
        for k in SIZES:
            rows[f"grid{k}"].append(grid_k(outputs, k))
        rows["grid2"].append(plain.describe(chip)[1][STAGES_DIM:])
        rows["crops"].append(judged.inputs.wide_crop)
        rows["cues"].append(judged.inputs.cues)
        meta.append((judged.record.label, SOURCE_NAMES.index(judged.record.source), judged.index, judged.condition,
                     group_ids[judged.record.group]))
    out = {key: np.stack(value) for key, value in rows.items() if key not in ("crops", "cues")}
    out["cnn_v2"] = _onnx_logits(weights / "model_v2.onnx", np.stack(rows["crops"]))[:, 0]
    out["cue_logit"] = CueTrees.load(weights / "cue_trees.npz").logits(np.stack(rows["cues"]))
    out["meta"] = np.array(meta, dtype=np.int64)
    return out


def wide_arrays(records: list[Record], seed: int, offset: int, weights: Path, name: str) -> dict[str, np.ndarray]:
    return cached_arrays(f"explore_grid_sizes_wide_{name}_seed{seed}_n{len(records)}.npz",
                         lambda: _wide_arrays(records, seed, offset, weights, name))


def _wide_arrays(records: list[Record], seed: int, offset: int, weights: Path, name: str) -> dict[str, np.ndarray]:
    """The 2 x 2 grid statistics of the wider chip, per judged face in ``arrays``' order, with the same meta."""
    import dlib

    plain = OnnxFaceNet.build(NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE)))
    rows, meta = [], []
    for judged in judged_faces(records, np.random.default_rng(seed + offset), V2_CROP, name, training_finder(weights)):
        if judged.inputs.wide_crop is None:
            continue
        points = judged.face.landmarks.astype(np.float64)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        shape = dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
                                           [dlib.point(int(x), int(y)) for x, y in points])
        wide = np.asarray(dlib.get_face_chip(np.ascontiguousarray(judged.pixels), shape, CHIP_SIZE, WIDE_PADDING), np.uint8)
        rows.append(plain.describe(wide)[1][STAGES_DIM:])
        meta.append((judged.record.label, judged.index, judged.condition))
    return {"wide_grid": np.stack(rows), "meta": np.array(meta, dtype=np.int64)}


def main() -> None:
    import argparse
    import logging
    import sys

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/faces"))
    parser.add_argument("--weights", type=Path, default=Path("weights/face"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wide", action="store_true", help="the wider chip's 2 x 2 grid instead of finer grids")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    splits = split_records(list_records(args.data), args.seed)
    train = arrays(splits["train"], args.seed, TRAIN_RNG_OFFSET, args.weights, "train")
    val = arrays(splits["validation"], args.seed, VAL_RNG_OFFSET, args.weights, "validation")
    keys: tuple[str, ...] = tuple(f"grid{k}" for k in SIZES)
    if args.wide:
        for part, split, offset in ((train, "train", TRAIN_RNG_OFFSET), (val, "validation", VAL_RNG_OFFSET)):
            extra = wide_arrays(splits[split], args.seed, offset, args.weights, split)
            if not np.array_equal(extra["meta"], part["meta"][:, [0, 2, 3]]):
                raise RuntimeError("the wide chips' faces are not the same faces")
            part["wide_grid"] = extra["wide_grid"]
        keys = ("wide_grid",)
    grid2 = DescriptorModel.load(args.weights / GRID_FILE, dim=GRID_DIM).logits(val["grid2"])
    base_columns = np.column_stack([val["cnn_v2"], val["cue_logit"], grid2])
    y, source, files = (val["meta"][:, i] for i in range(3))
    labels, train_source, groups = train["meta"][:, 0], train["meta"][:, 1], train["meta"][:, 4]
    real = np.isin(source, [SOURCE_NAMES.index("ffhq"), SOURCE_NAMES.index("ciplab")])
    ciplab = (source[real] == SOURCE_NAMES.index("ciplab")).astype(np.int64)
    base = out_of_fold(base_columns, y, files)
    say(f"## {'The wider chip' if args.wide else 'Finer grids'} against 2.6.0's stacker (seed {args.seed})\n")
    say(f"train: {len(labels)} faces; validation: {len(y)} judged faces (each file as staged + 1 degraded)\n")
    table_header(["stacker inputs", "grid alone AUROC", "OOF AUROC", "OOF TPR@1%"],
                 ["AUROC diff 95% CI", "ciplab vs ffhq (alone)", "left-out generator AUROC (stylegan1 / sd21)"])
    say(f"| cnn_v2, cues, net_grid 2 x 2 (2.6.0) | {auroc(grid2, y):.4f} | {auroc(base, y):.4f} | "
        f"{tpr_at_fpr(base, y, 0.01):.4f} | {pair_cells(base, y, source)} | [+0.0000, +0.0000] | "
        f"{auroc(grid2[real], ciplab):.3f} | - |")
    for key in keys:
        title = "wide chip's 2 x 2 grid" if key == "wide_grid" else f"{key[4:]} x {key[4:]} grid"
        model, cv = fit_descriptor_model(train[key], labels, groups)
        logit = model.logits(val[key])
        left_out = []
        for gone in ("stylegan1", "sd21"):
            keep = train_source != SOURCE_NAMES.index(gone)
            partial, _ = fit_descriptor_model(train[key][keep], labels[keep], groups[keep])
            unseen = (y == 0) | (source == SOURCE_NAMES.index(gone))
            left_out.append(f"{auroc(partial.logits(val[key])[unseen], y[unseen]):.3f}")
        designs = {f"cnn_v2, cues, {title} ({train[key].shape[1]} values; in place of 2 x 2)":
                   np.column_stack([base_columns[:, :2], logit]),
                   f"2.6.0's three + {title}": np.column_stack([base_columns, logit])}
        for label, design in designs.items():
            stacked = out_of_fold(design, y, files)
            lo, hi, _ = bootstrap_diff(base, stacked, y, files, args.seed)
            say(f"| {label} | {auroc(logit, y):.4f} | {auroc(stacked, y):.4f} | {tpr_at_fpr(stacked, y, 0.01):.4f} | "
                f"{pair_cells(stacked, y, source)} | [{lo:+.4f}, {hi:+.4f}] | {auroc(logit[real], ciplab):.3f} | "
                f"{' / '.join(left_out)} |")
        say(f"\n{title}: C = {cv.get('chosen_c')} by grouped CV on train\n")


if __name__ == "__main__":
    main()
