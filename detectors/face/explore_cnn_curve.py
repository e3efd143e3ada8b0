"""Experiment: the learning curve of a CNN trained from scratch on the faces (1.0.0's CPU recipe, 96 px crops).

Run (about 25 minutes on the shared 2-core machine; needs 1.0.0's crop cache, which ``bylinecheck train faces --v1``
builds under ``/tmp/face_cache`` in about 6 minutes)::

    nice -n 19 .venv/bin/python -m detectors.face.explore_cnn_curve > detectors/face/explore_cnn_curve_results.md

Why: ``explore_learning_curve`` showed that the grid input, a linear model on a frozen pretrained network, flattens
near 0.96 on FFHQ vs StyleGAN v1 as training files are added. A model that learns its own features may keep climbing
where a frozen one stops; that decides whether more files of these sources (rather than more GPU time or other
pretrained weights) would close the pair's gap to 0.99. The shipped CNN is trained on a GPU, so the curve is drawn
with 1.0.0's CPU recipe (``cnn.train_cnn``: ~0.3 M parameters, 96 px crops, four augmented copies of each train file)
on an eighth, a quarter, half and all of the train files (per source, seeded), with the epochs scaled so that every run
takes the same number of optimiser steps (56, 28, 14 and 7 epochs), and once more on all files with four times the
steps (28 epochs), to tell data from training length apart. Scored on 1.0.0's validation crops (each file as staged
and once degraded); the test split is never read. Three seeds per point (the subset drawn, the CNN's initialisation
and its batch order): mean ± standard deviation.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from detectors.face.cnn import predict_torch, train_cnn
from detectors.face.data import cache_name
from detectors.face.explore_descriptor import CACHE_DIR, experiment_args, pair_mask, say
from detectors.face.explore_learning_curve import file_subset
from detectors.face.training import CNN_EPOCHS
from detectors.metrics import auroc, tpr_at_fpr

RUNS = ((0.125, 1), (0.25, 1), (0.5, 1), (1.0, 1), (1.0, 4))  # (share of train files, steps as a multiple of 1.0.0's)
SEEDS = (0, 1, 2)
FOCUS = ("ffhq", "stylegan1")


def main() -> None:
    args = experiment_args(__doc__ or "")
    logging.getLogger("detectors.face.cnn").setLevel(logging.WARNING)
    from detectors.face.stacking import training_finder

    path = CACHE_DIR / cache_name(args.seed, training_finder(args.weights))
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `bylinecheck train faces --v1 --out /tmp/face_v1` once to build it")
    with np.load(path) as d:
        arrays = {k: d[k] for k in d.files if k.startswith(("train_", "val_"))}
    records, source = arrays["train_record"], arrays["train_source"]
    y, val_source = arrays["val_labels"], arrays["val_source"]
    focus = pair_mask(val_source, FOCUS)
    say("# Learning curve of a CNN trained from scratch (1.0.0's CPU recipe; validation)\n")
    say(f"validation: {len(y)} crops; train: {len(records)} crops of {len(np.unique(records))} files; the same number "
        f"of optimiser steps in every run ({CNN_EPOCHS} epochs of all files)\n")
    say("| share of train files | train files (ffhq / stylegan1 / ciplab / sd21) | epochs | CNN AUROC | TPR@1%FPR | "
        "ffhq vs stylegan1 AUROC | ffhq vs stylegan1 TPR@1% | train s per run |")
    say("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for fraction, steps in RUNS:
        cells: list[list[float]] = [[], [], [], [], []]
        counts = ""
        epochs = int(round(CNN_EPOCHS * steps / fraction))
        for seed in SEEDS:
            rows, counts = file_subset(records, source, fraction, seed)
            start = time.perf_counter()
            model = train_cnn(arrays["train_crops"][rows], arrays["train_labels"][rows], arrays["train_family"][rows],
                              seed, epochs, budget_s=1e9)
            cells[4].append(time.perf_counter() - start)
            logit = predict_torch(model, arrays["val_crops"])[:, 0]
            for k, v in enumerate((auroc(logit, y), tpr_at_fpr(logit, y, 0.01), auroc(logit[focus], y[focus]),
                                   tpr_at_fpr(logit[focus], y[focus], 0.01))):
                cells[k].append(v)
        m = [f"{np.mean(c):.4f} ± {np.std(c):.4f}" for c in cells[:4]]
        say(f"| {fraction:g}{' (' + str(steps) + 'x steps)' if steps > 1 else ''} | {counts} | {epochs} | {m[0]} | {m[1]} | "
            f"{m[2]} | {m[3]} | {np.mean(cells[4]):.0f} |")

if __name__ == "__main__":
    main()
