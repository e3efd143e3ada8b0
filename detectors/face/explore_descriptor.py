"""Experiment: do dlib's 128-d face descriptor and 68-landmark geometry add signal to the 2.1.0 face stacker?

Run (about 5 minutes on a shared 2-core machine, face features cached afterwards under ``/tmp/face_cache``)::

    nice -n 19 .venv/bin/python -m detectors.face.explore_descriptor \
        --data ../shared/datasets/faces --weights weights/face > /tmp/explore_descriptor.md

``detectors/face/explore_descriptor_results.md`` is that output (seed 0) with a conclusion added.

What it measures (validation and train splits only; the test split is never read):

* Validation faces exactly as ``stacking.validation_logits`` makes them (each validation file as staged and
  once degraded with rng ``seed + VAL_RNG_OFFSET``, ``FaceFinder()`` + ``find_and_prepare`` with the v2 crop),
  the shipped ``cnn_v2`` and ``cues`` logits, plus, per judged face, the dlib descriptor on the same pixels
  and landmarks the service passes to ``FaceEmbedder.embed`` and landmark-geometry features (the 68 points in
  the alignment template's frame, and left/right mirror residuals there).
* Descriptor-only and landmark-only models (standardised L2 logistic regression, C by 5-fold grouped CV; and
  a small boosted-tree model) fitted on TRAIN faces (each train file as staged and once degraded, rng
  ``seed + TRAIN_RNG_OFFSET``), whose logits on validation become extra stacker inputs.
* 5-fold grouped out-of-fold (OOF) AUROC / TPR@1%FPR of the stacker (``stacking.out_of_fold``) for v2+cues
  (shipped) and with each extra logit, overall and per source pair; the OOF FPR / TPR at a likely_ai threshold
  chosen at 1% FPR in the fitting folds; a paired bootstrap over validation files of the OOF AUROC difference.
* Confound check: how well the descriptor separates the two real sources (CIPLAB vs FFHQ). Robustness checks:
  staged vs degraded, nearest train descriptor per source (near-duplicate identities), and transfer of a
  descriptor model to a generator left out of its training.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from detectors.face.alignment import align_matrix
from detectors.face.data import SOURCE_NAMES, Record, cache_name, judged_faces, list_records, split_records
from detectors.face.descriptor_model import TRAIN_RNG_OFFSET, cached_face_descriptors
from detectors.face.finding import FaceEmbedder, FaceFinder
from detectors.face.pipeline import V2_CROP
from detectors.face.scoring import CueTrees
from detectors.face.stacking import (
    FOLDS,
    VAL_RNG_OFFSET,
    ValidationLogits,
    _cached_validation,
    _onnx_logits,
    out_of_fold,
    training_finder,
)
from detectors.metrics import auroc, threshold_at_fpr, tpr_at_fpr

logger = logging.getLogger(__name__)

CACHE_DIR = Path("/tmp/face_cache")
PAIRS = {
    "ffhq vs stylegan1": ("ffhq", "stylegan1"),
    "ciplab vs sd21": ("ciplab", "sd21"),
    "ffhq vs sd21": ("ffhq", "sd21"),
    "ciplab vs stylegan1": ("ciplab", "stylegan1"),
}
# dlib 68-point mirror partner of each landmark (jaw, brows, nose, eyes, outer and inner lips)
MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)
BOOTSTRAP = 2000


def cached_arrays(name: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """An experiment's input arrays: ``CACHE_DIR / name`` when it exists, else ``compute()``'s, saved there first."""
    path = CACHE_DIR / name
    if path.is_file():
        with np.load(path) as cached:
            return dict(cached)
    arrays = compute()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    return arrays


def table_header(before: list[str], after: list[str] | None = None) -> None:
    """A markdown table's header and separator lines: the ``before`` columns, one ``AUROC / TPR@1%`` column for each
    of :data:`PAIRS` (the cells :func:`pair_cells` writes), then the ``after`` columns."""
    columns = [*before, *(f"{pair} AUROC / TPR@1%" for pair in PAIRS), *(after or [])]
    say("| " + " | ".join(columns) + " |")
    say("|" + " --- |" * len(columns))


def say(line: str) -> None:
    """One line of the markdown report, on stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def landmark_features(landmarks: np.ndarray) -> np.ndarray:
    """68 points mapped by the alignment's similarity transform into the unit template frame (136 values), plus
    the left/right mirror residuals there (point minus its mirrored partner, for each point up to its partner)."""
    matrix = align_matrix(landmarks, 1)
    points = np.asarray(landmarks, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]
    mirrored = points[MIRROR] * np.array([-1.0, 1.0]) + np.array([1.0, 0.0])
    keep = np.arange(68) <= MIRROR
    return np.concatenate([points.ravel(), (points - mirrored)[keep].ravel()])


def faces_of(records: list[Record], seed_offset: int, seed: int, with_logits: bool) -> dict[str, np.ndarray]:
    """Each file as staged and once degraded through ``find_and_prepare`` (as ``stacking.validation_logits``):
    descriptor, landmark features and metadata per judged face; the v2 crops and cues when ``with_logits``."""
    embedder = FaceEmbedder()
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("desc", "geom", "wide", "cues", "meta")}
    for judged in judged_faces(records, np.random.default_rng(seed + seed_offset), V2_CROP):
        if judged.inputs.wide_crop is None:
            continue
        # detector.preprocess: embedder.embed(pixels, face.landmarks) on the pixels the face was found in
        out["desc"].append(np.array(embedder.embed(judged.pixels, judged.face.landmarks)))
        out["geom"].append(landmark_features(judged.face.landmarks))
        if with_logits:
            out["wide"].append(judged.inputs.wide_crop)
            out["cues"].append(judged.inputs.cues)
        meta = (judged.record.label, SOURCE_NAMES.index(judged.record.source), judged.index, judged.condition)
        out["meta"].append(np.array(meta))
    return {k: np.stack(v) for k, v in out.items() if v}


def cached_faces(name: str, records: list[Record], seed_offset: int, seed: int, weights: Path | None) -> dict[str, np.ndarray]:
    path = CACHE_DIR / f"explore_descriptor_{name}_seed{seed}_n{len(records)}.npz"
    if path.is_file():
        with np.load(path) as d:
            return dict(d)
    arrays = faces_of(records, seed_offset, seed, with_logits=weights is not None)
    if weights is not None:
        v2 = _onnx_logits(weights / "model_v2.onnx", arrays.pop("wide"))
        arrays["cnn_v2"] = v2[:, 0]
        arrays["cue_logit"] = CueTrees.load(weights / "cue_trees.npz").logits(arrays.pop("cues"))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return arrays


def reproduction_note(val: dict[str, np.ndarray]) -> str:
    """How far these validation logits are from the closest ``stacking`` validation cache in CACHE_DIR, if any."""
    gaps = []
    for path in sorted(CACHE_DIR.glob("face_v2_val_*.npz")):
        with np.load(path) as d:
            if len(d["labels"]) == len(val["cnn_v2"]):
                gaps.append(max(float(np.abs(d["col_cnn_v2"] - val["cnn_v2"]).max()),
                                float(np.abs(d["col_cues"] - val["cue_logit"]).max())))
    return f"; max |diff| to stacking's cached validation logits {min(gaps):.2e}" if gaps else ""


def fit_side_model(x: np.ndarray, y: np.ndarray, groups: np.ndarray, kind: str, seed: int) -> tuple[object, str]:
    """Standardised logistic regression (C by grouped CV AUROC) or a small boosted-tree model, fitted on x."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "gbt":
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                               l2_regularization=1.0, random_state=seed)
        return model.fit(x, y), "gbt 200 x 15 leaves"
    cv = GroupKFold(n_splits=FOLDS)
    scores = {}
    for c in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
        scores[c] = float(np.mean(cross_val_score(model, x, y, groups=groups, cv=cv, scoring="roc_auc")))
    best = max(scores, key=lambda c: scores[c])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=best, max_iter=3000)).fit(x, y)
    return model, f"logreg C={best} (train grouped-CV AUROC {scores[best]:.4f})"


def oof_with_threshold(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OOF stacked scores (``stacking.out_of_fold``) and, per face, 1 where its score reaches a likely_ai threshold
    set at 1% FPR on the fitting folds' in-sample stacked scores (Platt is monotone, so raw scores suffice)."""
    from sklearn.model_selection import GroupKFold

    from detectors.face.stacking import fit_stacker

    scores = out_of_fold(x, y, groups)
    flagged = np.zeros(len(y), dtype=bool)
    for fit_idx, held_idx in GroupKFold(n_splits=FOLDS).split(x, y, groups):
        coef, intercept = fit_stacker(x[fit_idx], y[fit_idx])
        threshold = threshold_at_fpr(x[fit_idx] @ np.array(coef) + intercept, y[fit_idx], 0.01)
        flagged[held_idx] = scores[held_idx] >= threshold
    return scores, flagged


def pair_mask(source: np.ndarray, pair: tuple[str, str]) -> np.ndarray:
    return np.isin(source, [SOURCE_NAMES.index(s) for s in pair])


def pair_cells(scores: np.ndarray, y: np.ndarray, source: np.ndarray) -> str:
    """``AUROC / TPR@1%FPR`` for each of :data:`PAIRS`, as markdown table cells (the later experiments' tables)."""
    cells = []
    for pair in PAIRS.values():
        m = pair_mask(source, pair)
        cells.append(f"{auroc(scores[m], y[m]):.4f} / {tpr_at_fpr(scores[m], y[m], 0.01):.3f}")
    return " | ".join(cells)


def bootstrap_diff(a: np.ndarray, b: np.ndarray, y: np.ndarray, files: np.ndarray, seed: int) -> tuple[float, float, float]:
    """Paired bootstrap over files of AUROC(b) - AUROC(a): (2.5%, 97.5%, share of draws <= 0)."""
    rng = np.random.default_rng(seed)
    unique = np.unique(files)
    rows = [np.flatnonzero(files == f) for f in unique]
    diffs = []
    for _ in range(BOOTSTRAP):
        idx = np.concatenate([rows[i] for i in rng.integers(0, len(unique), len(unique))])
        if len(np.unique(y[idx])) < 2:
            continue
        diffs.append(auroc(b[idx], y[idx]) - auroc(a[idx], y[idx]))
    d = np.array(diffs)
    return float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)), float((d <= 0).mean())


def stacked_row(label: str, cols: list[np.ndarray], base: np.ndarray | None, y: np.ndarray, files: np.ndarray,
                source: np.ndarray, seed: int) -> tuple[np.ndarray, str, float]:
    """``cols`` stacked out of fold (``out_of_fold``) and its markdown row against ``base`` (the stacked reference;
    ``None``: this row is the reference): label, AUROC, TPR@1%FPR, the pairs' cells and the paired bootstrap's 95%
    interval of the AUROC difference, without the closing ``|``. Returns the stacked logits, the row and the
    bootstrap's share of draws <= 0."""
    stacked = out_of_fold(np.column_stack(cols), y, files)
    lo, hi, share = bootstrap_diff(stacked if base is None else base, stacked, y, files, seed)
    row = (f"| {label} | {auroc(stacked, y):.4f} | {tpr_at_fpr(stacked, y, 0.01):.4f} | {pair_cells(stacked, y, source)} | "
           f"[{lo:+.4f}, {hi:+.4f}]")
    return stacked, row, share


def shipped_setup(args: argparse.Namespace) -> tuple[dict[str, list[Record]], FaceFinder, ValidationLogits, str]:
    """The later experiments' common start: the seeded splits, the shipped finder, the 2.7.0 validation logits
    (``stacking._cached_validation`` under :data:`CACHE_DIR`) and the finder's cache-name stem."""
    splits = split_records(list_records(args.data), args.seed)
    finder = training_finder(args.weights)
    trees = CueTrees.load(args.weights / "cue_trees.npz")
    val = _cached_validation(splits["validation"], None, args.weights / "model_v2.onnx", trees, args.seed, CACHE_DIR, finder)
    return splits, finder, val, cache_name(args.seed, finder).removesuffix(".npz")


def shipped_train_descriptors(records: list[Record], seed: int, finder: FaceFinder, name: str) -> dict[str, np.ndarray]:
    """The train faces the shipped grid model was fitted on (each file as staged and once degraded), cached."""
    path = CACHE_DIR / f"descriptors_train_{name}_n{len(records)}.npz"
    return cached_face_descriptors(records, seed, TRAIN_RNG_OFFSET, path, finder)


def experiment_args(doc: str, extra: Callable[[argparse.ArgumentParser], object] | None = None) -> argparse.Namespace:
    """``--data``, ``--weights`` and ``--seed`` of a face experiment (``doc``: its module docstring), plus whatever
    ``extra`` adds to the parser; logging set up."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/faces"))
    parser.add_argument("--weights", type=Path, default=Path("weights/face"))
    parser.add_argument("--seed", type=int, default=0)
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    return args


def main() -> None:
    args = experiment_args(__doc__)
    splits = split_records(list_records(args.data), args.seed)
    val = cached_faces("validation", splits["validation"], VAL_RNG_OFFSET, args.seed, args.weights)
    train = cached_faces("train", splits["train"], TRAIN_RNG_OFFSET, args.seed, None)
    y, source, files = val["meta"][:, 0], val["meta"][:, 1], val["meta"][:, 2]
    ty, tsource, tfiles = train["meta"][:, 0], train["meta"][:, 1], train["meta"][:, 2]
    say(f"# Descriptor / landmark features as stacker inputs (seed {args.seed})\n")
    say(f"validation: {len(y)} judged faces of {len(np.unique(files))} files; "
          f"train: {len(ty)} faces of {len(np.unique(tfiles))} files (staged + 1 degraded each)\n")
    say(f"shipped columns: AUROC cnn_v2 {auroc(val['cnn_v2'], y):.4f}, cues {auroc(val['cue_logit'], y):.4f}"
        f"{reproduction_note(val)}\n")

    extra: dict[str, np.ndarray] = {}
    for feat, key in (("descriptor", "desc"), ("landmarks", "geom"), ("desc+landmarks", "both")):
        x_train = np.hstack([train["desc"], train["geom"]]) if key == "both" else train[key]
        x_val = np.hstack([val["desc"], val["geom"]]) if key == "both" else val[key]
        for kind in ("lr", "gbt"):
            model, how = fit_side_model(x_train, ty, tfiles, kind, args.seed)
            logit = model.decision_function(x_val)  # type: ignore[attr-defined]
            extra[f"{feat} {kind}"] = logit
            say(f"- {feat} {kind}: {how}; validation AUROC alone {auroc(logit, y):.4f}")
    say("")

    base = np.stack([val["cnn_v2"], val["cue_logit"]], axis=1)
    candidates = {"v2+cues (shipped)": base, "descriptor lr only": extra["descriptor lr"][:, None],
                  "landmarks lr only": extra["landmarks lr"][:, None]}
    for name, logit in extra.items():
        candidates[f"v2+cues+{name}"] = np.hstack([base, logit[:, None]])
    results = {name: oof_with_threshold(x, y, files) for name, x in candidates.items()}
    real = y == 0
    table_header(["candidate", "OOF AUROC", "OOF TPR@1%", "OOF FPR/TPR at fold thr"])
    for name, (scores, flagged) in results.items():
        cells = [name, f"{auroc(scores, y):.4f}", f"{tpr_at_fpr(scores, y):.4f}",
                 f"{flagged[real].mean():.4f} / {flagged[~real].mean():.4f}"]
        for pair in PAIRS.values():
            m = pair_mask(source, pair)
            cells.append(f"{auroc(scores[m], y[m]):.4f} / {tpr_at_fpr(scores[m], y[m]):.4f}")
        say("| " + " | ".join(cells) + " |")

    say("\nPaired bootstrap over validation files (2,000 draws) of OOF AUROC(candidate) - AUROC(v2+cues):\n")
    say("| candidate | overall diff [95% CI] (P diff <= 0) | ffhq vs stylegan1 diff [95% CI] (P <= 0) |\n| --- | --- | --- |")
    ref = results["v2+cues (shipped)"][0]
    sg = pair_mask(source, PAIRS["ffhq vs stylegan1"])
    for name, (scores, _) in results.items():
        if not name.startswith("v2+cues+"):
            continue
        lo, hi, p = bootstrap_diff(ref, scores, y, files, args.seed)
        slo, shi, sp = bootstrap_diff(ref[sg], scores[sg], y[sg], files[sg], args.seed)
        d, sd = auroc(scores, y) - auroc(ref, y), auroc(scores[sg], y[sg]) - auroc(ref[sg], y[sg])
        say(f"| {name} | {d:+.4f} [{lo:+.4f}, {hi:+.4f}] ({p:.3f}) | {sd:+.4f} [{slo:+.4f}, {shi:+.4f}] ({sp:.3f}) |")

    say("\nConfound: real sources only (CIPLAB = 1 vs FFHQ = 0), validation AUROC\n")
    ciplab, ffhq = SOURCE_NAMES.index("ciplab"), SOURCE_NAMES.index("ffhq")
    vreal, treal = np.isin(source, [ciplab, ffhq]), np.isin(tsource, [ciplab, ffhq])
    is_cip = (source[vreal] == ciplab).astype(int)
    for feat in ("descriptor", "landmarks"):
        say(f"- AI-vs-real {feat} lr logit, CIPLAB vs FFHQ: {auroc(extra[f'{feat} lr'][vreal], is_cip):.4f} "
              "(0.5 = no dataset cue; > 0.5 = CIPLAB looks more 'AI')")
    for feat, key in (("descriptor", "desc"), ("landmarks", "geom")):
        model, how = fit_side_model(train[key][treal], (tsource[treal] == ciplab).astype(int), tfiles[treal], "lr", args.seed)
        score = model.decision_function(val[key][vreal])  # type: ignore[attr-defined]
        say(f"- {feat} lr trained on train to tell CIPLAB from FFHQ: validation AUROC {auroc(score, is_cip):.4f} ({how})")
    aisrc = (source == SOURCE_NAMES.index("sd21")).astype(int)
    ai = y == 1
    say(f"- descriptor lr trained to tell AI from real, SD 2.1 vs StyleGAN (AI only): "
          f"{auroc(extra['descriptor lr'][ai], aisrc[ai]):.4f}")

    robustness_checks(val, train, extra["descriptor lr"], results["v2+cues (shipped)"][0],
                      results["v2+cues+descriptor lr"][0], args.seed)


def robustness_checks(val: dict[str, np.ndarray], train: dict[str, np.ndarray], desc_logit: np.ndarray,
                      ref: np.ndarray, stacked: np.ndarray, seed: int) -> None:
    """Per condition, near-duplicate identities across train/validation, and transfer to an unseen generator."""
    y, source, files, condition = (val["meta"][:, i] for i in range(4))
    ty, tsource, tfiles = train["meta"][:, 0], train["meta"][:, 1], train["meta"][:, 2]
    sg = pair_mask(source, PAIRS["ffhq vs stylegan1"])
    say("\nChecks (ffhq vs stylegan1, validation): AUROC descriptor lr alone / v2+cues OOF / v2+cues+descriptor lr OOF\n")
    for cond, label in ((0, "as staged"), (1, "degraded")):
        m = sg & (condition == cond)
        say(f"- {label}: {auroc(desc_logit[m], y[m]):.4f} / {auroc(ref[m], y[m]):.4f} / {auroc(stacked[m], y[m]):.4f}")
    say("\nNearest train descriptor (euclidean; < 0.6 = dlib's 'same person'), validation faces, per source:\n")
    dist = np.sqrt(np.maximum(((val["desc"][:, None, :] - train["desc"][None, :, :]) ** 2).sum(-1), 0.0))
    nearest = dist.min(axis=1)
    for index, name in enumerate(SOURCE_NAMES):
        m = source == index
        say(f"- {name}: median {np.median(nearest[m]):.3f}, share < 0.6 {(nearest[m] < 0.6).mean():.3f}, "
            f"share < 0.4 {(nearest[m] < 0.4).mean():.3f}")
    say("\nTransfer: descriptor lr trained on train WITHOUT one generator, validation AUROC on reals vs that generator\n")
    for unseen in ("sd21", "stylegan1"):
        held = SOURCE_NAMES.index(unseen)
        keep = tsource != held
        model, how = fit_side_model(train["desc"][keep], ty[keep], tfiles[keep], "lr", seed)
        m = (y == 0) | (source == held)
        score = model.decision_function(val["desc"][m])  # type: ignore[attr-defined]
        say(f"- unseen {unseen}: {auroc(score, y[m]):.4f} ({how})")


if __name__ == "__main__":
    main()
