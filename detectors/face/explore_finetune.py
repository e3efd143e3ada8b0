"""Experiment: fine-tune the top of dlib's face network (stages 4-5) on the train faces, on CPU.

Run (about 15 minutes on the shared 2-core machine; arrays cached under ``/tmp/face_cache``)::

    nice -n 19 .venv/bin/python -m detectors.face.explore_finetune \
        --data ../shared/datasets/faces --weights weights/face > /tmp/explore_finetune.md

Why: 2.5.0's stage statistics are a linear probe of a frozen network (0.954 alone on validation). The CNNs trained
from scratch here are data-limited; fine-tuning the last stages of a network pretrained on millions of real faces is
the usual next step when a probe works, and those stages are small (stage 4: 3 blocks of 256 channels on a 4 x 4 map;
stage 5: 1 block on 2 x 2), so it fits a CPU.

What it measures (the test split is never read):

* Inputs: stage 3's output map (128 x 8 x 8) of each train face (as staged and twice degraded: ``judged_faces`` with
  rng offsets ``TRAIN_RNG_OFFSET`` and ``SECOND_OFFSET``) and of each validation face (``VAL_RNG_OFFSET``), from the
  shipped ONNX graph (``explore_stages_followups.stage_maps_session``).
* :func:`top_net`: stages 4-5 rebuilt in torch from dlib's weights (affines folded; dlib's zero-padded residual sums),
  checked against the shipped graph's descriptor through dlib's own final layer before any training; then a fresh
  linear head on the pooled 256 channels. AdamW (stages lr ``LR_BODY``, head ``LR_HEAD``, weight decay), seeded,
  the epoch kept by AUROC on a held-out 10% of the train files (never validation).
* On validation: the fine-tuned logit alone, and as a stacker input with 2.5.0's (``cnn_v2``, ``cues``, ``net_stages``;
  ``explore_stages_followups``' cache of the same faces), 5-fold grouped OOF, with a paired file bootstrap; the real vs
  real probe (CIPLAB vs FFHQ).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.face.data import SOURCE_NAMES, Record, judged_faces, list_records, split_records
from detectors.face.descriptor_model import TRAIN_RNG_OFFSET, DescriptorModel
from detectors.face.embedding import STAGES_DIM, NumpyFaceNet
from detectors.face.explore_descriptor import bootstrap_diff, cached_arrays, experiment_args, pair_cells, say, table_header
from detectors.face.explore_stages_followups import stage_maps_session, summaries
from detectors.face.finding import EMBEDDING_FILE, FaceEmbedder, dlib_model_path
from detectors.face.stacking import VAL_RNG_OFFSET, out_of_fold, training_finder
from detectors.metrics import auroc, tpr_at_fpr

SECOND_OFFSET = 11  # a second degraded copy of each train file
FIRST_TOP_CONV = 21  # stage 4's first convolution (stem 0, then 2 per block: stages 1-3 hold 3 + 4 + 3 blocks)
TOP_BLOCKS = ((3, True), (1, True))  # stage 4, stage 5: (blocks, first block strides)
EPOCHS = 15
LR_BODY, LR_HEAD, WEIGHT_DECAY = 1e-4, 1e-2, 1e-3
BATCH = 64


def stage3_maps(records: list[Record], seed: int, offsets: tuple[int, ...], weights: Path, name: str) -> dict[str, np.ndarray]:
    """Stage 3's output map of every judged face (each file as staged, once, and once more degraded per offset) and
    (label, source, file, condition, group)."""
    return cached_arrays(f"explore_finetune_{name}_seed{seed}_n{len(records)}.npz",
                         lambda: _stage3_maps(records, seed, offsets, weights, name))


def _stage3_maps(records: list[Record], seed: int, offsets: tuple[int, ...], weights: Path, name: str) -> dict[str, np.ndarray]:
    session, maps = stage_maps_session(NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE)))
    embedder = FaceEmbedder()
    group_ids = {g: i for i, g in enumerate(sorted({r.group for r in records}))}
    rows, meta = [], []
    for copy, offset in enumerate(offsets):
        for judged in judged_faces(records, np.random.default_rng(seed + offset), None, name, training_finder(weights)):
            if copy and judged.condition == 0:
                continue  # the staged file once
            chip = embedder.chip(judged.pixels, judged.face.landmarks)
            rows.append(session.run([maps[2]], {"chip": chip[None]})[0][0])
            meta.append((judged.record.label, SOURCE_NAMES.index(judged.record.source), judged.index,
                         judged.condition + copy, group_ids[judged.record.group]))
    return {"maps": np.stack(rows).astype(np.float32), "meta": np.array(meta, dtype=np.int64)}


def top_net(net: NumpyFaceNet) -> Any:
    """Stages 4-5 of ``net`` as a torch module: (N, 128, 8, 8) stage-3 maps -> ``features`` (N, 256) pooled."""
    import torch
    from torch import nn

    def conv(index: int) -> nn.Conv2d:
        layer, (gamma, beta) = net._convs[index], net._affines[index]
        channels, filters = layer.taps.shape[1:]
        module = nn.Conv2d(channels, filters, layer.size, layer.stride, layer.padding)
        kernel = layer.taps.reshape(layer.size, layer.size, channels, filters).transpose(3, 2, 0, 1)
        bias = module.bias
        if bias is None:  # pragma: no cover - Conv2d makes one by default
            raise RuntimeError("no bias")
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel * gamma[:, None, None, None])))
            bias.copy_(torch.from_numpy((layer.bias * gamma + beta).astype(np.float32)))
        return module

    def padded_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        shape = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

        def pad(t: torch.Tensor) -> torch.Tensor:
            c, h, w = t.shape[1:]
            return nn.functional.pad(t, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

        return pad(a) + pad(b)

    class Block(nn.Module):
        def __init__(self, index: int, strided: bool) -> None:
            super().__init__()
            self.first, self.second, self.strided = conv(index), conv(index + 1), strided

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            inner = self.second(torch.relu(self.first(x)))
            skip = nn.functional.avg_pool2d(x, 2, 2) if self.strided else x
            return torch.relu(padded_sum(inner, skip))

    class Top(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            blocks, index = [], FIRST_TOP_CONV
            for count, strided in TOP_BLOCKS:
                for block in range(count):
                    blocks.append(Block(index, strided and block == 0))
                    index += 2
            self.blocks = nn.Sequential(*blocks)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features: torch.Tensor = self.blocks(x).mean(dim=(2, 3))
            return features

    return Top()


def fine_tune(train: dict[str, np.ndarray], seed: int) -> tuple[Any, Any, list[dict[str, float]], float]:
    """The fine-tuned top and head, per-epoch held-out AUROC, and seconds; the epoch kept by held-out AUROC."""
    import copy

    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    net = NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE))
    top, head = top_net(net), nn.Linear(256, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    rng = np.random.default_rng(seed)
    groups = train["meta"][:, 4]
    held_groups = rng.permutation(np.unique(groups))[: len(np.unique(groups)) // 10]
    held = np.isin(groups, held_groups)
    x = torch.from_numpy(train["maps"])
    y = torch.from_numpy(train["meta"][:, 0].astype(np.float32))
    optimiser = torch.optim.AdamW([{"params": top.parameters(), "lr": LR_BODY},
                                   {"params": head.parameters(), "lr": LR_HEAD}], weight_decay=WEIGHT_DECAY)
    fit_index = np.nonzero(~held)[0]
    history, best, best_state, start = [], -1.0, None, time.monotonic()
    for epoch in range(EPOCHS):
        top.train()
        for batch in np.array_split(rng.permutation(fit_index), max(1, len(fit_index) // BATCH)):
            logits = head(nn.functional.dropout(top(x[batch]), 0.3, training=True))[:, 0]
            loss = nn.functional.binary_cross_entropy_with_logits(logits, y[batch])
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
        top.eval()
        with torch.no_grad():
            held_auroc = auroc(head(top(x[held]))[:, 0].numpy(), train["meta"][held, 0])
        history.append({"epoch": epoch, "held_out_auroc": held_auroc, "loss": float(loss.detach())})
        if held_auroc > best:
            best, best_state = held_auroc, copy.deepcopy((top.state_dict(), head.state_dict()))
    if best_state is not None:
        top.load_state_dict(best_state[0])
        head.load_state_dict(best_state[1])
    return top, head, history, time.monotonic() - start


def parity(val: dict[str, np.ndarray], val_summaries: dict[str, np.ndarray]) -> float:
    """Largest |difference| between the torch top with dlib's own final layer and the shipped graph's stage-5 means
    (the first 256 of ``stage_features``' last-stage means), on the first 16 validation faces, before training."""
    import torch

    net = NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE))
    with torch.no_grad():
        pooled = top_net(net)(torch.from_numpy(val["maps"][:16])).numpy()
    expected = val_summaries["stages"][:16, STAGES_DIM // 2 - 256:STAGES_DIM // 2]
    return float(np.abs(pooled - expected).max())


def main() -> None:
    import torch

    args = experiment_args(__doc__ or "")
    splits = split_records(list_records(args.data), args.seed)
    train = stage3_maps(splits["train"], args.seed, (TRAIN_RNG_OFFSET, SECOND_OFFSET), args.weights, "train")
    val = stage3_maps(splits["validation"], args.seed, (VAL_RNG_OFFSET,), args.weights, "validation")
    shipped = summaries(splits["validation"], args.seed, VAL_RNG_OFFSET, args.weights, "validation")
    if not np.array_equal(shipped["meta"][:, 2:4], val["meta"][:, 2:4]):
        raise RuntimeError("the two validation passes judged different faces")
    stages = DescriptorModel.load(args.weights / "stages_lr.npz", dim=STAGES_DIM).logits(shipped["stages"][:, :STAGES_DIM])
    base_columns = np.column_stack([shipped["cnn_v2"], shipped["cue_logit"], stages])
    y, source, files = (val["meta"][:, i] for i in range(3))
    base = out_of_fold(base_columns, y, files)
    say(f"# Fine-tuning stages 4-5 of dlib's face network on the train faces (seed {args.seed})\n")
    say(f"train: {len(train['meta'])} faces (staged + 2 degraded copies per file); validation: {len(y)} judged faces\n")
    say(f"Before training, the torch top's pooled stage-5 output vs the shipped graph's: max |difference| "
        f"{parity(val, shipped):.2e}\n")
    top, head, history, seconds = fine_tune(train, args.seed)
    kept = max(history, key=lambda h: h["held_out_auroc"])
    say(f"{EPOCHS} epochs in {seconds:.0f} s; held-out train AUROC per epoch: "
        + ", ".join(f"{h['held_out_auroc']:.4f}" for h in history) + f"; kept epoch {kept['epoch']}\n")
    top.eval()
    with torch.no_grad():
        logit = head(top(torch.from_numpy(val["maps"])))[:, 0].numpy().astype(np.float64)
    real = np.isin(source, [SOURCE_NAMES.index("ffhq"), SOURCE_NAMES.index("ciplab")])
    ciplab = (source[real] == SOURCE_NAMES.index("ciplab")).astype(np.int64)
    table_header(["stacker inputs", "OOF AUROC", "OOF TPR@1%"], ["AUROC diff 95% CI"])
    say(f"| cnn_v2, cues, net_stages (2.5.0) | {auroc(base, y):.4f} | {tpr_at_fpr(base, y, 0.01):.4f} | "
        f"{pair_cells(base, y, source)} | [+0.0000, +0.0000] |")
    for label, design in (("2.5.0's three + fine-tuned top", np.column_stack([base_columns, logit])),
                          ("cnn_v2, cues, fine-tuned top (in place of net_stages)",
                           np.column_stack([base_columns[:, :2], logit]))):
        stacked = out_of_fold(design, y, files)
        lo, hi, _ = bootstrap_diff(base, stacked, y, files, args.seed)
        say(f"| {label} | {auroc(stacked, y):.4f} | {tpr_at_fpr(stacked, y, 0.01):.4f} | {pair_cells(stacked, y, source)} "
            f"| [{lo:+.4f}, {hi:+.4f}] |")
    say(f"\nThe fine-tuned top alone: AUROC {auroc(logit, y):.4f} ({pair_cells(logit, y, source)}); CIPLAB vs FFHQ "
        f"{auroc(logit[real], ciplab):.3f}.")


if __name__ == "__main__":
    main()
