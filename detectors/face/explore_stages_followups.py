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


def _summaries(records: list[Record], seed: int, offset: int, weights: Path, name: str) -> dict[str, np.ndarray]:
    import dlib

    net = NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE))
    session, maps = stage_maps_session(net)
    plain = OnnxFaceNet.build(net)
    embedder = FaceEmbedder()
    group_ids = {g: i for i, g in enumerate(sorted({r.group for r in records}))}
    rows: dict[str, list[np.ndarray]] = {"grid": [], "gram": [], "wide": [], "stages": [], "crops": [], "cues": []}
    meta = []
    for judged in judged_faces(records, np.random.default_rng(seed + offset), V2_CROP, name, training_finder(weights)):
        if judged.inputs.wide_crop is None:
            continue
        chip = embedder.chip(judged.pixels, judged.face.landmarks)
        outputs = session.run(maps, {"chip": chip[None]})
        rows["grid"].append(grid_features(outputs))
        rows["gram"].append(gram_features(outputs))
        rows["stages"].append(plain.describe(chip)[1][:STAGES_DIM])
        points = judged.face.landmarks.astype(np.float64)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        shape = dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
                                           [dlib.point(int(x), int(y)) for x, y in points])
        wide = np.asarray(dlib.get_face_chip(np.ascontiguousarray(judged.pixels), shape, CHIP_SIZE, WIDE_PADDING), np.uint8)
        rows["wide"].append(plain.describe(wide)[1][:STAGES_DIM])
        rows["crops"].append(judged.inputs.wide_crop)
        rows["cues"].append(judged.inputs.cues)
        meta.append((judged.record.label, SOURCE_NAMES.index(judged.record.source), judged.index, judged.condition,
                     group_ids[judged.record.group]))
    arrays = {key: np.stack(value) for key, value in rows.items() if key not in ("crops", "cues")}
    arrays["cnn_v2"] = _onnx_logits(weights / "model_v2.onnx", np.stack(rows["crops"]))[:, 0]
    arrays["cue_logit"] = CueTrees.load(weights / "cue_trees.npz").logits(np.stack(rows["cues"]))
    arrays["meta"] = np.array(meta, dtype=np.int64)
    return arrays


def main() -> None:
    args = experiment_args(__doc__ or "")
    splits = split_records(list_records(args.data), args.seed)
    train = summaries(splits["train"], args.seed, TRAIN_RNG_OFFSET, args.weights, "train")
    val = summaries(splits["validation"], args.seed, VAL_RNG_OFFSET, args.weights, "validation")
    stages = DescriptorModel.load(args.weights / "stages_lr.npz", dim=STAGES_DIM).logits(val["stages"])
    base_columns = np.column_stack([val["cnn_v2"], val["cue_logit"], stages])
    y, source, files = (val["meta"][:, i] for i in range(3))
    labels, train_source, groups = train["meta"][:, 0], train["meta"][:, 1], train["meta"][:, 4]
    real = np.isin(source, [SOURCE_NAMES.index("ffhq"), SOURCE_NAMES.index("ciplab")])
    ciplab = (source[real] == SOURCE_NAMES.index("ciplab")).astype(np.int64)
    base = out_of_fold(base_columns, y, files)
    say(f"## Follow-ups: richer summaries of the same network against 2.5.0's stacker (seed {args.seed})\n")
    say(f"train: {len(labels)} faces; validation: {len(y)} judged faces (each file as staged + 1 degraded)\n")
    table_header(["stacker inputs", "summary alone AUROC", "OOF AUROC", "OOF TPR@1%"],
                 ["AUROC diff 95% CI", "ciplab vs ffhq (alone)", "left-out generator AUROC (stylegan1 / sd21)"])
    say(f"| cnn_v2, cues, net_stages (2.5.0) | {auroc(stages, y):.4f} | {auroc(base, y):.4f} | "
        f"{tpr_at_fpr(base, y, 0.01):.4f} | {pair_cells(base, y, source)} | [+0.0000, +0.0000] | "
        f"{auroc(stages[real], ciplab):.3f} | - |")
    for key in ("grid", "gram", "wide"):
        model, _ = fit_descriptor_model(train[key], labels, groups)
        logit = model.logits(val[key])
        left_out = []
        for gone in ("stylegan1", "sd21"):
            keep = train_source != SOURCE_NAMES.index(gone)
            partial, _ = fit_descriptor_model(train[key][keep], labels[keep], groups[keep])
            unseen = (y == 0) | (source == SOURCE_NAMES.index(gone))
            left_out.append(f"{auroc(partial.logits(val[key])[unseen], y[unseen]):.3f}")
        designs = {f"2.5.0's three + {key}": np.column_stack([base_columns, logit]),
                   f"cnn_v2, cues, {key} (in place of net_stages)": np.column_stack([base_columns[:, :2], logit])}
        for label, design in designs.items():
            stacked = out_of_fold(design, y, files)
            lo, hi, _ = bootstrap_diff(base, stacked, y, files, args.seed)
            say(f"| {label} | {auroc(logit, y):.4f} | {auroc(stacked, y):.4f} | {tpr_at_fpr(stacked, y, 0.01):.4f} | "
                f"{pair_cells(stacked, y, source)} | [{lo:+.4f}, {hi:+.4f}] | {auroc(logit[real], ciplab):.3f} | "
                f"{' / '.join(left_out)} |")


if __name__ == "__main__":
    main()
