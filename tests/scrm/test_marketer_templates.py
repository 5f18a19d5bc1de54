"""The marketer pages' templates: the RFM bars and the R×F heatmap drawn by the chart macros (exact SVG, labels
escaped), and the segment count box in its three states."""

from __future__ import annotations

from scrm.console import charts
from scrm.console.pages import build_environment
from scrm.console.segments import SegmentPreview

EVIL = '<script>alert(1)</script>"'


def draw(chart: charts.Chart | charts.HBarChart | charts.HeatmapChart) -> str:
    return str(build_environment().get_template("charts.html").module.chart(chart))  # type: ignore[attr-defined]


def test_hbar_chart_draws_each_row_and_escapes_names() -> None:
    svg = draw(charts.hbar_geometry([("重要价值客户", 3), (EVIL, 1), ("一般", 0)], title="RFM", highlight=lambda n: n.startswith("重要")))
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 386 96" width="100%" role="img" aria-label="RFM"')
    assert (
        '<text x="90" y="19" font-size="12" text-anchor="end" fill="#1f2328">重要价值客户</text>'
        '<rect x="96" y="6" width="230.0" height="18" rx="2" fill="#07c160"><title>重要价值客户：3 位（75.0%）</title></rect>'
        '<text x="332.0" y="19" font-size="12" fill="#6b7280">3</text>'
    ) in svg
    assert 'fill="#94a3b8"><title>&lt;script&gt;alert(1)&lt;/script&gt;&quot;：1 位（25.0%）' in svg and "<script>" not in svg


def test_heatmap_draws_five_by_five_cells_with_rows_top_down() -> None:
    svg = draw(charts.heatmap_geometry({(5, 1): 4, (1, 5): 2}, title="R×F"))
    assert svg.count("位客户</title></rect>") == 25
    assert svg.index(">R5</text>") < svg.index(">R1</text>") < svg.index(">F1</text>")
    assert (
        '<rect x="32" y="8" width="48" height="48" fill="#07c160" fill-opacity="1.00" stroke="#fff" stroke-width="2">'
        "<title>R5 F1：4 位客户</title></rect>"
        '<text x="56.0" y="36.0" font-size="12" text-anchor="middle" fill="#fff">4</text>'
    ) in svg


def test_segment_count_box() -> None:
    box = build_environment().get_template("segments/macros.html").module.preview_box  # type: ignore[attr-defined]
    assert "输入表达式后" in str(box(None, "输入表达式后会实时显示人数。"))
    found = str(box(SegmentPreview(count=4, sample=f"#1 {EVIL}"), "idle"))
    assert "<strong>4</strong> 位客户" in found and "例如：#1 &lt;script&gt;" in found
    bad = str(box(SegmentPreview(error="第 3 列", before="ab", at="c", after="d"), "idle"))
    assert '<p class="flash flash-err">第 3 列</p>' in bad and "<code>ab<mark>c</mark>d</code>" in bad
    assert "<code>" not in str(box(SegmentPreview(error="x"), "idle", detail=False))
