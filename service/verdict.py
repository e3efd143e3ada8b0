"""Combine the parts of a check into one verdict with short reason codes.

Rules (in order):
1. A headshot with a ``proves_ai`` provenance finding (valid C2PA or IPTC declaration of AI
   generation) is ``likely_ai`` whatever its classifier says.
2. Any part ``likely_ai`` makes the check ``likely_ai``.
3. If every part abstained (or there is none), the check abstains.
4. Any ``uncertain`` part, or a headshot re-used under another byline, makes it ``uncertain``.
5. Otherwise ``likely_human``.
"""

from __future__ import annotations

from collections.abc import Sequence

from detectors.contract import Verdict
from service.schemas import HeadshotReport, TextReport


def headshot_verdict(classifier: Verdict, proves_ai: bool) -> tuple[Verdict, list[str]]:
    if proves_ai:
        return Verdict.LIKELY_AI, ["provenance_declares_ai"]
    return classifier, []


def combine(text: TextReport | None, headshots: Sequence[HeadshotReport]) -> tuple[Verdict, list[str]]:
    reasons: list[str] = []
    verdicts: list[Verdict] = []
    if text is not None:
        verdicts.append(text.verdict)
        reasons.append(f"text_{text.verdict.value}" if text.abstain_reason is None
                       else f"text_abstain:{text.abstain_reason}")
    reused = False
    for h in headshots:
        verdicts.append(h.verdict)
        reasons.append(f"headshot_{h.index}_{h.verdict.value}" if h.abstain_reason is None
                       else f"headshot_{h.index}_abstain:{h.abstain_reason}")
        reasons.extend(f"headshot_{h.index}_{r}" for r in h.reasons)
        if h.reuse:
            reused = True
            reasons.append(f"headshot_{h.index}_reused_under_other_byline")
    if Verdict.LIKELY_AI in verdicts:
        return Verdict.LIKELY_AI, reasons
    judged = [v for v in verdicts if v is not Verdict.ABSTAIN]
    if not judged:
        return Verdict.ABSTAIN, reasons
    if Verdict.UNCERTAIN in judged or reused:
        return Verdict.UNCERTAIN, reasons
    return Verdict.LIKELY_HUMAN, reasons
