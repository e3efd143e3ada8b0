"""Unicode normalisation with an offset map, sentence splitting and word counting (pure Python).

Caveats first: normalisation is per character (NFKC of each code point), so a combining sequence is
not composed; zero-width characters are dropped; common Cyrillic/Greek look-alikes are mapped to Latin
only when the text is mostly Latin (a Russian text keeps its letters and is later judged not English).
Every normalised character remembers the index of the submitted character it came from, so spans
found on the normalised text map back to offsets into the text exactly as submitted.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u200e\u200f\u202a\u202b\u202c\u202d\u202e")

HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "\u0430": "a",
    "\u0435": "e",
    "\u043e": "o",
    "\u0440": "p",
    "\u0441": "c",
    "\u0443": "y",
    "\u0445": "x",
    "\u0456": "i",
    "\u0458": "j",
    "\u0455": "s",
    "\u04bb": "h",
    "\u0501": "d",
    "\u051b": "q",
    "\u051d": "w",
    "\u0410": "A",
    "\u0412": "B",
    "\u0415": "E",
    "\u041a": "K",
    "\u041c": "M",
    "\u041d": "H",
    "\u041e": "O",
    "\u0420": "P",
    "\u0421": "C",
    "\u0422": "T",
    "\u0425": "X",
    "\u0406": "I",
    "\u0408": "J",
    "\u0405": "S",
    # Greek
    "\u03bf": "o",
    "\u03b1": "a",
    "\u03b9": "i",
    "\u03bd": "v",
    "\u03c1": "p",
    "\u03ba": "k",
    "\u03c5": "u",
    "\u0391": "A",
    "\u0392": "B",
    "\u0395": "E",
    "\u0396": "Z",
    "\u0397": "H",
    "\u0399": "I",
    "\u039a": "K",
    "\u039c": "M",
    "\u039d": "N",
    "\u039f": "O",
    "\u03a1": "P",
    "\u03a4": "T",
    "\u03a5": "Y",
    "\u03a7": "X",
}

FLAG_ZERO_WIDTH = "zero_width_removed"
FLAG_HOMOGLYPHS = "homoglyphs_normalised"
FLAG_NFKC = "unicode_compatibility_normalised"

_WORD_RE = re.compile(r"\w+(?:['\u2019]\w+)*")
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "inc",
        "ltd",
        "co",
        "corp",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "no",
        "gen",
        "gov",
        "sen",
        "rep",
        "u.s",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
        "fig",
        "al",
    ]
)
_SENTENCE_END_RE = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|\n\s*\n|\n(?=\s*[-*\u2022])")


@dataclass(frozen=True)
class NormalisedText:
    """``text`` after normalisation; ``origin[i]`` is the submitted index of ``text[i]``."""

    text: str
    origin: tuple[int, ...]
    flags: tuple[str, ...]

    def span_to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a ``[start, end)`` span of ``text`` (end > start) to submitted-text offsets."""
        return self.origin[start], self.origin[end - 1] + 1


def _latin_share(text: str) -> float:
    latin = other = 0
    for ch in text:
        if ch.isalpha():
            if ch.isascii() or "LATIN" in unicodedata.name(ch, ""):
                latin += 1
            elif ch not in HOMOGLYPHS:
                other += 1
    return latin / max(latin + other, 1)


def normalise(text: str) -> NormalisedText:
    """NFKC per character, zero-width removal and homoglyph mapping, keeping the offset map."""
    if text.isascii():
        return NormalisedText(text, tuple(range(len(text))), ())
    map_homoglyphs = _latin_share(text) >= 0.5
    out: list[str] = []
    origin: list[int] = []
    flags: set[str] = set()
    for i, ch in enumerate(text):
        if ch in ZERO_WIDTH:
            flags.add(FLAG_ZERO_WIDTH)
            continue
        norm = unicodedata.normalize("NFKC", ch) if not ch.isascii() else ch
        if norm != ch and ch not in HOMOGLYPHS:
            flags.add(FLAG_NFKC)
        for c in norm:
            if map_homoglyphs and c in HOMOGLYPHS:
                flags.add(FLAG_HOMOGLYPHS)
                c = HOMOGLYPHS[c]
            out.append(c)
            origin.append(i)
    return NormalisedText("".join(out), tuple(origin), tuple(sorted(flags)))


def words(text: str) -> list[str]:
    """Word tokens (letters/digits with inner apostrophes)."""
    return _WORD_RE.findall(text)


def word_count(text: str) -> int:
    return len(_WORD_RE.findall(text))


def _is_abbreviation(text: str, end: int) -> bool:
    """True when the period ending at ``end`` closes a known abbreviation or an initial."""
    j = end - 1
    while j >= 0 and (text[j].isalpha() or text[j] == "."):
        j -= 1
    token = text[j + 1 : end].rstrip(".").lower()
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha())


def sentence_ends(text: str) -> list[int]:
    """Offsets where ``sentence_spans`` cuts ``text``: ends of sentence-ending marks (a lone period after
    an abbreviation or an initial is not one), paragraph breaks and line breaks before list bullets.

    Without line breaks (canonical text) a cut follows a mark that holds no whitespace and is followed by
    whitespace, so the cuts inside a whitespace-bounded piece of ``text`` are those of the piece alone,
    plus one at its end when the piece ends with such a mark and whitespace follows it."""
    ends: list[int] = []
    for match in _SENTENCE_END_RE.finditer(text):
        if match.group().startswith(".") and len(match.group()) == 1 and _is_abbreviation(text, match.start()):
            continue
        ends.append(match.end())
    return ends


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` spans of sentences in ``text``, whitespace trimmed, in order."""
    spans: list[tuple[int, int]] = []
    start = 0
    for end in sentence_ends(text):
        _append_trimmed(text, start, end, spans)
        start = end
    _append_trimmed(text, start, len(text), spans)
    return spans


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def windows(counts: list[int], max_words: int, min_last: int) -> list[tuple[int, int]]:
    """Group consecutive sentences (by word ``counts``) into ``[first, last)`` sentence-index windows.

    A window closes once it holds ``max_words`` words (a longer single sentence is its own window); a
    final window under ``min_last`` words joins the one before it.
    """
    groups: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, n in enumerate(counts):
        if total and total + n > max_words:
            groups.append((start, i))
            start, total = i, 0
        total += n
    if start < len(counts):
        if groups and total < min_last:
            groups[-1] = (groups[-1][0], len(counts))
        else:
            groups.append((start, len(counts)))
    return groups
