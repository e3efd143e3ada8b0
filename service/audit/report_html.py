"""The audit's self-contained HTML report: summary, four inline-SVG charts and the author table.

Caveats first: no scripts, no external assets; a Content-Security-Policy forbids loading anything,
and every value taken from the archive is escaped. Scores are probabilities, not findings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from service.audit.checkpoint import ItemResult
from service.audit.rollup import AI_SHARE_FLAG, PHP_J_PER_INFERENCE, PHP_SOURCE
from service.audit.svg import PALETTE, bar_chart, column_chart

CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem}.muted{color:#666}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left}tr.flagged{background:#fdecea}
.figs{display:grid;grid-template-columns:1fr 1fr;gap:1rem}figure{margin:0}figcaption{font-weight:600}
.kpi{display:inline-block;margin-right:2rem}.kpi b{font-size:1.4rem;display:block}code{font-size:12px}"""


@dataclass
class ChartData:
    """What the charts need, accumulated result by result (memory: bins and months only)."""

    bins: int = 10
    likely_ai_bins: list[float] = field(default_factory=lambda: [0.0] * 10)
    other_bins: list[float] = field(default_factory=lambda: [0.0] * 10)
    month_total: Counter[str] = field(default_factory=Counter)
    month_ai: Counter[str] = field(default_factory=Counter)
    energy_methods: Counter[str] = field(default_factory=Counter)

    def add(self, result: ItemResult) -> None:
        report = result.report
        if report is None:
            return
        text = report.get("text") or {}
        if text.get("ai_probability") is not None:
            target = self.likely_ai_bins if text.get("verdict") == "likely_ai" else self.other_bins
            target[min(self.bins - 1, int(float(text["ai_probability"]) * self.bins))] += 1
        energy = report.get("energy") or {}
        if energy.get("joules") is not None:
            self.energy_methods[str(energy.get("source"))] += 1
        if result.published:
            self.month_total[result.published[:7]] += 1
            self.month_ai[result.published[:7]] += report["verdict"] == "likely_ai"


def score_histogram(data: ChartData) -> str:
    labels = [f"{i / data.bins:.1f}" for i in range(data.bins)]
    return column_chart("Distribution of text AI probability", labels,
                        [("likely_ai", data.likely_ai_bins, PALETTE["ai"]), ("other", data.other_bins, PALETTE["human"])])


def author_bars(authors: Sequence[dict[str, Any]], limit: int = 25) -> str:
    rows = [(a["author"], float(a["share_likely_ai"] or 0.0), PALETTE["ai"] if a["flagged"] else PALETTE["neutral"])
            for a in authors[:limit]]
    return bar_chart("Share of likely_ai articles per author", rows, max_value=1.0)


def timeline(data: ChartData) -> str:
    months = sorted(data.month_total)
    every = max(1, len(months) // 12)
    return column_chart("Articles per month: all checked vs likely_ai", months,
                        [("checked", [float(data.month_total[m]) for m in months], PALETTE["neutral"]),
                         ("likely_ai", [float(data.month_ai[m]) for m in months], PALETTE["ai"])], label_every=every)


def energy_chart(summary: dict[str, Any], data: ChartData) -> str:
    how = " + ".join(data.energy_methods) or "none measured"
    rows = [(f"this audit: {how}", float(summary["energy_j"]), PALETTE["energy"]),
            ("Power Hungry Processing", float(summary["php_predicted_energy_j"]), PALETTE["neutral"])]
    return bar_chart("Energy of this audit's inferences (J)", rows, unit=" J")


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return escape(", ".join(str(v) for v in value))
    if isinstance(value, dict):
        return escape(", ".join(f"{k}: {v}" for k, v in value.items()))
    return "" if value is None else escape(f"{value:.3g}" if isinstance(value, float) else str(value))


COLUMNS = ("author", "articles", "checked", "likely_ai", "share_likely_ai", "mean_text_probability",
           "max_text_probability", "headshot_verdicts", "headshot_reused_with", "first_published", "last_published",
           "energy_j", "reasons")


def author_table(authors: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "".join(f'<tr class="{"flagged" if a["flagged"] else ""}">' + "".join(f"<td>{_cell(a[c])}</td>" for c in COLUMNS)
                   + "</tr>" for a in authors)
    return f'<table id="authors"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kpis(summary: dict[str, Any]) -> str:
    items = [("articles", summary["articles"]), ("checked", summary["checked"]), ("likely_ai", summary["likely_ai"]),
             ("authors", summary["authors"]), ("flagged authors", len(summary["flagged_authors"])),
             ("energy (J)", f'{summary["energy_j"]:.4g}')]
    return "".join(f'<span class="kpi"><b>{escape(str(v))}</b>{escape(k)}</span>' for k, v in items)


def render(meta: dict[str, Any], summary: dict[str, Any], authors: Sequence[dict[str, Any]], charts: ChartData) -> str:
    figures = [("Score distribution", score_histogram(charts)), ("Per-author share", author_bars(authors)),
               ("Timeline", timeline(charts)), ("Energy", energy_chart(summary, charts))]
    figs = "".join(f"<figure><figcaption>{escape(t)}</figcaption>{svg}</figure>" for t, svg in figures)
    php = ", ".join(f"{k}: {v:.1f} J per inference" for k, v in PHP_J_PER_INFERENCE.items())
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>bylinecheck audit {escape(meta["audit_id"])}</title><style>{CSS}</style></head><body>
<h1>Byline audit</h1><p class="muted">Audit <code>{escape(meta["audit_id"])}</code> of <code>{escape(meta["input"])}</code>
({escape(meta["format"])}), engine {escape(meta["engine"])}, written {escape(meta["written_at"])}.</p>
<section id="summary">{_kpis(summary)}</section>
<h2>Charts</h2><div class="figs">{figs}</div>
<h2>Authors</h2>{author_table(authors)}
<h2>How to read this</h2><ul>
<li>An author is flagged with reason codes: <code>ai_share_high</code> (at least {AI_SHARE_FLAG:.0%} of judged articles
likely_ai), <code>headshot_likely_ai</code>, <code>headshot_declared_ai</code> (C2PA/IPTC provenance),
<code>headshot_reused</code> (same face or image under another byline). A flag is a reason to look, not a finding.</li>
<li>Energy is what the service measured or estimated for its own inferences (see each report's
<code>energy.method</code>). The comparison uses {escape(php)}: {escape(PHP_SOURCE)}.</li>
<li>Detectors: {escape(", ".join(f"{k}={v}" for k, v in meta.get("detectors", {}).items()) or "none recorded")}.</li>
</ul></body></html>"""
