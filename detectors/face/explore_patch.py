"""Experiment: does a CPU-trained patch CNN at the face's full resolution lift the 2.4.0 face stacker?

Run (about 20 minutes on the shared 2-core machine; arrays cached under ``/tmp/face_cache``)::

    git worktree add /tmp/v240 ded694c   # 2.4.0's weights (its descriptor_lr.npz is gone from 2.5.0)
    nice -n 19 .venv/bin/python -m detectors.face.explore_patch \
        --data ../shared/datasets/faces --weights /tmp/v240/weights/face > /tmp/explore_patch.md

``detectors/face/explore_patch_results.md`` is that output (seed 0) with a conclusion added.

Why: the v2 CNN sees the face at 128 px with 4.8 eye gaps of context, about half the resolution of an FFHQ or
StyleGAN v1 file (256 px), so whatever texture the generator leaves at its own pixel scale is averaged away before
the CNN sees it. Patch classifiers with a small receptive field are the usual answer (they find GAN upsampling
traces in local texture), and they are cheap enough to train here without a GPU.

What it measures (the test split is never read):

* Train crops: each train file as staged and twice degraded (``degrade_image``: resize 0.5-1.5x, blur, JPEG 50-95,
  the same draw for both labels), faces found by the shipped finder (``stacking.training_finder``), aligned at
  :data:`PATCH_CROP` (256 px at v2's zoom, so an FFHQ-sized face is at about its own resolution).
* A small fully convolutional CNN (:class:`PatchNet`: seven 3x3 conv layers, three stride-2 steps, no down-sampling
  before the first convolution, global mean pooling; ~0.2 M parameters) trained from scratch on random
  :data:`PATCH` px patches with flips, each source given the same total weight (AdamW, one-cycle lr, seed).
  Variants (:data:`VARIANTS`): every source with patches from the central 192 px (the face, not the replicated
  border the framing risk of the model card is about), scored on the central 160 px; and FFHQ + StyleGAN v1 only
  (the weakest pair; their framing is identical, so the whole crop is fair), scored on the whole crop.
* Validation faces exactly as ``explore_tta`` makes them (each file as staged and once degraded, the stacker's rng
  offset) with the shipped ``model_v2.onnx``, ``cue_trees.npz`` and ``descriptor_lr.npz`` logits; the patch logit as
  a fourth stacker input: 5-fold grouped OOF AUROC / TPR@1%FPR overall, per pair and per condition, and a paired
  file bootstrap of the AUROC difference.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.face.alignment import align_face
from detectors.face.augment import degrade_image
from detectors.face.data import SOURCE_NAMES, Record, judged_faces, list_records, read_rgb, split_records
from detectors.face.descriptor_model import DescriptorModel
from detectors.face.explore_descriptor import (
    CACHE_DIR,
    bootstrap_diff,
    cached_arrays,
    experiment_args,
    pair_cells,
    say,
    table_header,
)
from detectors.face.finding import FaceEmbedder
from detectors.face.pipeline import V2_CROP, CropSpec, find_and_prepare
from detectors.face.scoring import CueTrees
from detectors.face.stacking import VAL_RNG_OFFSET, _onnx_logits, out_of_fold, training_finder
from detectors.metrics import auroc, tpr_at_fpr

logger = logging.getLogger(__name__)

PATCH_CROP = CropSpec(size=256, zoom=V2_CROP.zoom)
PATCH = 96  # training patch side (px)
BATCH = 64
DEGRADED_COPIES = 2
TRAIN_RNG_OFFSET = 1234


@dataclass(frozen=True)
class Variant:
    """One patch CNN: which sources it is trained on, where its patches come from, what it scores."""

    sources: tuple[str, ...]
    region: int  # patches are drawn inside the central region x region px of the crop
    score_side: int  # validation faces are scored on the central score_side x score_side px
    epochs: int


VARIANTS = {
    "all sources, central 192 px": Variant(tuple(SOURCE_NAMES), 192, 160, 12),
    "ffhq + stylegan1 only, whole crop": Variant(("ffhq", "stylegan1"), 256, 256, 24),
}


def train_crops(records: list[Record], seed: int, weights: Path) -> dict[str, np.ndarray]:
    """256 px crops of every judged train face (as staged and ``DEGRADED_COPIES`` times degraded) and (label, source,
    file, condition) per crop."""
    return cached_arrays(f"explore_patch_train_seed{seed}_n{len(records)}.npz", lambda: _train_crops(records, seed, weights))


def _train_crops(records: list[Record], seed: int, weights: Path) -> dict[str, np.ndarray]:
    finder = training_finder(weights)
    rng = np.random.default_rng(seed + TRAIN_RNG_OFFSET)
    crops, meta = [], []
    for index, record in enumerate(records):
        staged = read_rgb(record.path)
        copies = [staged] + [degrade_image(staged, rng) for _ in range(DEGRADED_COPIES)]
        for condition, pixels in enumerate(copies):
            _, inputs = find_and_prepare(finder, pixels, 0.0, wide=PATCH_CROP)
            if inputs is not None and inputs.wide_crop is not None:
                crops.append(inputs.wide_crop)
                meta.append((record.label, SOURCE_NAMES.index(record.source), index, condition))
        if index % 200 == 0:
            logger.info("train crops %d / %d", index, len(records))
    return {"crops": np.stack(crops), "meta": np.array(meta, dtype=np.int64)}


def validation_faces(records: list[Record], seed: int, weights: Path) -> dict[str, np.ndarray]:
    """Per judged validation face: the 256 px crop, the shipped stacker's three input logits and metadata."""
    return cached_arrays(f"explore_patch_validation_seed{seed}_n{len(records)}.npz",
                         lambda: _validation_faces(records, seed, weights))


def _validation_faces(records: list[Record], seed: int, weights: Path) -> dict[str, np.ndarray]:
    embedder = FaceEmbedder()
    wide, patch, cues, desc, meta = [], [], [], [], []
    for judged in judged_faces(records, np.random.default_rng(seed + VAL_RNG_OFFSET), V2_CROP, "validation",
                               training_finder(weights)):
        if judged.inputs.wide_crop is None:
            continue
        wide.append(judged.inputs.wide_crop)
        patch.append(align_face(judged.pixels, judged.face.landmarks, PATCH_CROP.size, zoom=PATCH_CROP.zoom))
        cues.append(judged.inputs.cues)
        desc.append(np.array(embedder.embed(judged.pixels, judged.face.landmarks)))
        meta.append((judged.record.label, SOURCE_NAMES.index(judged.record.source), judged.index, judged.condition))
    return {
        "crops": np.stack(patch),
        "cnn_v2": _onnx_logits(weights / "model_v2.onnx", np.stack(wide))[:, 0],
        "cues": CueTrees.load(weights / "cue_trees.npz").logits(np.stack(cues)),
        "descriptor": DescriptorModel.load(weights / "descriptor_lr.npz").logits(np.stack(desc)),
        "meta": np.array(meta, dtype=np.int64),
    }


def patch_net() -> Any:
    """The patch CNN (torch): input (N, 3, H, W) uint8-range floats, output (N,) logits (AI > 0)."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class PatchNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(block(3, 16, 1), block(16, 24, 2), block(24, 32, 1), block(32, 48, 2),
                                      block(48, 64, 1), block(64, 64, 2), block(64, 96, 1))
            self.head = nn.Linear(96, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features = self.body((x - 127.5) / 64.0)
            logits: torch.Tensor = self.head(features.mean(dim=(2, 3)))[:, 0]
            return logits

    return PatchNet()


def train_variant(train: dict[str, np.ndarray], variant: Variant, seed: int) -> tuple[Any, list[float], float]:
    """Fit the patch CNN of ``variant`` on the train crops; returns (model, loss per epoch, seconds)."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    keep = np.isin(train["meta"][:, 1], [SOURCE_NAMES.index(s) for s in variant.sources])
    crops, labels, source = train["crops"][keep], train["meta"][keep, 0].astype(np.float32), train["meta"][keep, 1]
    weight = np.empty(len(labels), dtype=np.float32)
    for s in np.unique(source):  # each source the same total weight
        weight[source == s] = len(labels) / (len(np.unique(source)) * np.sum(source == s))
    net = patch_net()
    steps_per_epoch = len(labels) // BATCH
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=variant.epochs * steps_per_epoch,
                                                   pct_start=0.15)
    rng = np.random.default_rng(seed)
    low = (crops.shape[1] - variant.region) // 2
    losses, start = [], time.monotonic()
    for epoch in range(variant.epochs):
        net.train()
        order, total = rng.permutation(len(labels)), 0.0
        for step in range(steps_per_epoch):
            idx = order[step * BATCH:(step + 1) * BATCH]
            batch = np.empty((len(idx), PATCH, PATCH, 3), dtype=np.uint8)
            for k, i in enumerate(idx):
                top, left = rng.integers(low, low + variant.region - PATCH + 1, size=2)
                patch = crops[i, top:top + PATCH, left:left + PATCH]
                batch[k] = patch[:, ::-1] if rng.random() < 0.5 else patch
            logits = net(torch.from_numpy(batch).permute(0, 3, 1, 2).float())
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(
                logits, torch.from_numpy(labels[idx]), reduction="none") * torch.from_numpy(weight[idx])).mean()
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        losses.append(total / steps_per_epoch)
        logger.info("epoch %d loss %.4f (%.0f s)", epoch, losses[-1], time.monotonic() - start)
    return net, losses, time.monotonic() - start


def patch_logits(net: Any, crops: np.ndarray, side: int) -> np.ndarray:
    """The patch CNN's logit for each crop's central ``side`` px (global mean over the whole window)."""
    import torch

    net.eval()
    low = (crops.shape[1] - side) // 2
    parts = []
    with torch.no_grad():
        for start in range(0, len(crops), BATCH):
            window = np.ascontiguousarray(crops[start:start + BATCH, low:low + side, low:low + side])
            parts.append(net(torch.from_numpy(window).permute(0, 3, 1, 2).float()).numpy())
    return np.concatenate(parts).astype(np.float64)


def main() -> None:
    args = experiment_args(__doc__ or "")
    splits = split_records(list_records(args.data), args.seed)
    train = train_crops(splits["train"], args.seed, args.weights)
    val = validation_faces(splits["validation"], args.seed, args.weights)
    y, source, files, condition = (val["meta"][:, i] for i in range(4))
    base_x = np.column_stack([val["cnn_v2"], val["cues"], val["descriptor"]])
    base = out_of_fold(base_x, y, files)
    say(f"# A CPU-trained patch CNN as a fourth input of the 2.4.0 face stacker (seed {args.seed})\n")
    say(f"train: {len(train['meta'])} crops of {len(np.unique(train['meta'][:, 2]))} files (staged + "
        f"{DEGRADED_COPIES} degraded each); validation: {len(y)} judged faces of {len(np.unique(files))} files "
        "(staged + 1 degraded each)\n")
    table_header(["stacker inputs", "train s", "final train loss", "patch CNN alone AUROC", "OOF AUROC", "OOF TPR@1%"],
                 ["staged / degraded OOF AUROC", "AUROC diff 95% CI", "ciplab vs ffhq (real vs real) AUROC"])
    say(f"| cnn_v2, cues, descriptor (shipped 2.4.0) | - | - | - | {auroc(base, y):.4f} | {tpr_at_fpr(base, y, 0.01):.4f} "
        f"| {pair_cells(base, y, source)} | {_by_condition(base, y, condition)} | [+0.0000, +0.0000] "
        f"| {_real_vs_real(base, source)} |")
    for name, variant in VARIANTS.items():
        net, losses, seconds = train_variant(train, variant, args.seed)
        logit = patch_logits(net, val["crops"], variant.score_side)
        stacked = out_of_fold(np.column_stack([base_x, logit]), y, files)
        lo, hi, _ = bootstrap_diff(base, stacked, y, files, args.seed)
        say(f"| + patch CNN: {name} ({variant.epochs} epochs) | {seconds:.0f} | {losses[-1]:.3f} | "
            f"{auroc(logit, y):.4f} ({pair_cells(logit, y, source).replace(' | ', '; ')}) | {auroc(stacked, y):.4f} | "
            f"{tpr_at_fpr(stacked, y, 0.01):.4f} | {pair_cells(stacked, y, source)} | "
            f"{_by_condition(stacked, y, condition)} | [{lo:+.4f}, {hi:+.4f}] | "
            f"{_real_vs_real(logit, source)} alone, {_real_vs_real(stacked, source)} stacked |")
        np.save(CACHE_DIR / f"explore_patch_logits_{variant.region}_{variant.score_side}_seed{args.seed}.npy", logit)


def _real_vs_real(scores: np.ndarray, source: np.ndarray) -> str:
    """AUROC of ``scores`` for CIPLAB against FFHQ real photos: far from 0.5 means the input reads the source's
    format (size, compression, framing) as well as synthesis (the model card's shortcut probe for texture inputs)."""
    real = np.isin(source, [SOURCE_NAMES.index("ffhq"), SOURCE_NAMES.index("ciplab")])
    return f"{auroc(scores[real], (source[real] == SOURCE_NAMES.index('ciplab')).astype(np.int64)):.3f}"


def _by_condition(scores: np.ndarray, y: np.ndarray, condition: np.ndarray) -> str:
    return " / ".join(f"{auroc(scores[condition == c], y[condition == c]):.4f}" for c in (0, 1))


if __name__ == "__main__":
    main()
