"""Training-data cleaning that removes source shortcuts from both labels alike (training side).

Caveats first: these rules target artefacts of the staged data sets (see the data README), not
anything a submitted article would carry: Reuters ticker markup (``<FISN.L>``), chat preambles
("Sure, here is ..."), trailing disclaimers ("Note: this article is fictional"), the PubMedQA
"Question: ... Answer:" frame, WritingPrompts tokenisation (``do n't``, ``[ WP ]``), and texts cut
mid-sentence (scrapes cut at 4,000 characters, pairs cut to equal word counts). Inference does not
apply them.
"""

from __future__ import annotations

import re

BAO_DOMAINS = frozenset({"writing", "squad", "pubmed"})
_MARKUP_RE = re.compile(r"<([^<>\n]{1,80})>")
_TICKER_RE = re.compile(r"[A-Z0-9.\-&]+")
_PREAMBLE_RE = re.compile(
    r"\A\s*(?:sure|certainly|of course|okay|ok|absolutely|here is|here's|here are|as requested|i have|i've)\b"
    r"[^\n]{0,300}?(?::|\n)\s*",
    re.IGNORECASE,
)
_TITLE_RE = re.compile(r"\A\s*(?:title|headline)\s*:[^\n]{0,200}\n\s*", re.IGNORECASE)
_DISCLAIMER_START_RE = re.compile(r"\s*[\(\[*]*\s*(?:note|disclaimer|please note|editor's note)\b", re.IGNORECASE)
_DISCLAIMER_ANY_RE = re.compile(
    r"\bthis (?:article|story|piece|news(?: article)?|report) (?:is|was) (?:entirely |completely |purely )?"
    r"(?:fictional|fictitious|fake|a work of fiction|misinformation)",
    re.IGNORECASE,
)
_QA_RE = re.compile(r"\A\s*Question:.{0,1000}?\bAnswer:\s*", re.DOTALL)
_WP_TAG_RE = re.compile(r"\[ ?[A-Z]{2} ?\]\s*")
_DETOK = (
    (re.compile(r" n't\b"), "n't"),
    (re.compile(r" (['\u2019](?:s|re|ve|ll|d|m))\b", re.IGNORECASE), r"\1"),
    (re.compile(r" ([.,!?;:%)])"), r"\1"),
    (re.compile(r"([($]) "), r"\1"),
    (re.compile(r"`` ?| ?''"), '"'),
    (re.compile(r"<newline>\s*"), "\n"),
)
_SENT_END_RE = re.compile(r"[.!?][\"'\u201d\u2019)]*")


def _markup(match: re.Match[str]) -> str:
    inner = match.group(1).strip()
    return "" if _TICKER_RE.fullmatch(inner) else inner


def strip_markup(text: str) -> str:
    return re.sub(r"[ \t]{2,}", " ", _MARKUP_RE.sub(_markup, text))


def strip_preamble(text: str) -> str:
    stripped = _PREAMBLE_RE.sub("", text, count=1)
    return _TITLE_RE.sub("", stripped, count=1)


def strip_disclaimers(text: str) -> str:
    """Drop up to two final paragraphs (<= 400 characters) that are notes or 'this is fictional' lines."""
    for _ in range(2):
        text = text.rstrip()
        cut = text.rfind("\n")
        last = text[cut + 1 :]
        if cut < 0 or len(last) > 400:
            break
        if not (_DISCLAIMER_START_RE.match(last) or _DISCLAIMER_ANY_RE.search(last)):
            break
        text = text[:cut]
    return text


def detokenise(text: str) -> str:
    text = _WP_TAG_RE.sub("", text)
    for pattern, repl in _DETOK:
        text = pattern.sub(repl, text)
    return text


def cut_to_sentence(text: str) -> str:
    """Drop a trailing fragment after the last sentence end, if that end lies past mid-text."""
    text = text.rstrip()
    if not text or _SENT_END_RE.fullmatch(text[-1]) or text[-1] in "\"'\u201d\u2019)":
        return text
    ends = [m.end() for m in _SENT_END_RE.finditer(text)]
    if ends and ends[-1] >= len(text) // 2:
        return text[: ends[-1]]
    return text


def clean_training_text(text: str, domain: str = "") -> str:
    """All rules, in order; the same for human and AI texts of a domain.

    Markup stripping runs on news only and de-tokenising on the Bao et al. domains (where those
    artefacts occur), so code and other formats keep their brackets and quotes.
    """
    text = _QA_RE.sub("", text, count=1)
    if domain.startswith("news"):
        text = strip_markup(text)
    text = strip_preamble(text)
    text = strip_disclaimers(text)
    if domain in BAO_DOMAINS:
        text = detokenise(text)
    return cut_to_sentence(text).strip()
