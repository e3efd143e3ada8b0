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
from typing import Any

import numpy as np

from detectors.face.data import Record, list_records, split_records
from detectors.face.descriptor_model import GRID_FILE, TRAIN_RNG_OFFSET, DescriptorModel
from detectors.face.embedding import GRID_DIM, STAGES_DIM, OnnxFaceNet
from detectors.face.explore_descriptor import cached_arrays, experiment_args, say
from detectors.face.explore_stages_followups import compare_summary, network_arrays, start_comparison, wide_chip
from detectors.face.stacking import VAL_RNG_OFFSET

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
    def summarise(judged: Any, chip: np.ndarray, maps: list[np.ndarray], plain: OnnxFaceNet) -> dict[str, np.ndarray]:
        return {**{f"grid{k}": grid_k(maps, k) for k in SIZES}, "grid2": plain.describe(chip)[1][STAGES_DIM:]}

    return network_arrays(records, seed, offset, weights, name, summarise)


def wide_arrays(records: list[Record], seed: int, offset: int, weights: Path, name: str) -> dict[str, np.ndarray]:
    """The 2 x 2 grid statistics of the wider chip, per judged face (the same faces and meta as ``arrays``)."""
    def summarise(judged: Any, chip: np.ndarray, maps: list[np.ndarray], plain: OnnxFaceNet) -> dict[str, np.ndarray]:
        return {"wide_grid": plain.describe(wide_chip(judged))[1][STAGES_DIM:]}

    return cached_arrays(f"explore_grid_sizes_widechip_{name}_seed{seed}_n{len(records)}.npz",
                         lambda: network_arrays(records, seed, offset, weights, name, summarise))


def main() -> None:
    args = experiment_args(__doc__ or "", lambda parser: parser.add_argument(
        "--wide", action="store_true", help="the wider chip's 2 x 2 grid instead of finer grids"))
    splits = split_records(list_records(args.data), args.seed)
    train = arrays(splits["train"], args.seed, TRAIN_RNG_OFFSET, args.weights, "train")
    val = arrays(splits["validation"], args.seed, VAL_RNG_OFFSET, args.weights, "validation")
    keys: tuple[str, ...] = tuple(f"grid{k}" for k in SIZES)
    if args.wide:
        for part, split, offset in ((train, "train", TRAIN_RNG_OFFSET), (val, "validation", VAL_RNG_OFFSET)):
            extra = wide_arrays(splits[split], args.seed, offset, args.weights, split)
            if not np.array_equal(extra["meta"], part["meta"]):
                raise RuntimeError("the wide chips' faces are not the same faces")
            part["wide_grid"] = extra["wide_grid"]
        keys = ("wide_grid",)
    grid2 = DescriptorModel.load(args.weights / GRID_FILE, dim=GRID_DIM).logits(val["grid2"])
    comparison = start_comparison(train, val, grid2, args.seed,
                                  f"{'The wider chip' if args.wide else 'Finer grids'} against 2.6.0's stacker",
                                  "grid alone AUROC", "cnn_v2, cues, net_grid 2 x 2 (2.6.0)")
    for key in keys:
        title = "wide chip's 2 x 2 grid" if key == "wide_grid" else f"{key[4:]} x {key[4:]} grid"
        cv = compare_summary(comparison, key, [
            (f"cnn_v2, cues, {title} ({train[key].shape[1]} values; in place of 2 x 2)", True),
            (f"2.6.0's three + {title}", False)])
        say(f"\n{title}: C = {cv.get('chosen_c')} by grouped CV on train\n")


if __name__ == "__main__":
    main()
