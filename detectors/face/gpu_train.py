"""One-off GPU training of the face CNN v2 (128 px context crop) from the carried crop set.

Caveats first: SELF-CONTAINED (numpy, OpenCV, torch, onnx/onnxruntime only; never imports bylinecheck,
whose ``detectors.face`` package needs dlib), so run it as a file: ``python3 detectors/face/gpu_train.py``.
Reads ``.devdata/face_gpu/`` (``detectors.face.gpu_data``: train + validation crops only, 152 px at zoom
0.6, JPEG q95). Both classes get the same augmentation (colour, scale 0.5-2x of the model's face size,
blur, JPEG q50-95, the q60 + half-size condition, reframing, crop jitter, flips). Stops on a wall-clock budget
(``--budget-s``, from process start; the cosine schedule is sized after 3 warm-up epochs so that it ends
inside the budget) and always exports. Validation crops are re-made here from the stored crops (an
approximation of the inference path; the exact path is re-run later on the CPU machine). GPU kernels
(cudnn benchmark) make runs close to, not bit-for-bit, reproducible.

Model: float32 NCHW RGB in [0, 255], 128 x 128 = ``align_face(pixels, landmarks, 128, zoom=0.7)``;
output (N, 2) logits: column 0 = AI vs real, column 1 = diffusion vs GAN (trained on AI faces only).
Outputs in ``--out``: face_cnn_v2.onnx, face_cnn_v2.pt (state_dict), train_log.json, val_logits.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as f

START = time.perf_counter()
logger = logging.getLogger("gpu_train")

EYE_GAP = 0.30  # detectors.face.alignment.EYE_GAP
MODEL_SIZE = 128
MODEL_ZOOM = 0.7
MODEL_EYE_GAP = EYE_GAP * MODEL_ZOOM * MODEL_SIZE
SCALE_RANGE = (0.5, 2.0)  # face eye gap before JPEG, in multiples of the model's
JPEG_RANGE = (50, 95)
P_CLEAN, P_Q60_HALF, P_BLUR, P_COLOUR, P_REFRAME = 0.15, 0.15, 0.3, 0.5, 0.4
REFRAME_MAX = 0.18  # per side, of the stored crop (the cheeks start about 0.25 in)
FAMILY_LOSS_WEIGHT = 0.3
WARMUP_EPOCHS = 3
REALS, FAKES = ("ffhq", "ciplab"), ("stylegan1", "sd21")
PAIRS = {
    "ffhq_vs_stylegan1": (("ffhq",), ("stylegan1",)),
    "ciplab_vs_sd21": (("ciplab",), ("sd21",)),
    "ffhq_vs_sd21": (("ffhq",), ("sd21",)),
    "ciplab_vs_stylegan1": (("ciplab",), ("stylegan1",)),
    "all": (REALS, FAKES),
}
CONDITIONS = ("clean", "degraded", "q60_half")
ONNX_NAME, STATE_NAME, LOG_NAME, LOGITS_NAME = "face_cnn_v2.onnx", "face_cnn_v2.pt", "train_log.json", "val_logits.csv"


# ---------------------------------------------------------------- data and augmentation (numpy + OpenCV)
def load_set(data_dir: Path, limit: int, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]], np.ndarray]:
    """(header, entries, crops (N, S, S, 3) RGB uint8); ``limit`` > 0 keeps that many per split."""
    index = json.loads((data_dir / "index.json").read_text(encoding="utf-8"))
    blob = (data_dir / "crops.bin").read_bytes()
    entries: list[dict[str, Any]] = index.pop("entries")
    if limit:
        rng = np.random.default_rng(seed)
        keep = [
            i
            for s in ("train", "validation")
            for i in sorted(rng.permutation([j for j, e in enumerate(entries) if e["split"] == s])[:limit])
        ]
        entries = [entries[i] for i in keep]
    crops = np.stack([decode(blob[e["offset"] : e["offset"] + e["length"]]) for e in entries])
    return index, entries, crops


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("undecodable crop")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode(rgb: np.ndarray, quality: int) -> bytes:
    """Baseline 4:2:0 JPEG bytes (OpenCV)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Baseline 4:2:0 JPEG round trip (as ``detectors.face.augment.jpeg_roundtrip``)."""
    return decode(encode(rgb, quality))


def jitter(rng: np.random.Generator) -> np.ndarray:
    """3 x 3 crop jitter about the model crop's centre: shift 4%, scale 0.93-1.07, rotation 6 degrees."""
    c = MODEL_SIZE / 2.0
    rot = np.asarray(cv2.getRotationMatrix2D((c, c), float(rng.uniform(-6, 6)), float(rng.uniform(0.93, 1.07))), np.float64)
    rot[:, 2] += rng.uniform(-0.04, 0.04, size=2) * MODEL_SIZE
    return np.vstack([rot, [0.0, 0.0, 1.0]])


def to_model(region: np.ndarray, store: dict[str, Any], jit: np.ndarray | None) -> np.ndarray:
    """Warp ``region`` (the stored crop resized by any factor) to the model crop, as ``align_face`` would."""
    factor = region.shape[0] / store["store_size"]
    k = (MODEL_ZOOM * MODEL_SIZE) / (store["store_zoom"] * store["store_size"])
    r2s = np.array([[1 / factor, 0, 0.5 / factor - 0.5], [0, 1 / factor, 0.5 / factor - 0.5], [0, 0, 1]])
    c_s, c_m = store["store_size"] / 2.0, MODEL_SIZE / 2.0
    s2m = np.array([[k, 0, c_m - k * c_s], [0, k, c_m - k * c_s], [0, 0, 1]])
    matrix = s2m @ r2s if jit is None else jit @ s2m @ r2s
    size = (MODEL_SIZE, MODEL_SIZE)
    return np.asarray(cv2.warpAffine(region, matrix[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))


def rescale(crop: np.ndarray, store: dict[str, Any], face_scale: float) -> np.ndarray:
    """The stored crop resized so that its eye gap is ``face_scale`` x the model's."""
    factor = face_scale * MODEL_EYE_GAP / store["store_eye_gap_px"]
    side = max(16, round(crop.shape[0] * factor))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(crop, (side, side), interpolation=interpolation))


def colour(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild brightness / contrast / saturation change (+-10%)."""
    x = rgb.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.9, 1.1)
    x = (x - x.mean()) * rng.uniform(0.9, 1.1) + x.mean() * rng.uniform(0.9, 1.1)
    return np.asarray(np.clip(x + 0.5, 0, 255), dtype=np.uint8)


def reframe(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tighter original frame: each side cut with probability 0.5 and edge-replicated, as alignment does
    outside the image, so that the amount of replicated border (which differs by source) is no class cue."""
    side = crop.shape[0]
    t, b, left, r = (int(rng.uniform(0, REFRAME_MAX) * side) if rng.random() < 0.5 else 0 for _ in range(4))
    inner = crop[t : side - b, left : side - r]
    return np.asarray(cv2.copyMakeBorder(inner, t, b, left, r, cv2.BORDER_REPLICATE))


def half_q60_scale(entry: dict[str, Any]) -> float:
    """Face scale (x model) of the source image at half size: the issue's robustness condition."""
    return float(np.clip(entry["source_eye_gap_px"] / 2 / MODEL_EYE_GAP, *SCALE_RANGE))


def augment_region(
    crop: np.ndarray, entry: dict[str, Any], store: dict[str, Any], rng: np.random.Generator
) -> tuple[np.ndarray, bytes | None]:
    """The re-encoded region of one training sample and its JPEG bytes (None: the stored crop is used as
    it is), before the crop jitter; the bytes feed the shortcut check (file size + JPEG tables)."""
    if rng.random() < P_REFRAME:
        crop = reframe(crop, rng)
    if rng.random() < P_COLOUR:
        crop = colour(crop, rng)
    mode = rng.random()
    if mode < P_CLEAN:
        return crop, None
    if mode < P_CLEAN + P_Q60_HALF:
        scale, quality = half_q60_scale(entry), 60
    else:
        scale = math.exp(rng.uniform(math.log(SCALE_RANGE[0]), math.log(SCALE_RANGE[1])))
        quality = int(rng.integers(JPEG_RANGE[0], JPEG_RANGE[1] + 1))
    region = rescale(crop, store, scale)
    if rng.random() < P_BLUR:
        region = cv2.GaussianBlur(region, (0, 0), rng.uniform(0.3, 0.8))
    data = encode(region, quality)
    return decode(data), data


def augment(crop: np.ndarray, entry: dict[str, Any], store: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """One training sample, the same recipe for both classes."""
    region, _ = augment_region(crop, entry, store, rng)
    out = to_model(region, store, jitter(rng))
    return out[:, ::-1] if rng.random() < 0.5 else out


def eval_view(
    crop: np.ndarray, entry: dict[str, Any], store: dict[str, Any], condition: str, rng: np.random.Generator
) -> np.ndarray:
    """Deterministic validation input: as stored, degraded (like ``degrade_image``), or q60 + half size."""
    if condition == "clean":
        return to_model(crop, store, None)
    if condition == "q60_half":
        return to_model(jpeg(rescale(crop, store, half_q60_scale(entry)), 60), store, None)
    source_scale = entry["source_eye_gap_px"] / MODEL_EYE_GAP * rng.uniform(0.5, 1.5)
    region = rescale(crop, store, float(np.clip(source_scale, *SCALE_RANGE)))
    if rng.random() < P_BLUR:
        region = cv2.GaussianBlur(region, (0, 0), rng.uniform(0.3, 0.8))
    return to_model(jpeg(region, int(rng.integers(JPEG_RANGE[0], JPEG_RANGE[1] + 1))), store, None)


class TrainSet(torch.utils.data.Dataset[tuple[torch.Tensor, int, int]]):
    """Item ``epoch * n + i``: crop i augmented with a generator seeded by (seed, epoch, i)."""

    def __init__(self, crops: np.ndarray, entries: list[dict[str, Any]], store: dict[str, Any], seed: int) -> None:
        self.crops, self.entries, self.store, self.seed = crops, entries, store, seed

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, key: int) -> tuple[torch.Tensor, int, int]:
        epoch, i = divmod(int(key), len(self.crops))
        rng = np.random.default_rng([self.seed, epoch, i])
        entry = self.entries[i]
        out = augment(self.crops[i], entry, self.store, rng)
        return torch.from_numpy(np.ascontiguousarray(out)), int(entry["label"]), int(entry["family"] == "diffusion")


class EpochSampler(torch.utils.data.Sampler[int]):
    """Seeded permutation per epoch, yielding ``epoch * n + i`` so items know their epoch."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng([self.seed, 7919, self.epoch]).permutation(self.n)
        return iter((self.epoch * self.n + order).tolist())


def loader_settings(workers: int, batch_bytes: int) -> tuple[int, int]:
    """(workers, prefetch factor) so that the batches in flight fit in half of /dev/shm (64 MiB in a
    default Docker container, where more would crash the workers with a bus error)."""
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return workers, 4
    room = int(0.5 * stat.f_bavail * stat.f_frsize // batch_bytes)
    chosen = (workers, max(1, min(4, room // max(1, workers)))) if room >= workers else (max(0, room), 1)
    logger.info("/dev/shm has room for %d batches: %d workers, prefetch %d", room, *chosen)
    return chosen


def worker_init(_: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


# ---------------------------------------------------------------- model
def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class BasicBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn_relu(c, c), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(x + self.body(x))
        return out


class FaceNetV2(nn.Module):
    """ResNet-like, full-resolution stem (keeps high frequencies), 16-32-64-128-192 channels, ~1.35 M
    parameters, ~0.27 G multiply-adds at 128 px. Input float NCHW RGB in [0, 255]; output (N, 2) logits."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128, 192), blocks: tuple[int, ...] = (0, 1, 1, 1)) -> None:
        super().__init__()
        layers = conv_bn_relu(3, widths[0])
        for c_in, c_out, n in zip(widths[:-1], widths[1:], blocks, strict=True):
            layers += conv_bn_relu(c_in, c_out, 2) + [BasicBlock(c_out) for _ in range(n)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(widths[-1], 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x / 255.0 - 0.5) / 0.25
        out: torch.Tensor = self.head(self.features(x).mean(dim=(2, 3)))
        return out


def channels_last(model: nn.Module) -> nn.Module:
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


class Ema:
    """Exponential moving average of all parameters and buffers (decay warms up over the first steps)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay, self.steps = decay, 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for k, v in model.state_dict().items():
            self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)

    def copy_into(self, model: nn.Module) -> nn.Module:
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in self.shadow.items()})
        return model


# ---------------------------------------------------------------- metrics and evaluation
def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Rank AUROC (ties averaged); None when a class is empty."""
    pos, neg = int(labels.sum()), int(len(labels) - labels.sum())
    if not pos or not neg:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float = 0.01) -> float | None:
    real, fake = np.sort(scores[labels == 0]), scores[labels == 1]
    if not len(real) or not len(fake):
        return None
    threshold = real[min(len(real) - 1, int(np.ceil((1 - fpr) * len(real))) - 1)]
    return float((fake > threshold).mean())


def pair_metrics(logits: np.ndarray, entries: list[dict[str, Any]]) -> dict[str, Any]:
    sources = np.array([e["source"] for e in entries])
    labels = np.array([e["label"] for e in entries])
    out: dict[str, Any] = {}
    for pair, (reals, fakes) in PAIRS.items():
        mask = np.isin(sources, reals + fakes)
        out[pair] = {"auroc": auroc(logits[mask], labels[mask]), "tpr_at_1pct_fpr": tpr_at_fpr(logits[mask], labels[mask])}
    return out


@torch.no_grad()
def predict(model: nn.Module, views: np.ndarray, device: torch.device, batch: int = 256) -> np.ndarray:
    model.eval()
    outs = []
    for i in range(0, len(views), batch):
        x = torch.from_numpy(views[i : i + batch]).to(device).permute(0, 3, 1, 2).float()
        outs.append(model(x.contiguous(memory_format=torch.channels_last)).float().cpu().numpy())
    return np.concatenate(outs)


def evaluate(
    model: nn.Module, val_views: dict[str, np.ndarray], val_entries: list[dict[str, Any]], device: torch.device
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    logits = {c: predict(model, v, device) for c, v in val_views.items()}
    metrics = {c: pair_metrics(z[:, 0], val_entries) for c, z in logits.items()}
    ai = np.array([e["label"] == 1 for e in val_entries])
    diffusion = np.array([e["family"] == "diffusion" for e in val_entries])
    family_acc = float(((logits["clean"][ai, 1] > 0) == diffusion[ai]).mean()) if ai.any() else None
    return {"val": metrics, "val_family_accuracy_clean": family_acc}, logits


# ---------------------------------------------------------------- training
def lr_at(step: int, steps_per_epoch: int, total_epochs: int, base_lr: float) -> float:
    """Linear warm-up over WARMUP_EPOCHS, then cosine to 1% of ``base_lr`` at ``total_epochs``."""
    warm = WARMUP_EPOCHS * steps_per_epoch
    if step < warm:
        return base_lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, (total_epochs - WARMUP_EPOCHS) * steps_per_epoch))
    return base_lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    cv2.setNumThreads(1)  # OpenCV thread pools do not survive the DataLoader fork (workers hang)
    device = torch.device(args.device)
    store, entries, crops = load_set(args.data, args.limit, args.seed)
    train_idx = [i for i, e in enumerate(entries) if e["split"] == "train" and e["source"] != args.exclude_source]
    val_idx = [i for i, e in enumerate(entries) if e["split"] == "validation"]
    val_entries = [entries[i] for i in val_idx]
    val_views = {
        c: np.stack([eval_view(crops[i], entries[i], store, c, np.random.default_rng([args.seed, 104729, i])) for i in val_idx])
        for c in CONDITIONS
    }
    dataset = TrainSet(crops[train_idx], [entries[i] for i in train_idx], store, args.seed)
    sampler = EpochSampler(len(dataset), args.seed)
    workers, prefetch = loader_settings(args.workers, args.batch * MODEL_SIZE * MODEL_SIZE * 3)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch,
        sampler=sampler,
        num_workers=workers,
        drop_last=len(dataset) >= args.batch,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        worker_init_fn=worker_init,
        prefetch_factor=prefetch if workers > 0 else None,
    )
    model = channels_last(FaceNetV2().to(device))
    ema = Ema(model, args.ema)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    torch.backends.cudnn.benchmark = True
    amp = device.type == "cuda"
    steps_per_epoch = len(loader)
    total_epochs, step = int(args.epochs), 0
    history: list[dict[str, Any]] = []
    log: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "store": store,
        "model_size": MODEL_SIZE,
        "model_zoom": MODEL_ZOOM,
        "n_train": len(dataset),
        "n_val": len(val_idx),
        "epochs": history,
    }
    eval_model = channels_last(FaceNetV2().to(device))
    epoch_times: list[float] = []
    for epoch in range(args.epochs):
        if epoch >= total_epochs:
            break
        if time.perf_counter() - START > args.budget_s:
            log["stopped_early"] = f"budget reached before epoch {epoch}"
            break
        t0, total, seen = time.perf_counter(), 0.0, 0
        sampler.epoch = epoch
        model.train()
        for x_u8, y, fam in loader:
            x = x_u8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
            y, fam = y.to(device).float(), fam.to(device).float()
            for group in optimiser.param_groups:
                group["lr"] = lr_at(step, steps_per_epoch, total_epochs, args.lr)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(x).float()
            target = y * (1 - args.label_smoothing) + 0.5 * args.label_smoothing
            loss = f.binary_cross_entropy_with_logits(out[:, 0], target)
            fam_loss = f.binary_cross_entropy_with_logits(out[:, 1], fam, reduction="none")
            loss = loss + FAMILY_LOSS_WEIGHT * (fam_loss * y).sum() / y.sum().clamp(min=1.0)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            ema.update(model)
            step += 1
            total += float(loss.detach()) * len(y)
            seen += len(y)
        epoch_times.append(time.perf_counter() - t0)
        if epoch + 1 == WARMUP_EPOCHS:
            total_epochs = plan_epochs(args, epoch_times, epoch + 1)
            log["planned_epochs"] = total_epochs
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": total / max(1, seen),
            "lr": lr_at(step - 1, steps_per_epoch, total_epochs, args.lr),
            "epoch_s": epoch_times[-1],
            "elapsed_s": time.perf_counter() - START,
        }
        last = epoch + 1 >= total_epochs or time.perf_counter() - START > args.budget_s
        if (epoch + 1) % args.eval_every == 0 or last:
            metrics, _ = evaluate(ema.copy_into(eval_model), val_views, val_entries, device)
            row.update(metrics)
            v = metrics["val"]
            logger.info(
                "epoch %d loss %.4f auroc clean: all %s ffhq-sg %s ciplab-sd %s | q60_half all %s ffhq-sg %s (%.0f s)",
                epoch + 1,
                row["loss"],
                _r(v["clean"]["all"]["auroc"]),
                _r(v["clean"]["ffhq_vs_stylegan1"]["auroc"]),
                _r(v["clean"]["ciplab_vs_sd21"]["auroc"]),
                _r(v["q60_half"]["all"]["auroc"]),
                _r(v["q60_half"]["ffhq_vs_stylegan1"]["auroc"]),
                row["elapsed_s"],
            )
            save_state(eval_model, args.out / STATE_NAME)
        history.append(row)
        (args.out / LOG_NAME).write_text(json.dumps(log, indent=1, default=str) + "\n", encoding="utf-8")
    log["epochs_run"], log["train_s"] = len(history), time.perf_counter() - START
    final = ema.copy_into(eval_model)
    metrics, logits = evaluate(final, val_views, val_entries, device)
    log["final"] = metrics
    save_state(final, args.out / STATE_NAME)
    write_logits(args.out / LOGITS_NAME, val_entries, logits)
    log["export"] = export(final, args.out / ONNX_NAME, val_views["clean"][:64])
    log["total_s"] = time.perf_counter() - START
    (args.out / LOG_NAME).write_text(json.dumps(log, indent=1, default=str) + "\n", encoding="utf-8")
    return log


def _r(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def plan_epochs(args: argparse.Namespace, epoch_times: list[float], done: int) -> int:
    """Epochs that fit the budget, from the warm-up epochs' speed (the first one pays worker start-up)."""
    per_epoch = float(np.median(epoch_times[1:] or epoch_times)) * (1 + 0.5 / args.eval_every)
    room = args.budget_s - (time.perf_counter() - START)
    fit = done + int(room / max(per_epoch, 1e-3))
    planned = max(done + 1, min(int(args.epochs), fit))
    logger.info("%.2f s per epoch: %d epochs planned (asked %d)", per_epoch, planned, args.epochs)
    return planned


def write_logits(path: Path, entries: list[dict[str, Any]], logits: dict[str, np.ndarray]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "source", "label", "family", "condition", "logit_ai", "logit_diffusion"])
        for condition, z in logits.items():
            for e, (ai, diff) in zip(entries, z, strict=True):
                writer.writerow([e["name"], e["source"], e["label"], e["family"], condition, f"{ai:.6f}", f"{diff:.6f}"])


def save_state(model: nn.Module, path: Path) -> None:
    """The (EMA) model's state_dict, written atomically (a killed run keeps the last complete file)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)


def onnx_export(model: nn.Module, path: Path) -> str:
    """TorchScript exporter (as ``detectors.face.cnn``), else the torch.export one; returns which."""
    kwargs: dict[str, Any] = {
        "input_names": ["crops"],
        "output_names": ["logits"],
        "dynamic_axes": {"crops": {0: "batch"}, "logits": {0: "batch"}},
        "opset_version": 17,
    }
    try:
        torch.onnx.export(model, (torch.zeros(1, 3, MODEL_SIZE, MODEL_SIZE),), str(path), dynamo=False, **kwargs)
        return "torchscript"
    except Exception:
        logger.exception("TorchScript ONNX export failed; trying dynamo=True")
        torch.onnx.export(model, (torch.zeros(1, 3, MODEL_SIZE, MODEL_SIZE),), str(path), dynamo=True, **kwargs)
        return "dynamo"


def export(model: nn.Module, path: Path, probe: np.ndarray) -> dict[str, Any]:
    """ONNX (opset 17, dynamic batch) on CPU in float32; parity and 1-thread latency with onnxruntime."""
    try:
        import onnxruntime as ort

        cpu = model.float().cpu().eval()
        cpu.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        exporter = onnx_export(cpu, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = np.ascontiguousarray(probe.transpose(0, 3, 1, 2), dtype=np.float32)
        with torch.no_grad():
            reference = cpu(torch.from_numpy(x)).numpy()
        diff = float(np.abs(session.run(None, {"crops": x})[0] - reference).max())
        times = []
        for i in range(60):
            t0 = time.perf_counter()
            session.run(None, {"crops": x[:1]})
            if i >= 10:
                times.append(time.perf_counter() - t0)
        result: dict[str, Any] = {
            "ok": True,
            "exporter": exporter,
            "onnx_bytes": path.stat().st_size,
            "max_abs_diff_torch_onnxruntime": diff,
            "cpu_ms_per_face_1_thread_median": 1e3 * float(np.median(times)),
        }
    except Exception as exc:  # the state_dict is already saved; export can be redone on the CPU machine
        logger.exception("ONNX export failed")
        result = {"ok": False, "error": repr(exc)}
    logger.info("export: %s", result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GPU training of the face CNN v2 (self-contained)")
    parser.add_argument("--data", type=Path, default=Path(".devdata/face_gpu"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=600, help="upper bound; the budget may plan fewer")
    parser.add_argument("--budget-s", type=float, default=280.0, help="training wall clock from process start")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--ema", type=float, default=0.998)
    parser.add_argument("--workers", type=int, default=min(15, (os.cpu_count() or 2) - 1))
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--limit", type=int, default=0, help="crops per split (0 = all; smoke tests)")
    parser.add_argument("--exclude-source", default=None,
                        help="leave this source's train crops out (the cross-generator study: train on one generator); "
                        "validation monitoring keeps every source")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    logger.info(
        "torch %s, device %s, %s",
        torch.__version__,
        args.device,
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA",
    )
    log = train(args)
    logger.info(
        "done in %.0f s: %d epochs; final %s", log["total_s"], log["epochs_run"], json.dumps(log["final"]["val"]["clean"])
    )
    return 0 if log["export"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
