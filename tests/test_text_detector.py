"""Tests for the text detector: shipped weights, normalisation offsets, abstention, the ONNX graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detectors.contract import Device, TextItem, Verdict, WeightsMissingError
from detectors.manifest import file_entry
from detectors.text.cleaning import clean_training_text
from detectors.text.data import DATA_FILES, split_of
from detectors.text.detector import ABSTAIN_NOT_ENGLISH, ABSTAIN_SHORT, TextDetector, build_text_detector
from detectors.text.evaluation import auroc, evaluate_outputs, evaluate_rows, format_evaluation, run_detector, tpr_at_fpr
from detectors.text.features import FREQ_BUCKETS, N_STYLE, featurise
from detectors.text.normalise import FLAG_HOMOGLYPHS, FLAG_ZERO_WIDTH, normalise, sentence_spans, windows
from detectors.text.onnx_graph import write_linear_model

REPO = Path(__file__).parents[1]
WEIGHTS = REPO / "weights" / "text"
DATA = Path(__file__).parents[1].parent / "shared/datasets/text"
SHIPPED_AUROC_BAR = 0.96  # first stage alone (lm off: n-gram + encoder, 0.6.0) measured 0.986 on this fixed 600-row
# subset of the test split (0.5.0's n-gram stage alone: 0.959)
CASCADE_AUROC_BAR = 0.96  # shipped cascade (lm auto) measured 0.996 on this fixed 80-row subset (16 of its 73 covered
# texts go through SmolLM2); the full test split's numbers are in weights/text/MODEL_CARD.md
ENGLISH = (
    "The council met on Tuesday to discuss the new budget for the town. Members said that the plan would pay "
    "for two new schools and a library. Some residents were not happy with the cost of the project, and they "
    "asked the council to wait until next year. The mayor said the vote will take place in the spring. "
)
N_BUCKETS = 1 << 12


def _tiny_weights(root: Path, min_evidence: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    write_linear_model(root / "model.onnx", rng.normal(size=N_BUCKETS).astype(np.float32),
                       rng.normal(size=N_STYLE).astype(np.float32), 0.1, quantise=True)
    np.save(root / "wordfreq.npy", np.full(FREQ_BUCKETS, -12.0, dtype=np.float16))
    manifest = {
        "name": "tiny-text", "version": "0.0.1", "modality": "text", "score_direction": "higher_is_ai",
        "calibration": {"method": "platt", "a": 1.0, "b": 0.0},
        "thresholds": {"likely_ai": 0.9, "likely_human": 0.1},
        "min_evidence": min_evidence, "evidence_unit": "words",
        "files": {"model": file_entry(root, root / "model.onnx"), "wordfreq": file_entry(root, root / "wordfreq.npy")},
        "threshold_provenance": {"data": "none", "split": "none", "objective": "test", "fpr_reached": 0.0},
        "extra": {"n_buckets": N_BUCKETS, "rare_logfreq": -11.0, "window_words": 40, "min_last_window_words": 10,
                  "min_latin_share": 0.8, "min_stopword_share": 0.1, "english_check_min_words": 15},
    }
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


@pytest.fixture
def tiny(tmp_path: Path) -> TextDetector:
    detector = build_text_detector(_tiny_weights(tmp_path))
    detector.load(Device(intra_op_threads=1))
    return detector


def _run(detector: TextDetector, texts: list[str]) -> list:
    prepared = [detector.preprocess(TextItem(t)) for t in texts]
    return detector.postprocess(prepared, detector.forward(prepared))


def test_missing_manifest_raises(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError):
        build_text_detector(tmp_path / "nowhere")


def test_missing_model_file_raises(tmp_path: Path) -> None:
    (_tiny_weights(tmp_path) / "model.onnx").unlink()
    with pytest.raises(WeightsMissingError):
        build_text_detector(tmp_path)


def test_tiny_model_scores_a_batch_like_single_items(tiny: TextDetector) -> None:
    texts = [ENGLISH * 3, ENGLISH, "Short text here."]
    batch = _run(tiny, texts)
    single = [_run(tiny, [t])[0] for t in texts]
    assert [o.raw_score for o in batch] == pytest.approx([o.raw_score for o in single], abs=1e-5)
    long = batch[0]
    assert long.probability is not None
    assert 0.0 <= long.probability <= 1.0
    assert long.verdict in (Verdict.LIKELY_AI, Verdict.UNCERTAIN, Verdict.LIKELY_HUMAN)
    assert long.evidence_unit == "words"
    assert long.extras["windows"] >= 2
    assert long.threshold == pytest.approx(0.9)


def test_short_text_abstains(tiny: TextDetector) -> None:
    (out,) = _run(tiny, ["The cat sat on the mat today."])
    assert out.verdict is Verdict.ABSTAIN
    assert out.probability is None
    assert out.abstain_reason == ABSTAIN_SHORT
    assert out.evidence == 7


@pytest.mark.parametrize(
    "text",
    [
        "Der Stadtrat hat am Dienstag über den neuen Haushalt der Stadt beraten. Die Mitglieder sagten, dass mit dem "
        "Plan zwei neue Schulen und eine Bibliothek bezahlt werden sollen, aber einige Bürger waren nicht zufrieden.",
        "Городской совет во вторник обсудил новый бюджет города. Члены совета заявили, что план позволит оплатить "
        "две новые школы и библиотеку, но некоторые жители были недовольны стоимостью проекта и просили подождать.",
    ],
)
def test_non_english_abstains(tiny: TextDetector, text: str) -> None:
    (out,) = _run(tiny, [text])
    assert out.verdict is Verdict.ABSTAIN
    assert out.abstain_reason == ABSTAIN_NOT_ENGLISH


def test_spans_point_into_the_submitted_text(tiny: TextDetector) -> None:
    text = "The c\u0430t s\u200bat on the mat. It was\u200d happy!\n\nThen it left the house and walked. " + ENGLISH
    (out,) = _run(tiny, [text])
    assert FLAG_ZERO_WIDTH in out.flags
    assert FLAG_HOMOGLYPHS in out.flags
    norm = normalise(text)
    expected = [norm.text[s:e] for s, e in sentence_spans(norm.text)]
    assert len(out.spans) == len(expected)
    for span, sentence in zip(out.spans, expected, strict=True):
        assert normalise(text[span.start : span.end]).text == sentence
        assert 0.0 <= span.probability <= 1.0
    assert text[out.spans[0].start : out.spans[0].end] == "The c\u0430t s\u200bat on the mat."
    assert text[out.spans[1].start : out.spans[1].end] == "It was\u200d happy!"


def test_normalise_maps_compatibility_characters_back() -> None:
    norm = normalise("ﬁne \ufeffday")
    assert norm.text == "fine day"
    assert norm.span_to_original(0, 4) == (0, 3)
    assert norm.span_to_original(5, 8) == (5, 8)


def test_sentence_spans_keep_abbreviations() -> None:
    text = "Mr. Smith went to Washington. He met Dr. Jones at 5 p.m. and left!  Then rain."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Mr. Smith went to Washington.", "He met Dr. Jones at 5 p.m. and left!", "Then rain."]


def test_windows_merge_a_short_tail() -> None:
    assert windows([30, 30, 30, 5], max_words=60, min_last=10) == [(0, 2), (2, 4)]
    assert windows([100], max_words=60, min_last=10) == [(0, 1)]


def test_features_are_deterministic_and_normalised() -> None:
    logfreq = np.zeros(FREQ_BUCKETS, dtype=np.float32)
    a = featurise(ENGLISH, N_BUCKETS, logfreq, -1.0)
    b = featurise(ENGLISH, N_BUCKETS, logfreq, -1.0)
    assert np.array_equal(a.indices, b.indices)
    assert float(np.sum(a.values.astype(np.float64) ** 2)) == pytest.approx(1.0, abs=1e-5)
    assert a.indices[:3].tolist() == [17, 18, 57]


def test_cleaning_removes_shortcuts_on_both_sides() -> None:
    text = "Sure, here is a rewritten version:\n\nShares of <FISN.L> rose. <County Ltd> said so.\n\nNote: this is fiction."
    assert clean_training_text(text, "news") == "Shares of rose. County Ltd said so."
    assert clean_training_text("Question: Why? Answer: Because it is.", "pubmed") == "Because it is."
    assert clean_training_text("I do n't know , he said . And then", "writing") == "I don't know, he said."


def test_split_is_a_function_of_the_group() -> None:
    assert split_of("l2r-abc", 0) == split_of("l2r-abc", 0)
    shares = [split_of(f"g{i}", 0) for i in range(2000)]
    assert 0.65 < shares.count("train") / 2000 < 0.75


def test_metrics_on_known_values() -> None:
    y = np.array([0, 0, 1, 1])
    assert auroc(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert auroc(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert tpr_at_fpr(y, np.array([0.1, 0.4, 0.35, 0.8]), 0.0) == pytest.approx(0.5)


def _test_split_rows(per_file: int) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for name in DATA_FILES:
        with (DATA / name).open(encoding="utf-8") as fh:
            picked = [r for r in map(json.loads, fh) if split_of(r["pair_id"] or r["id"], 0) == "test"]
        for r in picked[:: max(1, len(picked) // per_file)][:per_file]:
            rows.append({"text": clean_training_text(r["text"], r["domain"]), "label": r["label"],
                         "domain": r["domain"], "generator": r["generator"] or ""})
    return rows


@pytest.mark.skipif(not (DATA / DATA_FILES[0]).is_file(), reason="shared text data set not present")
def test_shipped_first_stage_reaches_the_auroc_bar() -> None:
    detector = build_text_detector(WEIGHTS, lm_mode="off")
    assert detector.manifest.extra["seed"] == 0
    detector.load(Device(intra_op_threads=1))
    result = evaluate_rows(detector, _test_split_rows(per_file=150))
    assert result["overall"]["n"] == 600
    assert result["overall"]["coverage"] > 0.7
    assert result["overall"]["auroc"] >= SHIPPED_AUROC_BAR, format_evaluation(result)
    lo, hi = result["overall_ci"]["auroc"]  # the eval command's interval brackets its own point estimate
    assert lo <= result["overall"]["auroc"] <= hi
    assert hi - lo > 0.001
    assert "95% intervals" in format_evaluation(result)
    for group in (*result["per_domain"].values(), *result["per_generator"].values()):  # each group's AUROC interval
        if group["auroc"] is not None:
            assert group["auroc_ci"][0] - 1e-9 <= group["auroc"] <= group["auroc_ci"][1] + 1e-9
    assert "auroc_95ci" in format_evaluation(result)


@pytest.mark.skipif(not (DATA / DATA_FILES[0]).is_file(), reason="shared text data set not present")
def test_shipped_cascade_reaches_the_auroc_bar_and_uses_the_lm() -> None:
    detector = build_text_detector(WEIGHTS)
    detector.load(Device(intra_op_threads=1))
    rows = _test_split_rows(per_file=20)
    outputs = run_detector(detector, [r["text"] for r in rows])
    result = evaluate_outputs(rows, outputs, detector.thresholds.likely_ai)
    lm_path = [o.extras.get("lm_path") for o in outputs if o.probability is not None]
    assert result["overall"]["n"] == 80
    assert 0.1 < float(np.mean(lm_path)) < 0.8  # the cascade band sends some texts, not all, to SmolLM2 (0.22 here)
    assert result["overall"]["auroc"] >= CASCADE_AUROC_BAR, format_evaluation(result)


def test_inference_imports_neither_torch_nor_sklearn() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from detectors.contract import Device, TextItem\n"
        "from detectors.text import build_text_detector\n"
        "d = build_text_detector(Path('weights/text'))\n"
        "d.load(Device(intra_op_threads=1))\n"
        "p = [d.preprocess(TextItem('The council met on Tuesday to talk about the budget. ' * 20))]\n"
        "d.postprocess(p, d.forward(p))\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'scipy', 'onnx') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
