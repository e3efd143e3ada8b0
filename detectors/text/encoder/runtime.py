"""Serving side of the fine-tuned MiniLM-L6 window classifier: tokenise, cut into windows, one ONNX call.

Needs numpy, tokenizers and onnxruntime only. A text (already ``normalise``d) is tokenised with
all-MiniLM-L6-v2's uncased WordPiece (the manifest's tokenizer file), cut into at most ``MAX_WINDOWS``
windows of ``WINDOW`` wordpieces (a later window shorter than ``MIN_TAIL`` is dropped), each framed by
[CLS] ... [SEP]; the text's logit is the mean of its windows' logits. Training cut the texts with this code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

WINDOW = 254  # wordpieces per window, [CLS] and [SEP] added around them (256 positions)
MAX_WINDOWS = 2  # about the first 400 words; more windows cost CPU at serving time for little gain
MIN_TAIL = 32  # a later window shorter than this is dropped (the first window is always kept)
CLS, SEP, PAD = 101, 102, 0
MAX_CHARS_PER_PIECE = 24  # tokenise a prefix only: MAX_WINDOWS windows never need more characters than this


def windows(ids: Sequence[int]) -> list[list[int]]:
    """The wordpiece windows a text is scored on (without [CLS]/[SEP]; one empty window for no wordpieces)."""
    ids = list(ids)
    out = [ids[i:i + WINDOW] for i in range(0, min(len(ids), MAX_WINDOWS * WINDOW), WINDOW)]
    return [w for k, w in enumerate(out) if k == 0 or len(w) >= MIN_TAIL] or [[]]


def load_tokenizer(path: Path) -> Any:
    """The WordPiece tokenizer, without the packaged file's 128-piece truncation and padding."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return tok


def batch_arrays(per_text: Sequence[list[list[int]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64, windows x positions) and each window's text index."""
    flat = [w for ws in per_text for w in ws]
    width = max(len(w) for w in flat) + 2
    ids = np.full((len(flat), width), PAD, dtype=np.int64)
    mask = np.zeros((len(flat), width), dtype=np.int64)
    for j, w in enumerate(flat):
        ids[j, 0], ids[j, 1:len(w) + 1], ids[j, len(w) + 1] = CLS, w, SEP
        mask[j, : len(w) + 2] = 1
    owner = np.array([i for i, ws in enumerate(per_text) for _ in ws], dtype=np.int64)
    return ids, mask, owner


class EncoderScorer:
    """Mean window logit of normalised texts (higher is AI) from the ONNX session ``session``."""

    def __init__(self, tokenizer_path: Path, session: Any) -> None:
        self.tokenizer = load_tokenizer(tokenizer_path)
        self.session = session

    def windows_of(self, texts: Sequence[str]) -> list[list[list[int]]]:
        cap = MAX_WINDOWS * WINDOW * MAX_CHARS_PER_PIECE
        # One text at a time on the caller's thread: ``encode_batch`` would start the tokenizers library's own thread
        # pool inside the service's worker (CPU that no check is billed for).
        return [windows(self.tokenizer.encode(t[:cap], add_special_tokens=False).ids) for t in texts]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """One float per text. Each window is its own ONNX call: the int8 graph quantises activations with one scale
        per call, so windows batched together (and their padding) would move each other's logits (by up to 0.27
        measured); alone, a window's logit depends on that window only."""
        per_text = self.windows_of(texts)
        out = np.zeros(len(texts))
        for i, ws in enumerate(per_text):
            z = []
            for w in ws:
                ids, mask, _ = batch_arrays([[w]])
                (logit,) = self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})
                z.append(float(np.asarray(logit).reshape(-1)[0]))
            out[i] = float(np.mean(z))
        return out
