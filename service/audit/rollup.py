"""Per-author roll-up of an audit's reports, with the reasons an author is flagged.

Caveats first: a flag is a reason to look, not a finding. Reason codes:

- ``ai_share_high``: at least ``AI_SHARE_FLAG`` of the author's judged articles are ``likely_ai``;
- ``headshot_likely_ai``: a headshot was judged ``likely_ai`` by the face detector;
- ``headshot_declared_ai``: a headshot's provenance (C2PA / IPTC) declares AI generation;
- ``headshot_reused``: the same face or image appears under another byline (from the reports'
  ``headshots[].reuse``, and across this audit's authors by perceptual hash).

Energy is summed from the reports; "Power Hungry Processing" predictions use :data:`PHP_J_PER_INFERENCE`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from detectors.provenance import hash_distance
from service.audit.checkpoint import ItemResult
from service.store.repository import byline_key

AI_SHARE_FLAG = 0.5
NO_BYLINE = "(no byline)"
PHP_SOURCE = ("Luccioni, Jernite & Strubell, 'Power Hungry Processing: Watts Driving the Cost of AI Deployment?', "
              "ACM FAccT 2024 (arXiv:2311.16863): mean energy per 1,000 inferences on an NVIDIA A100, approximate "
              "figures: text classification ~0.002 kWh, image classification ~0.007 kWh")
PHP_J_PER_INFERENCE = {"text": 0.002 * 3.6e6 / 1000, "image": 0.007 * 3.6e6 / 1000}


@dataclass
class AuthorRollup:
    name: str
    articles: int = 0
    checked: int = 0
    errors: int = 0
    judged: int = 0
    likely_ai: int = 0
    probability_sum: float = 0.0
    probability_count: int = 0
    probability_max: float | None = None
    headshot_verdicts: Counter[str] = field(default_factory=Counter)
    reused_with: set[str] = field(default_factory=set)
    phashes: set[str] = field(default_factory=set)
    declared_ai: bool = False
    first_published: str | None = None
    last_published: str | None = None
    energy_j: float = 0.0
    text_inferences: int = 0
    image_inferences: int = 0

    def add(self, result: ItemResult) -> None:
        self.articles += 1
        if result.published:
            self.first_published = min(result.published, self.first_published or result.published)
            self.last_published = max(result.published, self.last_published or result.published)
        if result.report is None:
            self.errors += 1
            return
        self.checked += 1
        self._add_report(result.report)

    def _add_report(self, report: dict[str, Any]) -> None:
        if report["verdict"] != "abstain":
            self.judged += 1
        self.likely_ai += report["verdict"] == "likely_ai"
        text = report.get("text") or {}
        if text.get("ai_probability") is not None:
            probability = float(text["ai_probability"])
            self.probability_sum += probability
            self.probability_count += 1
            self.probability_max = max(probability, self.probability_max if self.probability_max is not None else 0.0)
        self.text_inferences += bool(text.get("model"))
        for shot in report.get("headshots") or []:
            self.headshot_verdicts[shot["verdict"]] += 1
            self.image_inferences += bool(shot.get("model"))
            self.declared_ai |= "provenance_declares_ai" in (shot.get("reasons") or [])
            self.reused_with.update(m["byline"] or NO_BYLINE for m in shot.get("reuse") or [])
            if shot.get("phash"):
                self.phashes.add(shot["phash"])
        self.energy_j += float((report.get("energy") or {}).get("joules") or 0.0)

    def flags(self) -> list[str]:
        reasons = []
        if self.judged and self.likely_ai / self.judged >= AI_SHARE_FLAG:
            reasons.append("ai_share_high")
        if self.headshot_verdicts["likely_ai"]:
            reasons.append("headshot_likely_ai")
        if self.declared_ai:
            reasons.append("headshot_declared_ai")
        if self.reused_with:
            reasons.append("headshot_reused")
        return reasons

    def as_dict(self) -> dict[str, Any]:
        mean = self.probability_sum / self.probability_count if self.probability_count else None
        return {
            "author": self.name, "articles": self.articles, "checked": self.checked, "errors": self.errors,
            "likely_ai": self.likely_ai, "share_likely_ai": round(self.likely_ai / self.judged, 4) if self.judged else None,
            "mean_text_probability": None if mean is None else round(mean, 4),
            "max_text_probability": None if self.probability_max is None else round(self.probability_max, 4),
            "headshot_verdicts": dict(sorted(self.headshot_verdicts.items())),
            "headshot_reused_with": sorted(self.reused_with),
            "first_published": self.first_published, "last_published": self.last_published,
            "energy_j": round(self.energy_j, 6), "text_inferences": self.text_inferences,
            "image_inferences": self.image_inferences, "flagged": bool(self.flags()), "reasons": self.flags(),
        }


def _link_shared_headshots(authors: dict[str, AuthorRollup], max_distance: int) -> None:
    """Authors in this audit whose headshots are within ``max_distance`` bits of each other's."""
    items = list(authors.values())
    for i, first in enumerate(items):
        for second in items[i + 1:]:
            if any(hash_distance(a, b) <= max_distance for a in first.phashes for b in second.phashes):
                first.reused_with.add(second.name)
                second.reused_with.add(first.name)


class Rollup:
    """Streams results in (``add``), then gives the per-author rows (``authors``); memory grows with authors only."""

    def __init__(self, phash_max_distance: int = 10) -> None:
        self.phash_max_distance = phash_max_distance
        self._authors: dict[str, AuthorRollup] = {}

    def add(self, result: ItemResult) -> None:
        key = byline_key(result.byline) or NO_BYLINE
        self._authors.setdefault(key, AuthorRollup(result.byline or NO_BYLINE)).add(result)

    def authors(self) -> list[dict[str, Any]]:
        """One dict per author: flagged authors first, then by share of likely_ai articles."""
        _link_shared_headshots(self._authors, self.phash_max_distance)
        rows = [a.as_dict() for a in self._authors.values()]
        rows.sort(key=lambda r: (not r["flagged"], -(r["share_likely_ai"] or 0.0), -r["articles"], r["author"]))
        return rows


def roll_up(results: Iterable[ItemResult], phash_max_distance: int = 10) -> list[dict[str, Any]]:
    rollup = Rollup(phash_max_distance)
    for result in results:
        rollup.add(result)
    return rollup.authors()


def totals(authors: list[dict[str, Any]]) -> dict[str, Any]:
    """Audit-wide numbers, including the Power Hungry Processing prediction for the same inferences."""
    text_n = sum(a["text_inferences"] for a in authors)
    image_n = sum(a["image_inferences"] for a in authors)
    predicted = text_n * PHP_J_PER_INFERENCE["text"] + image_n * PHP_J_PER_INFERENCE["image"]
    return {
        "articles": sum(a["articles"] for a in authors), "checked": sum(a["checked"] for a in authors),
        "errors": sum(a["errors"] for a in authors), "likely_ai": sum(a["likely_ai"] for a in authors),
        "authors": len(authors), "flagged_authors": [a["author"] for a in authors if a["flagged"]],
        "energy_j": round(sum(a["energy_j"] for a in authors), 6), "text_inferences": text_n,
        "image_inferences": image_n, "php_predicted_energy_j": round(predicted, 3),
        "php_j_per_inference": PHP_J_PER_INFERENCE, "php_source": PHP_SOURCE,
    }
