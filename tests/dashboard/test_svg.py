"""gateway.dashboard.svg: plots as SVG text (pure functions)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from gateway.dashboard.svg import HEIGHT, bar_chart, nice_ceiling

NS = "{http://www.w3.org/2000/svg}"


def _bars(svg: str) -> list[ET.Element]:
    return [e for e in ET.fromstring(svg).iter(f"{NS}rect") if e.get("class") == "bar"]


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 1), (0.7, 1), (1, 1), (1.01, 2), (3, 5), (7, 10), (42, 50), (1234, 2000), (0.013, 0.02)],
)
def test_axis_tops_are_round_and_not_below_the_value(value: float, top: float) -> None:
    assert nice_ceiling(value) == pytest.approx(top)


def test_bars_in_order_with_heights_proportional_to_the_values() -> None:
    svg = bar_chart(
        [("mon", 10), ("tue", Decimal("25")), ("wed", 50.0)], title="Energy", unit="kWh"
    )
    bars = _bars(svg)
    assert len(bars) == 3
    heights = [float(b.get("height", "0")) for b in bars]
    # Axis top 50: the last bar fills the plot, the others 1/5 and 1/2 of it.
    assert heights[0] == pytest.approx(heights[2] / 5, abs=0.1)
    assert heights[1] == pytest.approx(heights[2] / 2, abs=0.1)
    xs = [float(b.get("x", "0")) for b in bars]
    assert xs == sorted(xs)
    assert [b.findtext(f"{NS}title") for b in bars] == ["mon: 10 kWh", "tue: 25 kWh", "wed: 50 kWh"]
    assert "50 kWh" in svg  # the top grid line is labelled with the unit


def test_a_fixed_maximum_caps_bars_and_negative_values_count_as_zero() -> None:
    bars = _bars(
        bar_chart([("a", 150), ("b", -3), ("c", 50)], title="Uptime", unit="%", maximum=100)
    )
    heights = [float(b.get("height", "0")) for b in bars]
    assert heights[1] == 0
    assert heights[0] == pytest.approx(HEIGHT - 28 - 48)  # the whole plot, not beyond
    assert heights[2] == pytest.approx(heights[0] / 2, abs=0.1)


def test_labels_and_title_are_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    svg = bar_chart([(evil, 1)], title=evil)
    ET.fromstring(svg)  # still well-formed XML
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg and "&amp;" in svg


def test_an_empty_series_says_no_data() -> None:
    svg = bar_chart([], title="Nothing")
    assert _bars(svg) == []
    assert "no data" in svg
    assert re.search(r"<svg [^>]*viewBox=", svg)


def test_many_points_keep_about_twenty_labels() -> None:
    svg = bar_chart([(f"d{i}", i) for i in range(100)], title="Days")
    labels = [t for t in ET.fromstring(svg).iter(f"{NS}text") if t.get("transform")]
    assert len(_bars(svg)) == 100
    assert 15 <= len(labels) <= 25


def test_small_multiples_share_one_axis_top() -> None:
    from gateway.dashboard.svg import small_multiples

    svg = small_multiples(
        [("LOC-A", [("d1", 10)]), ("LOC-B", [("d1", 40), ("d2", 20)])], unit="kWh"
    )
    root = ET.fromstring(svg)
    panels = root.findall(f"{NS}svg")
    assert [p.findtext(f"{NS}title") for p in panels] == ["LOC-A", "LOC-B"]
    assert [p.get("y") for p in panels] == ["0", str(HEIGHT)]
    heights = [float(b.get("height", "0")) for b in _bars(svg)]
    # Axis top 50 for both: 10 is a fifth of 50 in the first panel, as 40 is 4/5 in the second.
    assert heights[0] == pytest.approx(heights[1] / 4, abs=0.1)
    assert heights[2] == pytest.approx(heights[1] / 2, abs=0.1)
    assert "no data" in small_multiples([])
