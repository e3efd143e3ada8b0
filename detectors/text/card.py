"""Writes the text model's MODEL_CARD.md from the training report and manifest (training side)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detectors.manifest import sha256_file
from detectors.text.evaluation import format_table

NOT_USED = (
    "- Not used: SmolLM2 likelihood / Fast-DetectGPT curvature features and fine-tuned encoders. Extracting LM "
    "features for ~37k texts does not fit a 2-core CPU training budget of ~20 minutes; they are the obvious next step "
    "for cross-generator robustness.\n"
)
TARGETS = "AUROC >= 0.97 and TPR@1%FPR >= 0.80 overall; AUROC >= 0.95 per generator/domain (n >= 100)"



def _skeleton_text(manifest: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    """The card's sentences on the skeleton block and how its model is combined with the n-gram model."""
    buckets = int(manifest["extra"].get("skeleton_buckets", 0))
    if not buckets:
        return "skeleton block is absent from these weights."
    trial = next(t for t in report["c_trials"] if t["alpha"] == report["alpha"])
    comb = report["combination"]
    return (
        "skeleton model (`detectors/text/skeleton.py`; L2 penalty "
        f"{report['skeleton_alpha']:g}, chosen in `detectors/text/explore_skeleton.py`) on the text's function-word "
        "skeleton: stopwords and punctuation kept, numbers as `<n>`, every other word reduced to `_` and its last three "
        f"characters (`-ing`, `-ely`, `-ion`), word 1-4-grams of that sequence in {buckets} buckets, sublinear tf, l2. "
        "What is left is syntax and morphology, with most of the topic gone. The two logits are added as "
        f"{comb['ngram']:.3f} x n-gram + {comb['skeleton']:.3f} x skeleton + {comb['bias']:.3f} (a logistic regression "
        f"on the validation first windows' two {'out-of-fold ' if 'crossfit' in report else ''}logits), folded into one "
        "weight table, so the service runs one linear model as before. Validation first windows (AUROC / TPR@1%FPR), "
        "both fitted on train alone: n-gram "
        f"{trial['ngram_val_auroc_first_window']:.3f} / {trial['ngram_val_tpr_at_1pct_fpr']:.3f}, skeleton "
        f"{trial['skeleton_val_auroc_first_window']:.3f} / {trial['skeleton_val_tpr_at_1pct_fpr']:.3f}, combined "
        f"{trial['val_auroc_first_window']:.3f} / {trial['val_tpr_at_1pct_fpr']:.3f}." + _crossfit_text(report)
    )


def _crossfit_text(report: Mapping[str, Any]) -> str:
    """The card's sentences on fitting stage 1 on train + validation (0.5.0 on); empty for older reports."""
    cf = report.get("crossfit")
    if not cf:
        return ""
    return (
        f" From 0.5.0 both models are fitted on train + validation (`detectors/text/crossfit.py`): validation is cut "
        f"into {cf['folds']} folds grouped by `pair_id`, each fold is scored by models fitted on train and the other "
        "folds, and those out-of-fold scores are what the combination, length rule, calibration, thresholds and the "
        "LM stacker see; the shipped weights are one more fit on train + all of validation. Out-of-fold validation "
        f"first windows: n-gram {cf['oof_ngram_val_auroc_first_window']:.3f} / {cf['oof_ngram_val_tpr_at_1pct_fpr']:.3f}, "
        f"skeleton {cf['oof_skeleton_val_auroc_first_window']:.3f} / {cf['oof_skeleton_val_tpr_at_1pct_fpr']:.3f}, "
        f"combined {cf['oof_val_auroc_first_window']:.3f} / {cf['oof_val_tpr_at_1pct_fpr']:.3f} (the learning curve was "
        "still rising: a quarter of train 0.927, half 0.939, three quarters 0.946, all 0.948, combined, development run)."
    )

def _f(v: Any) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _kv_table(items: Mapping[str, Mapping[str, Any]], cols: tuple[str, ...], title: str) -> str:
    lines = [f"| {title} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {k} | " + " | ".join(_f(v.get(c)) for c in cols) + " |" for k, v in items.items()]
    return "\n".join(lines)


def _shortfalls(test: Mapping[str, Any]) -> list[str]:
    notes = []
    o = test["overall"]
    if (o["auroc"] or 0) < 0.97:
        notes.append(f"overall AUROC {o['auroc']:.3f} < 0.97")
    if (o["tpr_at_1pct_fpr"] or 0) < 0.80:
        notes.append(f"overall TPR@1%FPR {o['tpr_at_1pct_fpr']:.3f} < 0.80")
    for kind in ("per_domain", "per_generator"):
        for name, m in test[kind].items():
            if m["n"] >= 100 and m["auroc"] is not None and m["auroc"] < 0.95:
                notes.append(f"{kind[4:]} {name}: AUROC {m['auroc']:.3f} < 0.95")
    return notes


def render_from_files(out_dir: Path) -> None:
    """Re-render ``MODEL_CARD.md`` from ``training_report.json`` and ``manifest.json`` in ``out_dir``."""
    report = json.loads((out_dir / "training_report.json").read_text(encoding="utf-8"))
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    write_model_card(out_dir, report, manifest)


def write_model_card(out_dir: Path, report: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
    """Render the card; every number comes from ``report`` (test split unless stated)."""
    test, cal, fair, spd = report["test"], report["calibration"], report["fairness"], report["speed"]
    model = out_dir / "model.onnx"
    wf = out_dir / "wordfreq.npy"
    short = _shortfalls(test)
    curve = {str(p["words"]): p for p in report["length_curve"]}
    sections = [
        f"# Model card: {manifest['name']} {manifest['version']}",
        "Detects whether an English text was written by a language model. Raw score: a logit, higher is AI; "
        "probability: isotonic-calibrated on the validation split (its AI/human mix, about 70% AI, is the prior "
        "baked into the probabilities: re-read them for a newsroom's own base rate).",
        "## Model\n"
        "- Two logistic regressions (averaged SGD, 20 epochs, scikit-learn) on hashed features, added into one linear "
        "model: (1) the n-gram model (L2 penalty chosen on validation) on word/punctuation 1-2-grams "
        f"({manifest['extra']['n_buckets'] // 4} buckets) and character 3-5-grams ({manifest['extra']['n_buckets'] * 3 // 4} "
        "buckets), sublinear tf, l2 per block, and 9 stylometric features (below); (2) from 0.4.0, the "
        + _skeleton_text(manifest, report) + " The n-gram model also reads 9 stylometric features (sentence-length mean "
        "and burstiness, "
        "MATTR-50 type-token ratio, mean/std of word log-frequency and rare-word share from a training-split frequency "
        "table, commas per word, word length, stopword share; standardised and scaled by 0.05, since unscaled they made "
        "the SGD fit worse: validation AUROC 0.856 vs 0.877 on an 8k-text pilot). Text is NFKC-normalised, "
        "zero-width characters removed, "
        "Cyrillic/Greek homoglyphs mapped to Latin, lower-cased, digits folded to 0, whitespace collapsed.\n"
        f"- Texts are scored in sentence-aligned windows of <= {manifest['extra']['window_words']} words; window logits "
        "are averaged weighted by words. Each sentence is also scored alone for the span probabilities (indicative only).\n"
        "- Development ablations (validation split, first window; measured once with the shipped features, not re-run "
        "by training; the n-gram model alone as shipped in 0.1.0-0.3.1): AUROC 0.945 / TPR@1%FPR 0.419; without the "
        "style features 0.945 / 0.442; label-only "
        "sample weights 0.946 / 0.433; 40 epochs 0.945 / 0.400; L2 penalty 1e-6 0.947 / 0.413, 1e-7 0.943 / 0.392; every "
        "domain group given the same weight within a label (so SQuAD's and PubMed's few human texts count as much as "
        "the newswire; a full `train text` run, 2026-11-29) 0.938 / 0.402, lower, and its length curve moved the minimum to 60 "
        "words. All within noise (1% of validation human texts is ~16 texts); plain (non-averaged) SGD swung by +-0.1 AUROC and "
        "liblinear/lbfgs took many minutes per fit on 2 shared cores, hence averaged SGD.\n"
        + NOT_USED +
        f"- Files: `model.onnx` {model.stat().st_size} bytes, sha256 `{sha256_file(model)}` "
        f"(int8 weights: {report['export']['quantised_int8']}, "
        f"validation AUROC change {report['export']['int8_val_auroc_delta']:.5f}); "
        f"`wordfreq.npy` {wf.stat().st_size} bytes, sha256 `{sha256_file(wf)}`.",
        "## Data and splits\n"
        "`../shared/datasets/text` (l2r, fastdetect_glimpse, reuters21578_news, llmfake_news). Split by `pair_id` "
        f"(Reuters rows by `id`) with sha256(seed:key), seed {report['seed']}: 70% train / 15% validation (calibration, "
        "thresholds, C, minimum length" + ("; from 0.5.0 also fitted on, scored out of fold" if "crossfit" in report else "")
        + ") / 15% test (reported only).\n\n"
        + _kv_table(report["split_counts"], ("human", "ai", "groups"), "split")
        + "\n\nShortcut removal on both labels before training and evaluation: Reuters ticker markup, chat preambles, "
        "trailing disclaimers, the PubMedQA `Question: ... Answer:` frame, WritingPrompts tokenisation, trailing "
        "fragments after the last full sentence (e.g. scrapes cut at 4,000 characters); training sees only the first "
        f"window (<= {manifest['extra']['window_words']} words) of each text. Sample weights: each label half the weight, "
        "and no domain group more than 4x the median group within a label (so Reuters does not define 'human').",
        "## Calibration, thresholds, abstention (validation split)\n"
        f"- Isotonic calibration ({len(cal['calibration']['x'])} knots) on {cal['n_val_covered']} validation texts; Platt "
        "scaling was tried first, but its probabilities saturated at exactly 1.0 for the top 1% of human texts, leaving "
        "no probability cut with FPR <= 1%.\n"
        f"- `likely_ai` = {cal['thresholds']['likely_ai']:.4f}: lowest cut with FPR <= {cal.get('target_fpr', 0.01):.1%} on "
        "validation human texts, both on all of them and on those other than Reuters (a first run chose the cut on all "
        "human texts and reached 1.6% FPR on non-Reuters test human texts, because the 1987 newswire is easy and loosened "
        "the cut; from 0.5.0 the target is half the 1% requirement, as the cascade's: at exactly 1% the off mode reached "
        "1.6% on non-Reuters test human texts and 1.3% on the highest-Flesch slice) "
        f"(reached {cal['fpr_reached']:.4f} on all, {cal.get('fpr_reached_excluding_reuters', float('nan')):.4f} without "
        f"Reuters; validation TPR there {cal['val_tpr_at_likely_ai']:.3f}).\n"
        f"- `likely_human` = {cal['thresholds']['likely_human']:.4f}: highest cut that puts at most 5% of validation AI texts "
        f"in `likely_human` (reached {cal['likely_human_ai_share_reached']:.3f}); {cal['val_human_likely_human_share']:.3f} "
        "of validation human texts get `likely_human`. Between the two: `uncertain`.\n"
        f"- Minimum length {report['min_words']} words: the smallest prefix length whose validation AUROC (and every "
        "longer one's) is >= 0.90. Quality versus words seen (validation texts cut to their first L words):\n\n"
        + _kv_table(curve, ("n", "auroc", "tpr_at_1pct_fpr"), "words")
        + f"\n\n- Not English: Latin-letter share < {manifest['extra']['min_latin_share']} or, from "
        f"{manifest['extra']['english_check_min_words']} words, English stopword share < "
        f"{manifest['extra']['min_stopword_share']:.3f} (0.5th percentile of training texts).",
        "## Results on the held-out test split\n"
        f"Targets: {TARGETS}.\n\n" + format_table({"overall": test["overall"]}, "group") + "\n\n"
        + format_table(test["per_domain"], "domain") + "\n\n" + format_table(test["per_generator"], "generator (vs all human)")
        + (
            "\n\nWithout the Reuters human texts (an easy, human-only source):\n\n"
            + format_table({"overall excl. Reuters": report["test_excluding_reuters"]}, "group")
            if "test_excluding_reuters" in report
            else ""
        )
        + "\n\nShortfalls against the targets: " + ("; ".join(short) if short else "none") + ".",
        "## Fairness: FPR at `likely_ai` on human test texts\n"
        "Plainest texts: the lowest 10% by MATTR-50 vocabulary diversity and the highest 10% by Flesch reading ease "
        "(simplest prose), among covered human test texts.\n\n"
        + _kv_table(fair, ("n", "fpr"), "human slice"),
        "## Leave-one-out generalisation (AUROC)\n"
        "Quick refits on a seeded 50% subsample of the training split with the held-out generator family's AI texts "
        "(or the domain group's texts) removed from training, "
        "scored on the first window of that family's / group's validation + test rows (for generators: against all "
        "validation + test human texts). This predicts behaviour on unseen generators and on news.\n\n"
        + (_kv_table(report["folds"], ("n_ai", "n_human", "auroc", "tpr_at_1pct_fpr"), "held out") if report["folds"]
           else "Not run: the time budget was spent."),
        "## Speed\n"
        f"One {spd['words']:.0f}-word news article, batch of one, preprocess + ONNX forward + postprocess, "
        f"{spd.get('threads', 2)} intra-op thread(s): median wall {spd['median_ms']:.1f} ms (p90 {spd['p90_ms']:.1f} ms), "
        f"{spd['words_per_s']:.0f} words/s, median process CPU time {spd.get('cpu_ms', float('nan')):.1f} ms, on the "
        "2-core training machine, which other jobs share (wall time varies with their load; the CPU time is what one "
        "core needs; under a load average of ~10 the same article took 65-130 ms wall). Featurisation (vectorised numpy "
        "hashing) dominates; the ONNX call is a gather and a sum. Energy: at an assumed ~15 W per busy core, "
        "CPU time x 15 W gives the per-article estimate "
        f"(about {spd.get('cpu_ms', 0.0) * 15 / 1000:.2f} J).",
        "## Limitations\n"
        "- A bag-of-n-grams model learns the style of the generators and domains it saw: the leave-one-out table shows "
        "how much it drops on unseen ones. AI-written news in the data is LLMFake misinformation (2023 chat models); "
        "modern GPT-4-class news may score lower.\n"
        "- Human references are mostly pre-2020 corpora; Reuters is 1987 wire copy. The FPR bound holds on these "
        "distributions, not on every newsroom's prose. Plain, non-native writing is only approximated by the slices above.\n"
        "- Probabilities carry the validation prior (about 70% AI) and are step-like (isotonic). Sentence span "
        "probabilities are indicative only.\n"
        "- The Bao et al. `writing`/`squad` AI texts begin with ~30 tokens of the human text they continue, and pairs "
        "were cut to equal length: they are partly human, which caps what any detector can reach there (test AUROC "
        "squad/writing/pubmed is the weakest). Old sampled base models (GPT-2/OPT/Neo/J/NeoX, davinci) are also the "
        "hardest generators for a style model; LM-likelihood features would be the fix.\n"
        "- Paraphrased or lightly human-edited AI text, and mixed human/AI documents, were not evaluated.",
    ]
    if "lm" in report:
        sections = _with_cascade(sections, report, manifest)
    (out_dir / "MODEL_CARD.md").write_text("\n\n".join(sections) + "\n", encoding="utf-8")


def _with_cascade(sections: list[str], report: Mapping[str, Any], manifest: Mapping[str, Any]) -> list[str]:
    """Cascade cards (>= 0.2.0): the cascade's sections first, then stage 1's (headings marked as the n-gram stage)."""
    from detectors.text.card_lm import lm_sections

    front = "front" in manifest["extra"]
    intro = ("Detects whether an English text was written by a language model: a hashed n-gram model on every text, "
             + ("folded with a fine-tuned MiniLM-L6 encoder into a front score (texts the n-gram model alone calls "
                "human skip the encoder), and, where the front is unsure, " if front else
                "and, where the n-gram model is unsure, ")
             + "SmolLM2-135M likelihood features and a small CNN over SmolLM2's "
             "per-token statistics combined with it. Raw score: "
             "log-odds, higher is AI; probability: isotonic-calibrated on the validation split (its AI/human mix, about "
             "70% AI, is the prior baked into the probabilities: re-read them for a newsroom's own base rate).")
    label = ("## n-gram stage (stage 1; alone it was BYLINECHECK_TEXT_LM=off until 0.5.0): " if front else
             "## n-gram stage (alone: BYLINECHECK_TEXT_LM=off): ")
    stage1 = [s.replace("## ", label, 1) for s in sections[2:]]
    stage1 = [s.replace(NOT_USED, "- SmolLM2 likelihood features: see the cascade sections above.\n") for s in stage1]
    return [sections[0], intro, *lm_sections(report, manifest), *stage1]


if __name__ == "__main__":
    render_from_files(Path(sys.argv[1]))
