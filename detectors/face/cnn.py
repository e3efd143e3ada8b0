"""The small face CNN (training only): definition, seeded training loop, ONNX export.

Caveats first: imports torch inside functions (the ``train`` extra); nothing here runs at inference,
which uses the exported ONNX file. Input: float32 NCHW RGB in [0, 255]; output: (N, 2) logits,
column 0 = AI (vs real), column 1 = diffusion (vs GAN; trained on AI faces only).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CHANNELS = (32, 64, 128)
STEM = 16
FAMILY_LOSS_WEIGHT = 0.3


def build_model() -> Any:
    """A 7-conv network (about 0.29 M parameters, 25 M multiply-adds) for 96 x 96 crops."""
    import torch
    from torch import nn

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [
            nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]

    class FaceNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = [nn.Conv2d(3, STEM, 3, stride=2, padding=1, bias=False)]
            layers += [nn.BatchNorm2d(STEM), nn.ReLU(inplace=True)]
            c_in = STEM
            for c_out in CHANNELS:
                layers += block(c_in, c_out)
                c_in = c_out
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(c_in, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = (x / 255.0 - 0.5) / 0.25
            out: torch.Tensor = self.head(self.features(x).mean(dim=(2, 3)))
            return out

    return FaceNet()


def to_nchw(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 255], the ONNX input."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)


def train_cnn(
    crops: np.ndarray, labels: np.ndarray, family: np.ndarray, seed: int, epochs: int = 7, budget_s: float = 1200
) -> Any:
    """Train from scratch (AdamW, one-cycle schedule after a constant-rate first epoch, flips).

    The epoch count is fixed so that a seed reproduces the weights on any machine; ``budget_s`` only
    produces a warning when the first epoch projects past it (a busy machine).
    """
    import torch
    from torch.nn import functional as f

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model()
    x_all = torch.from_numpy(to_nchw(crops))
    y_all = torch.from_numpy(labels.astype(np.float32))
    fam_all = torch.from_numpy(family.astype(np.float32))
    batch = 64
    steps_per_epoch = int(np.ceil(len(crops) / batch))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    scheduler: Any = None
    start = time.perf_counter()
    epoch = 0
    while epoch < epochs:
        model.train()
        order = torch.from_numpy(rng.permutation(len(crops)))
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * batch : (step + 1) * batch]
            x, y, fam = x_all[idx], y_all[idx], fam_all[idx]
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            out = model(x)
            loss = f.binary_cross_entropy_with_logits(out[:, 0], y)
            fam_loss = f.binary_cross_entropy_with_logits(out[:, 1], fam, reduction="none")
            loss = loss + FAMILY_LOSS_WEIGHT * (fam_loss * y).sum() / y.sum().clamp(min=1.0)
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach()) * len(idx)
        epoch += 1
        elapsed = time.perf_counter() - start
        if epoch == 1:
            if elapsed * epochs > budget_s:
                logger.warning("first epoch took %.0f s: %d epochs will exceed the %.0f s budget", elapsed, epochs, budget_s)
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimiser, max_lr=3e-3, total_steps=(epochs - 1) * steps_per_epoch, pct_start=0.25
            )
            logger.info("first epoch %.1f s; training %d epochs", elapsed, epochs)
        logger.info("epoch %d/%d loss %.4f (%.0f s)", epoch, epochs, total / len(crops), elapsed)
    model.eval()
    return model


def predict_torch(model: Any, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, 2) logits from a torch model."""
    import torch

    outs = []
    with torch.no_grad():
        for start in range(0, len(crops), batch):
            outs.append(model(torch.from_numpy(to_nchw(crops[start : start + batch]))).numpy())
    return np.concatenate(outs)


def export_onnx(model: Any, path: Path, crop_size: int, probe: np.ndarray) -> float:
    """Export to ONNX (opset 17, dynamic batch); returns max |torch - onnxruntime| on ``probe`` crops."""
    import onnxruntime as ort
    import torch

    model.eval()
    dummy = torch.zeros(1, 3, crop_size, crop_size)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["crops"],
        output_names=["logits"],
        dynamic_axes={"crops": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"crops": to_nchw(probe)})[0]
    return float(np.abs(onnx_out - predict_torch(model, probe)).max())
