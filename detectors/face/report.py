"""Studies behind the model card: face size, test metrics per source pair, shortcut check, speed,
cross-generator transfer.

Caveats first: training-time only (imports scikit-learn / torch inside functions). The face-size
study and the cross-generator study use the validation split; test metrics use the test split and
the shipped artifact through ``FaceDetector``, exactly as the service runs it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.contract import Device, ImageItem
from detectors.face.card import write_model_card
from detectors.face.data import SOURCE_NAMES, Record, read_rgb
from detectors.face.detector import FaceDetector, build_face_detector
from detectors.face.evaluation import CONDITIONS, judge_paths, summarise
from detectors.metrics import auroc, tpr_at_fpr

logger = logging.getLogger(__name__)

SIZE_GRID = (24, 32, 40, 48, 64, 80, 96)
SIZE_TOLERANCE = 0.03
CROSS_EPOCHS = 4
PAIRS = (("ffhq", "stylegan1"), ("ciplab", "sd21"), ("ffhq", "sd21"), ("ciplab", "stylegan1"))

__all__ = [
    "cross_generator_study",
    "face_size_study",
    "refresh_speed",
    "shortcut_check",
    "shortcut_check_v2",
    "speed_check",
    "test_report",
    "write_model_card",
]


def _loaded(out_dir: Path, threads: int = 1) -> FaceDetector:
    detector = build_face_detector(out_dir)
    detector.load(Device(intra_op_threads=threads))
    return detector


def face_size_study(out_dir: Path, records: list[Record]) -> dict[str, Any]:
    """AUROC and coverage when faces are shrunk to each width in SIZE_GRID (validation, every 2nd file).

    The minimum face is the smallest width from which AUROC stays within SIZE_TOLERANCE of the
    as-staged AUROC on the same images.
    """
    detector = _loaded(out_dir)
    subset = records[::2]
    images, widths, labels = [], [], []
    for record in subset:
        pixels = read_rgb(record.path)
        out = detector.judge([pixels])[0]
        if out.raw_score is not None and out.region is not None:
            images.append(pixels)
            widths.append(out.region.w)
            labels.append(record.label)
    base_scores = np.array([o.raw_score for o in detector.judge(images)], dtype=np.float64)
    base = auroc(base_scores, np.array(labels))
    grid = []
    for width in SIZE_GRID:
        scores, kept, attempted = [], [], 0
        for pixels, face_w, label in zip(images, widths, labels, strict=True):
            if face_w < width * 1.05:
                continue
            attempted += 1
            scale = width / face_w
            small = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            out = detector.judge([small])[0]
            if out.raw_score is not None:
                scores.append(out.raw_score)
                kept.append(label)
        grid.append(
            {
                "face_width_px": width,
                "auroc": auroc(np.array(scores), np.array(kept)),
                "coverage": len(scores) / max(attempted, 1),
                "n": attempted,
            }
        )
        logger.info("face size %d px: %s", width, grid[-1])
    good = [g["auroc"] >= base - SIZE_TOLERANCE for g in grid]
    chosen = SIZE_GRID[-1]
    for index in range(len(grid) - 1, -1, -1):
        if not good[index]:
            break
        chosen = SIZE_GRID[index]
    return {"as_staged_auroc": base, "grid": grid, "min_face_width_px": chosen, "min_face_pixels": chosen * chosen}


def test_report(out_dir: Path, records: list[Record]) -> dict[str, Any]:
    """Per source pair and overall, as submitted and after JPEG q60 + half size (test split)."""
    detector = _loaded(out_dir)
    outputs = {source: judge_paths(detector, [r.path for r in records if r.source == source]) for source in SOURCE_NAMES}
    likely_ai = detector.manifest.thresholds.likely_ai
    report: dict[str, Any] = {}
    groups = {source: [r.group for r in records if r.source == source] for source in SOURCE_NAMES}
    for real, fake in (*PAIRS, ("ffhq+ciplab", "stylegan1+sd21")):
        key = f"{real} vs {fake}"
        report[key] = {}
        for condition in CONDITIONS:
            real_out = [o for s in real.split("+") for o in outputs[s][condition]]
            fake_out = [o for s in fake.split("+") for o in outputs[s][condition]]
            group_of = [g for s in (*real.split("+"), *fake.split("+")) for g in groups[s]]  # files; SD prompts whole
            report[key][condition] = summarise(real_out, fake_out, likely_ai, group_of)
    return report


def _qtables(data: bytes) -> np.ndarray:
    from detectors.face.data import qtable_vector

    return qtable_vector(data)


def _oof_auroc(features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Out-of-fold AUROC (5 group folds) of a logistic model and a boosted-tree model."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = GroupKFold(n_splits=5)
    out = {}
    models = {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "boosted_trees": HistGradientBoostingClassifier(max_iter=100, random_state=0),
    }
    for name, model in models.items():
        pred = cross_val_predict(model, features, labels, groups=groups, cv=folds, method="predict_proba")[:, 1]
        out[name] = auroc(pred, labels)
    return out


def shortcut_check(arrays: dict[str, np.ndarray], train_records: list[Record]) -> dict[str, Any]:
    """Can file size + JPEG quantisation tables alone separate the training classes?

    "after_pipeline": the re-encoded face regions the CNN and cues are trained on; "as_staged": the
    original files (the trap this pipeline removes). Per source pair and overall.
    """
    staged_feats = []
    for record in train_records:
        data = record.path.read_bytes()
        staged_feats.append(np.concatenate([[len(data)], _qtables(data)]))
    staged = np.stack(staged_feats)
    staged_labels = np.array([r.label for r in train_records])
    staged_source = np.array([SOURCE_NAMES.index(r.source) for r in train_records])
    after = np.concatenate([arrays["train_jpeg_size"][:, None], arrays["train_qtables"]], axis=1)
    result: dict[str, Any] = {}
    for real, fake in (*PAIRS[:2], ("ffhq+ciplab", "stylegan1+sd21")):
        wanted = [SOURCE_NAMES.index(s) for s in (*real.split("+"), *fake.split("+"))]
        m_staged = np.isin(staged_source, wanted)
        m_after = np.isin(arrays["train_source"], wanted)
        result[f"{real} vs {fake}"] = {
            "as_staged": _oof_auroc(staged[m_staged], staged_labels[m_staged], np.arange(int(m_staged.sum()))),
            "after_pipeline": _oof_auroc(after[m_after], arrays["train_labels"][m_after], arrays["train_record"][m_after]),
        }
    return result


def shortcut_check_v2(train_records: list[Record], store_dir: Path, seed: int, epochs: int = 2) -> dict[str, Any]:
    """The shortcut check for the v2 CNN's training data: file size + JPEG tables of the original files
    ("as_staged") and of what ``gpu_train.augment`` feeds the network ("after_pipeline": the re-encoded
    region, or the stored q95 crop when a sample is not re-encoded), for ``epochs`` epochs of the
    training recipe with its own seeds. Empty when the GPU crop store (``gpu_data``) is absent.
    """
    from detectors.face import gpu_train

    if not (store_dir / "index.json").is_file():
        return {}
    store, entries, crops = gpu_train.load_set(store_dir, 0, seed)
    blob = (store_dir / "crops.bin").read_bytes()
    feats, labels, groups, sources = [], [], [], []
    for i, entry in enumerate(entries):
        if entry["split"] != "train":
            continue
        for epoch in range(epochs):
            _, data = gpu_train.augment_region(crops[i], entry, store, np.random.default_rng([seed, epoch, i]))
            data = data or blob[entry["offset"] : entry["offset"] + entry["length"]]
            feats.append(np.concatenate([[len(data)], _qtables(data)]))
            labels.append(int(entry["label"]))
            groups.append(i)
            sources.append(SOURCE_NAMES.index(entry["source"]))
    after, after_labels, after_groups, after_source = np.stack(feats), np.array(labels), np.array(groups), np.array(sources)
    staged = np.stack([np.concatenate([[len(d)], _qtables(d)]) for d in (r.path.read_bytes() for r in train_records)])
    staged_labels = np.array([r.label for r in train_records])
    staged_source = np.array([SOURCE_NAMES.index(r.source) for r in train_records])
    result: dict[str, Any] = {}
    for real, fake in (*PAIRS[:2], ("ffhq+ciplab", "stylegan1+sd21")):
        wanted = [SOURCE_NAMES.index(s) for s in (*real.split("+"), *fake.split("+"))]
        m_staged, m_after = np.isin(staged_source, wanted), np.isin(after_source, wanted)
        result[f"{real} vs {fake}"] = {
            "as_staged": _oof_auroc(staged[m_staged], staged_labels[m_staged], np.arange(int(m_staged.sum()))),
            "after_pipeline": _oof_auroc(after[m_after], after_labels[m_after], after_groups[m_after]),
        }
    return result


def _service_path_cpu(detector: FaceDetector, data: bytes, runs: int) -> list[float]:
    """Thread CPU seconds per run of the path the service takes for an uploaded headshot: its reduced JPEG
    decode (``service.inputs.decode_image`` with the default ``headshot_decode_min_side``), then preprocess,
    forward and postprocess with the submitted size (no face embedding: that belongs to reuse search)."""
    from service.config import Settings
    from service.inputs import decode_image

    settings = Settings()
    cpu = []
    for run in range(runs + 3):
        c0 = time.thread_time()
        decoded = decode_image(data, settings, min_side=settings.headshot_decode_min_side)
        item = ImageItem(pixels=decoded.pixels, original=data, submitted_size=(decoded.width, decoded.height))
        prepared = [detector.preprocess(item)]
        detector.postprocess(prepared, detector.forward(prepared))
        if run >= 3:
            cpu.append(time.thread_time() - c0)
    return cpu


def speed_check(out_dir: Path, records: list[Record], runs: int = 20, threads: int = 1) -> dict[str, Any]:
    """Median / p90 latency of one 1024 x 1024 JPEG headshot (decode + face finding + model), and the CPU time
    of the same upload along the service's path (reduced JPEG decode, the size the finder works at).

    One thread by default: the pipeline is sequential, and ONNX Runtime's extra intra-op threads
    only spin for a 96 x 96 input (on 2 cores, the second is left to the service's other work).

    Also reports the process CPU time per image, which a busy shared machine inflates far less than
    wall time.
    """
    detector = _loaded(out_dir, threads=threads)
    cv2.setNumThreads(threads)
    source = next(r for r in records if r.source == "sd21")
    pixels = cv2.resize(read_rgb(source.path), (1024, 1024), interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    data = buf.tobytes()
    timings, finding, cpu = [], [], []
    for run in range(runs + 3):
        c0 = time.process_time()
        t0 = time.perf_counter()
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if raw is None:
            raise ValueError("speed probe did not decode")
        decoded = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        out = detector.judge([decoded])[0]
        t2 = time.perf_counter()
        if run >= 3:
            timings.append(t2 - t0)
            finding.append(t2 - t1)
            cpu.append(time.process_time() - c0)
    service_cpu = _service_path_cpu(detector, data, runs)
    return {
        "image": f"{source.path.name} upscaled to 1024x1024, JPEG q90, {len(data)} bytes",
        "service_path_median_cpu_ms": 1000 * float(np.median(service_cpu)),
        "service_path_min_cpu_ms": 1000 * float(np.min(service_cpu)),
        "median_ms": 1000 * float(np.median(timings)),
        "p90_ms": 1000 * float(np.percentile(timings, 90)),
        "median_ms_without_decode": 1000 * float(np.median(finding)),
        "median_cpu_ms": 1000 * float(np.median(cpu)),
        "min_ms": 1000 * float(np.min(timings)),
        "load_average_1min": float(os.getloadavg()[0]),
        "verdict": str(out.verdict),
        "threads": threads,
    }


def _held_out_scores(
    train: dict[str, np.ndarray], val: dict[str, np.ndarray], held_out: int, seed: int, budget_s: float
) -> dict[str, Any]:
    from detectors.face.cnn import predict_torch, train_cnn
    from detectors.face.training import fit_cue_model

    keep = train["source"] != held_out
    model = train_cnn(train["crops"][keep], train["labels"][keep], train["family"][keep], seed, CROSS_EPOCHS, budget_s)
    trees = fit_cue_model(train["cues"][keep], train["labels"][keep], seed)
    cnn = predict_torch(model, val["crops"])[:, 0]
    cue = trees.logits(val["cues"])
    fused = cnn / (cnn.std() + 1e-9) + cue / (cue.std() + 1e-9)
    out: dict[str, Any] = {}
    for name, mask in (("seen", val["source"] != held_out), ("unseen", val["labels"] == 0)):
        if name == "unseen":
            mask = mask | (val["source"] == held_out)
        labels = val["labels"][mask]
        out[name] = {
            kind: {"auroc": auroc(s[mask], labels), "tpr_at_1pct_fpr": tpr_at_fpr(s[mask], labels)}
            for kind, s in (("cnn", cnn), ("cues", cue), ("cnn+cues", fused))
        }
    return out


def cross_generator_study(data_dir: Path, out_dir: Path, seed: int, budget_s: float, cache_dir: Path) -> dict[str, Any]:
    """Train on one generator (plus all reals), test on the other, both ways (validation split).

    Writes ``cross_generator.json`` and re-writes the model card when ``metrics.json`` exists.
    """
    import torch

    from detectors.face.data import build_cache, cache_name, list_records, split_records

    torch.set_num_threads(1)
    arrays = build_cache(split_records(list_records(data_dir), seed), cache_dir / cache_name(seed), seed)
    train = {k[6:]: v for k, v in arrays.items() if k.startswith("train_")}
    val = {k[4:]: v for k, v in arrays.items() if k.startswith("val_")}
    result = {}
    for held_out in ("sd21", "stylegan1"):
        seen = "stylegan1" if held_out == "sd21" else "sd21"
        key = f"train on {seen}, test on {held_out}"
        result[key] = _held_out_scores(train, val, SOURCE_NAMES.index(held_out), seed, budget_s / 2)
        logger.info("%s: %s", key, json.dumps(result[key]))
    (out_dir / "cross_generator.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    metrics_path = out_dir / "metrics.json"
    if metrics_path.is_file():
        summary = json.loads(metrics_path.read_text(encoding="utf-8"))
        summary["cross_generator"] = result
        metrics_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        write_model_card(out_dir, summary)
    return result


def refresh_speed(data_dir: Path, out_dir: Path, seed: int) -> dict[str, Any]:
    """Re-measure speed into ``metrics.json`` and re-write the model card (e.g. on a quiet machine)."""
    from detectors.face.data import list_records, split_records

    speed = speed_check(out_dir, split_records(list_records(data_dir), seed)["test"])
    metrics_path = out_dir / "metrics.json"
    summary = json.loads(metrics_path.read_text(encoding="utf-8"))
    summary["speed"] = speed
    metrics_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_model_card(out_dir, summary)
    return speed
