"""Server-rendered SVG charts: horizontal bars for rankings and rates, columns for a unit's months."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

COLOURS = {"good": "#1a7f37", "warn": "#d98c00", "bad": "#b42318", "main": "#7a1f2b", "none": "#c8ccd0"}


@dataclass
class Bar:
    """One bar: a label, a value on a 0..maximum scale, the text printed beside it, a colour name."""

    label: str
    value: float | None
    text: str
    tone: str = "main"


def bar_chart(bars: Sequence[Bar], *, title: str, maximum: float = 100.0, width: int = 440,
              testid: str = "chart") -> Markup:
    """Horizontal bars, one per row, labelled on the left: fits a phone's width for 40 units."""
    row, label_w, text_w = 18, 130, 70
    plot = width - label_w - text_w
    height = row * len(bars) + 8
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" data-testid="{escape(testid)}" '
             f'viewBox="0 0 {width} {height}" width="100%" aria-label="{escape(title)}"><title>{escape(title)}</title>')]
    for n, bar in enumerate(bars):
        y = 4 + n * row
        length = 0.0 if bar.value is None or maximum <= 0 else max(0.0, min(1.0, bar.value / maximum)) * plot
        colour = COLOURS.get(bar.tone, COLOURS["main"])
        parts.append(
            f'<text x="{label_w - 4}" y="{y + 12}" text-anchor="end" font-size="11">{escape(bar.label)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{length:.1f}" height="{row - 5}" fill="{colour}" rx="2"/>'
            f'<text x="{label_w + length + 4:.1f}" y="{y + 12}" font-size="11">{escape(bar.text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(columns: Sequence[Bar], *, title: str, maximum: float = 100.0, width: int = 440,
                 height: int = 160, testid: str = "columns") -> Markup:
    """Vertical columns, e.g. a unit's score month by month; an empty month shows a grey stub."""
    if not columns:
        return Markup("")
    gap = 4
    slot = (width - 10) / len(columns)
    plot = height - 34
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" data-testid="{escape(testid)}" '
             f'viewBox="0 0 {width} {height}" width="100%" aria-label="{escape(title)}"><title>{escape(title)}</title>')]
    for n, column in enumerate(columns):
        x = 5 + n * slot
        value = column.value
        tall = 2.0 if value is None else max(2.0, min(1.0, value / maximum) * plot)
        colour = COLOURS["none"] if value is None else COLOURS.get(column.tone, COLOURS["main"])
        parts.append(
            f'<rect x="{x + gap / 2:.1f}" y="{14 + plot - tall:.1f}" width="{slot - gap:.1f}" '
            f'height="{tall:.1f}" fill="{colour}" rx="2"/>'
            f'<text x="{x + slot / 2:.1f}" y="{12 + plot - tall:.1f}" font-size="9" text-anchor="middle">'
            f'{escape(column.text)}</text>'
            f'<text x="{x + slot / 2:.1f}" y="{height - 6}" font-size="9" text-anchor="middle">'
            f'{escape(column.label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def tone_for(rate: float | None, *, good: float = 0.9, fair: float = 0.7) -> str:
    """A colour name for a rate between 0 and 1."""
    if rate is None:
        return "none"
    return "good" if rate >= good else "warn" if rate >= fair else "bad"
