"""Plots as SVG text: pure functions from a series to a picture (no state, no I/O).

Every label is escaped (``xml.sax.saxutils``), so a series named by a charger or a
partner cannot inject markup; the result is a complete ``<svg>`` element that an
``<img>`` (or the page, as a file) shows as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from xml.sax.saxutils import escape, quoteattr

Number = int | float | Decimal

WIDTH = 640
HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 28, 48


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (the axis top)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value * (1 - 1e-12):
            return float(step * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def bar_chart(
    points: Sequence[tuple[str, Number]],
    *,
    title: str,
    unit: str = "",
    maximum: Number | None = None,
) -> str:
    """A bar per ``(label, value)``, in order, on an axis from 0 to ``maximum`` (default:
    a round number at or above the largest value). Negative values count as 0; an empty
    series draws the axes and says "no data"."""
    values = [max(float(v), 0.0) for _, v in points]
    top = float(maximum) if maximum is not None else nice_ceiling(max(values, default=0.0))
    top = top if top > 0 else 1.0
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label={quoteattr(title)} '
        'font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    # Grid: five steps from 0 to the top, labelled with the unit.
    for i in range(5):
        y = _TOP + plot_h - plot_h * i / 4
        label = _fmt(top * i / 4) + (f" {unit}" if unit and i == 4 else "")
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        )
    if not points:
        parts.append(
            f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_TOP + plot_h / 2:.1f}" '
            'text-anchor="middle" fill="#888">no data</text>'
        )
    slot = plot_w / max(len(points), 1)
    # Label every bar while they fit, else about twenty of them.
    every = max(1, math.ceil(len(points) / 20))
    for i, ((label, _), value) in enumerate(zip(points, values, strict=True)):
        h = plot_h * min(value / top, 1.0)
        x = _LEFT + i * slot + slot * 0.1
        y = _TOP + plot_h - h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{h:.1f}" fill="#2b7bb9"><title>{escape(label)}: '
            f"{escape(_fmt(value))}{escape(' ' + unit if unit else '')}</title></rect>"
        )
        if i % every == 0:
            cx = _LEFT + i * slot + slot / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{HEIGHT - _BOTTOM + 14}" text-anchor="end" '
                f'transform="rotate(-35 {cx:.1f} {HEIGHT - _BOTTOM + 14})">'
                f"{escape(label)}</text>"
            )
    parts.append(
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH - _RIGHT}" y2="{_TOP + plot_h}" '
        'stroke="#333"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def small_multiples(
    panels: Sequence[tuple[str, Sequence[tuple[str, Number]]]],
    *,
    unit: str = "",
    maximum: Number | None = None,
) -> str:
    """One :func:`bar_chart` per ``(title, points)``, stacked, on one shared axis top (the
    given ``maximum``, or a round number at or above the largest value of all): bars
    compare across panels. No panel: one empty chart saying "no data"."""
    if not panels:
        return bar_chart([], title="no data", unit=unit)
    values = [max(float(v), 0.0) for _, points in panels for _, v in points]
    top = maximum if maximum is not None else nice_ceiling(max(values, default=0.0))
    charts = [bar_chart(points, title=title, unit=unit, maximum=top) for title, points in panels]
    height = HEIGHT * len(charts)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}">'
    ]
    for i, chart in enumerate(charts):
        # A nested <svg> placed at its row (x/y on the outermost element of each panel).
        parts.append(chart.replace("<svg ", f'<svg x="0" y="{i * HEIGHT}" ', 1))
    parts.append("</svg>")
    return "".join(parts)
