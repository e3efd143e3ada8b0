"""Small inline-SVG charts for the self-contained HTML report (no scripts, no external assets).

Caveats first: every label is XML-escaped here; callers pass plain strings. Sizes are in CSS pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = {"ai": "#c0392b", "human": "#2e86c1", "neutral": "#7f8c8d", "uncertain": "#f39c12", "energy": "#27ae60"}
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}"><title>{escape(title)}</title>'
            + "".join(body) + "</svg>")


def _nice_max(value: float) -> float:
    return value if value > 0 else 1.0


def column_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], *,
                 width: int = 640, height: int = 260, label_every: int = 1) -> str:
    """Grouped vertical bars: one group per label, one bar per series ``(name, values, colour)``."""
    left, bottom, top = 40, 40, 24
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = _nice_max(max((v for _, values, _ in series for v in values), default=0.0))
    group_w = plot_w / max(1, len(labels))
    bar_w = max(1.0, group_w * 0.8 / max(1, len(series)))
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#333"/>',
            f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" {FONT}>{peak:g}</text>',
            f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" {FONT}>0</text>']
    for i, label in enumerate(labels):
        x0 = left + i * group_w + group_w * 0.1
        for j, (name, values, colour) in enumerate(series):
            h = plot_h * values[i] / peak
            body.append(f'<rect class="bar" x="{x0 + j * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                        f'height="{h:.1f}" fill="{colour}"><title>{escape(f"{label} {name}: {values[i]:g}")}</title></rect>')
        if i % label_every == 0:
            body.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                        f'{FONT}>{escape(label)}</text>')
    body.extend(_legend(series, left, 14))
    return _frame(width, height, title, body)


def _legend(series: Sequence[tuple[str, Sequence[float], str]], x: int, y: int) -> list[str]:
    parts = []
    for name, _values, colour in series:
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{y}" {FONT}>{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return parts


def bar_chart(title: str, rows: Sequence[tuple[str, float, str]], *, max_value: float | None = None,
              width: int = 640, unit: str = "") -> str:
    """Horizontal bars ``(label, value, colour)``, one per row, with the value printed after the bar."""
    row_h, left, top = 22, 250, 10
    height = top * 2 + row_h * max(1, len(rows))
    peak = _nice_max(max_value if max_value is not None else max((v for _, v, _ in rows), default=0.0))
    plot_w = width - left - 80
    body = []
    for i, (label, value, colour) in enumerate(rows):
        y = top + i * row_h
        w = max(1.0, plot_w * min(value, peak) / peak) if value > 0 else 0.0
        body.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" {FONT}>{escape(label[:40])}</text>'
                    f'<rect class="bar" x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}">'
                    f'<title>{escape(f"{label}: {value:g}{unit}")}</title></rect>'
                    f'<text x="{left + w + 4:.1f}" y="{y + 14}" {FONT}>{escape(f"{value:.3g}{unit}")}</text>')
    return _frame(width, height, title, body)
