"""Experiment: richer summaries of dlib's face network than 2.5.0's stage statistics (follow-ups to ``explore_stages``).

Run (about 10 minutes on the shared 2-core machine; arrays cached under ``/tmp/face_cache``)::

    nice -n 19 .venv/bin/python -m detectors.face.explore_stages_followups \
        --data ../shared/datasets/faces --weights weights/face > /tmp/explore_stages_followups.md

Its output (seed 0) is appended, with a conclusion, to ``detectors/face/explore_stages_results.md``.

Three summaries, each a standardised logistic regression fitted on the train faces (``fit_descriptor_model``: C by
grouped 5-fold AUROC on train), compared on validation against 2.5.0's stacker (``cnn_v2``, ``cues``, ``net_stages``
with the shipped ``stages_lr.npz``), 5-fold grouped OOF, added as a fourth input and in place of ``net_stages``:

* ``grid``: each stage map's mean and standard deviation in each cell of a 2 x 2 grid (where on the face the texture
  is), 4 x 2 x 736 = 5,888 values;
* ``gram``: the channel covariance (Gram) matrices of stages 1-3 (texture statistics in the style-transfer sense),
  upper triangles, signed square roots, 10,864 values;
* ``wide``: the stage statistics of a second, wider chip (dlib's ``get_face_chip`` padding 0.8 instead of 0.25: hair
  and background, where StyleGAN v1's artefacts are), one more network pass (~7 ms).

Faces are the stacker's (train: as staged and once degraded, ``TRAIN_RNG_OFFSET``; validation: ``VAL_RNG_OFFSET``);
the test split is never read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.face.data import SOURCE_NAMES, Record, judged_faces, list_records, split_records
from detectors.face.descriptor_model import TRAIN_RNG_OFFSET, DescriptorModel, fit_descriptor_model
from detectors.face.embedding import CHIP_SIZE, STAGES_DIM, NumpyFaceNet, OnnxFaceNet, onnx_model
from detectors.face.explore_descriptor import bootstrap_diff, cached_arrays, experiment_args, pair_cells, say, table_header
from detectors.face.finding import EMBEDDING_FILE, FaceEmbedder, dlib_model_path
from detectors.face.pipeline import V2_CROP
from detectors.face.scoring import CueTrees
from detectors.face.stacking import VAL_RNG_OFFSET, _onnx_logits, out_of_fold, training_finder
from detectors.metrics import auroc, tpr_at_fpr

WIDE_PADDING = 0.8


def stage_maps_session(net: NumpyFaceNet) -> tuple[Any, list[str]]:
    """An ONNX Runtime session of the shipped graph that also returns each residual stage's output map."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx_model(net._convs, net._affines, net._fc, stage_statistics=True)
    producer = {output: node for node in model.graph.node for output in node.output}
    concat = next(node for node in model.graph.node if node.output[0] == "stage_mean")
    maps = [producer[producer[pooled].input[0]].input[0] for pooled in concat.input]  # Reshape(GlobalAveragePool(map))
    for name in maps:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session, maps


def grid_features(maps: list[np.ndarray]) -> np.ndarray:
    """Mean and standard deviation of every channel in each cell of a 2 x 2 grid, for each (1, C, H, W) map."""
    parts = []
    for stage in maps:
        x = stage[0]
        h, w = x.shape[1:]
        for rows in (slice(0, h // 2), slice(h // 2, h)):
            for cols in (slice(0, w // 2), slice(w // 2, w)):
                cell = x[:, rows, cols]
                parts += [cell.mean(axis=(1, 2)), cell.std(axis=(1, 2))]
    return np.concatenate(parts).astype(np.float32)


def gram_features(maps: list[np.ndarray]) -> np.ndarray:
    """Upper triangles of the channel covariance of stages 1-3, signed square roots."""
    parts = []
    for stage in maps[:3]:
        x = stage[0].reshape(stage.shape[1], -1)
        x = x - x.mean(axis=1, keepdims=True)
        gram = (x @ x.T) / x.shape[1]
        parts.append(gram[np.triu_indices(gram.shape[0])])
    flat = np.concatenate(parts)
    return np.asarray(np.sign(flat) * np.sqrt(np.abs(flat)), dtype=np.float32)


def summaries(records: list[Record], seed: int, offset: int, weights: Path, name: str) -> dict[str, np.ndarray]:
    """Per judged face: the three summaries, the stage statistics, 2.5.0's v2 CNN and cue logits, and (label, source,
    file, condition, group)."""
    return cached_arrays(f"explore_stages_followups_{name}_seed{seed}_n{len(records)}.npz",
                         lambda: _summaries(records, seed, offset, weights, name))


Summarise = Callable[[Any, np.ndarray, list[np.ndarray], OnnxFaceNet], dict[str, np.ndarray]]


def wide_chip(judged: Any) -> np.ndarray:
    """dlib's face chip of a judged face at ``WIDE_PADDING`` (hair, ears and background) instead of the shipped 0.25."""
    import dlib

    points = judged.face.landmarks.astype(np.float64)
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    shape = dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
                                       [dlib.point(int(x), int(y)) for x, y in points])
    return np.asarray(dlib.get_face_chip(np.ascontiguousarray(judged.pixels), shape, CHIP_SIZE, WIDE_PADDING), np.uint8)


def network_arrays(records: list[Record], seed: int, offset: int, weights: Path, name: str,
                   summarise: Summarise) -> dict[str, np.ndarray]:
    """Per judged face (the stacker's faces, found by the shipped finder): the arrays ``summarise(judged, chip, stage
    maps, net)`` returns, the shipped v2 CNN and cue logits, and ``meta`` (label, source, file, condition, group)."""
    net = NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE))
    session, maps = stage_maps_session(net)
    plain = OnnxFaceNet.build(net)
    embedder = FaceEmbedder()
    group_ids = {g: i for i, g in enumerate(sorted({r.group for r in records}))}
    rows: dict[str, list[np.ndarray]] = {}
    crops, cues, meta = [], [], []
    for judged in judged_faces(records, np.random.default_rng(seed + offset), V2_CROP, name, training_finder(weights)):
        if judged.inputs.wide_crop is None:
            continue
        chip = embedder.chip(judged.pixels, judged.face.landmarks)
        for key, value in summarise(judged, chip, session.run(maps, {"chip": chip[None]}), plain).items():
            rows.setdefault(key, []).append(value)
        crops.append(judged.inputs.wide_crop)
        cues.append(judged.inputs.cues)
        meta.append((judged.record.label, SOURCE_NAMES.index(judged.record.source), judged.index, judged.condition,
                     group_ids[judged.record.group]))
    arrays = {key: np.stack(value) for key, value in rows.items()}
    arrays["cnn_v2"] = _onnx_logits(weights / "model_v2.onnx", np.stack(crops))[:, 0]
    arrays["cue_logit"] = CueTrees.load(weights / "cue_trees.npz").logits(np.stack(cues))
    arrays["meta"] = np.array(meta, dtype=np.int64)
    return arrays


def _summaries(records: list[Record], seed: int, offset: int, weights: Path, name: str) -> dict[str, np.ndarray]:
    def summarise(judged: Any, chip: np.ndarray, maps: list[np.ndarray], plain: OnnxFaceNet) -> dict[str, np.ndarray]:
        return {"grid": grid_features(maps), "gram": gram_features(maps),
                "wide": plain.describe(wide_chip(judged))[1][:STAGES_DIM], "stages": plain.describe(chip)[1][:STAGES_DIM]}

    return network_arrays(records, seed, offset, weights, name, summarise)


@dataclass(frozen=True)
class SummaryComparison:
    """A shipped stacker's out-of-fold scores on the validation faces, against which summaries are compared."""

    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    base_columns: np.ndarray  # the shipped stacker's columns: cnn_v2, cue logit, its side model's logit
    base: np.ndarray  # their out-of-fold stacked scores
    seed: int

    @property
    def y(self) -> np.ndarray:
        return self.val["meta"][:, 0]

    @property
    def source(self) -> np.ndarray:
        return self.val["meta"][:, 1]

    @property
    def files(self) -> np.ndarray:
        return self.val["meta"][:, 2]

    def real_sources(self) -> tuple[np.ndarray, np.ndarray]:
        """The validation faces of the two real sources, and which of them are CIPLAB's."""
        real = np.isin(self.source, [SOURCE_NAMES.index("ffhq"), SOURCE_NAMES.index("ciplab")])
        return real, (self.source[real] == SOURCE_NAMES.index("ciplab")).astype(np.int64)


def start_comparison(train: dict[str, np.ndarray], val: dict[str, np.ndarray], side_logit: np.ndarray, seed: int,
                     title: str, alone: str, base_name: str) -> SummaryComparison:
    """The shipped stacker (``cnn_v2``, ``cue_logit``, ``side_logit``) out of fold; prints the section's heading, the
    table's header (``alone``: the name of the summary-alone column) and the shipped stacker's row."""
    base_columns = np.column_stack([val["cnn_v2"], val["cue_logit"], side_logit])
    comparison = SummaryComparison(train, val, base_columns, out_of_fold(base_columns, val["meta"][:, 0], val["meta"][:, 2]),
                                   seed)
    y, base = comparison.y, comparison.base
    real, ciplab = comparison.real_sources()
    say(f"## {title} (seed {seed})\n")
    say(f"train: {len(train['meta'])} faces; validation: {len(y)} judged faces (each file as staged + 1 degraded)\n")
    table_header(["stacker inputs", alone, "OOF AUROC", "OOF TPR@1%"],
                 ["AUROC diff 95% CI", "ciplab vs ffhq (alone)", "left-out generator AUROC (stylegan1 / sd21)"])
    say(f"| {base_name} | {auroc(side_logit, y):.4f} | {auroc(base, y):.4f} | {tpr_at_fpr(base, y, 0.01):.4f} | "
        f"{pair_cells(base, y, source=comparison.source)} | [+0.0000, +0.0000] | {auroc(side_logit[real], ciplab):.3f} | - |")
    return comparison


def compare_summary(comparison: SummaryComparison, key: str, rows: list[tuple[str, bool]]) -> dict[str, float]:
    """Fit a logistic model of the train faces' summary ``key`` (C by grouped CV on train), refit without each
    generator for the left-out column, and print one row per ``(label, in_place)``: the summary in place of the
    shipped stacker's side model, or added to it. Returns the cross-validation summary of the full fit."""
    train, val, y, source, files = comparison.train, comparison.val, comparison.y, comparison.source, comparison.files
    labels, train_source, groups = train["meta"][:, 0], train["meta"][:, 1], train["meta"][:, 4]
    real, ciplab = comparison.real_sources()
    model, cv = fit_descriptor_model(train[key], labels, groups)
    logit = model.logits(val[key])
    left_out = []
    for gone in ("stylegan1", "sd21"):
        keep = train_source != SOURCE_NAMES.index(gone)
        partial, _ = fit_descriptor_model(train[key][keep], labels[keep], groups[keep])
        unseen = (y == 0) | (source == SOURCE_NAMES.index(gone))
        left_out.append(f"{auroc(partial.logits(val[key])[unseen], y[unseen]):.3f}")
    for label, in_place in rows:
        kept = comparison.base_columns[:, :2] if in_place else comparison.base_columns
        stacked = out_of_fold(np.column_stack([kept, logit]), y, files)
        lo, hi, _ = bootstrap_diff(comparison.base, stacked, y, files, comparison.seed)
        say(f"| {label} | {auroc(logit, y):.4f} | {auroc(stacked, y):.4f} | {tpr_at_fpr(stacked, y, 0.01):.4f} | "
            f"{pair_cells(stacked, y, source)} | [{lo:+.4f}, {hi:+.4f}] | {auroc(logit[real], ciplab):.3f} | "
            f"{' / '.join(left_out)} |")
    return cv


def main() -> None:
    args = experiment_args(__doc__ or "")
    splits = split_records(list_records(args.data), args.seed)
    train = summaries(splits["train"], args.seed, TRAIN_RNG_OFFSET, args.weights, "train")
    val = summaries(splits["validation"], args.seed, VAL_RNG_OFFSET, args.weights, "validation")
    stages = DescriptorModel.load(args.weights / "stages_lr.npz", dim=STAGES_DIM).logits(val["stages"])
    comparison = start_comparison(train, val, stages, args.seed,
                                  "Follow-ups: richer summaries of the same network against 2.5.0's stacker",
                                  "summary alone AUROC", "cnn_v2, cues, net_stages (2.5.0)")
    for key in ("grid", "gram", "wide"):
        compare_summary(comparison, key, [(f"2.5.0's three + {key}", False),
                                          (f"cnn_v2, cues, {key} (in place of net_stages)", True)])


if __name__ == "__main__":
    main()
