"""Sentence spans and token windows for text classifiers, with character offsets into the submitted text.

Caveats first: the sentence splitter is a small regex (terminal punctuation followed by white space,
or a blank line); it does not normalise the text, so offsets refer to the text exactly as submitted.
A sentence longer than a window becomes a window of its own and is truncated by the tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|\n\s*\n")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` of each non-blank sentence, stripped of surrounding white space."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    stripped = []
    for a, b in spans:
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if b - trail > a + lead:
            stripped.append((a + lead, b - trail))
    return stripped


def group_windows(counts: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Greedy groups ``[a, b)`` of consecutive sentences whose token counts sum to at most ``budget``."""
    groups: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, n in enumerate(counts):
        if i > start and total + n > budget:
            groups.append((start, i))
            start, total = i, 0
        total += n
    if start < len(counts):
        groups.append((start, len(counts)))
    return groups
