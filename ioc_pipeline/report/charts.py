"""The report's charts and map as plotly figures, rendered to `<div>`s that the inline plotly.js draws.

Why plotly: its Python package ships plotly.js (about 4.8 MB) to inline once per page; the charts
stay interactive offline (hover values, zoom into the map, toggle series) with no Node and no
image renderer on the server. Only SVG traces are used: `scatter` on longitude/latitude with equal
scale for the map, since `scattergeo` and the tile maps download topojson or tiles.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import cache

import plotly.graph_objects as go
import plotly.offline

from ioc_pipeline.report.data import TECHNOLOGIES, Row
from ioc_pipeline.report.html import esc

FONT = dict(family='system-ui, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif', size=13)
CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "scrollZoom": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
}
TECH_COLOURS = {"5G": "#6a1b9a", "4G": "#1565c0", "3G": "#2e7d32", "2G": "#ef6c00", "other": "#757575"}
MAP_TRACE_SITES = "sites"  # `meta` of the traces that draw one marker per BTS site (the tests count them)


@cache
def plotly_js() -> str:
    """The plotly.js bundle of the installed plotly package, to inline once per page."""
    return plotly.offline.get_plotlyjs()


def plotly_version() -> str:
    import plotly

    return plotly.__version__


def render(figure: go.Figure, chart_id: str, caption: str) -> str:
    """A `<figure>` holding the chart's div and the inline script that draws it."""
    figure.update_layout(font=FONT, margin=dict(l=60, r=20, t=60, b=50), template="plotly_white")
    div = figure.to_html(full_html=False, include_plotlyjs=False, div_id=chart_id, config=CONFIG)
    caption_html = f'<figcaption class="note">{caption}</figcaption>'
    return f'<figure class="chart" data-chart="{esc(chart_id)}">{div}{caption_html}</figure>'


def _title(vi: str, en: str) -> dict:
    return dict(text=f"{vi}<br><sup>{en}</sup>", x=0.01, xanchor="left")


def _months(rows: Sequence[Row]) -> list[str]:
    return [r["month"].strftime("%Y-%m") if hasattr(r["month"], "strftime") else str(r["month"]) for r in rows]


def dossier_volumes(rows: Sequence[Row]) -> go.Figure:
    months = _months(rows)
    figure = go.Figure(
        [
            go.Bar(name="Tiếp nhận / received", x=months, y=[r["dossiers_received"] for r in rows]),
            go.Bar(name="Đã giải quyết / finished", x=months, y=[r["dossiers_finished"] for r in rows]),
        ]
    )
    figure.update_layout(
        title=_title("Hồ sơ tiếp nhận và đã giải quyết theo tháng", "Dossiers received and finished per month"),
        barmode="group",
        height=380,
        xaxis=dict(type="category", title="Tháng tiếp nhận / month of receipt"),
        yaxis=dict(title="Hồ sơ / dossiers", rangemode="tozero"),
        legend=dict(orientation="h", y=-0.25),
    )
    return figure


PERCENT_SERIES = (
    ("on_time_pct", "Đúng hạn / on time"),
    ("online_pct", "Trực tuyến / online"),
    ("paid_online_pct", "Thanh toán trực tuyến / paid online"),
    ("digitized_pct", "Số hoá / digitised"),
)


def dossier_rates(rows: Sequence[Row]) -> go.Figure:
    months = _months(rows)
    figure = go.Figure(
        [
            go.Scatter(name=label, x=months, y=[r[column] for r in rows], mode="lines+markers")
            for column, label in PERCENT_SERIES
        ]
    )
    figure.update_layout(
        title=_title("Tỷ lệ theo tháng (%)", "Rates per month (%)"),
        height=380,
        xaxis=dict(type="category", title="Tháng tiếp nhận / month of receipt"),
        yaxis=dict(title="%", range=[0, 100]),
        legend=dict(orientation="h", y=-0.25),
    )
    return figure


def agency_ranking(rows: Sequence[Row], column: str, vi: str, en: str) -> go.Figure:
    """Every agency of the month on one bar, best at the top (agencies without a value left out)."""
    ranked = sorted((r for r in rows if r[column] is not None), key=lambda r: r[column])
    figure = go.Figure(
        go.Bar(
            x=[r[column] for r in ranked],
            y=[r["agency"] for r in ranked],
            orientation="h",
            text=[f"{r[column]:.1f}" for r in ranked],
            textposition="auto",
            customdata=[r["dossiers_received"] for r in ranked],
            hovertemplate="%{y}: %{x:.1f} %<br>hồ sơ / dossiers: %{customdata}<extra></extra>",
            marker_color="#0b5fa5",
        )
    )
    figure.update_layout(
        title=_title(vi, en),
        height=max(320, 24 * len(ranked) + 120),
        xaxis=dict(title="%", range=[0, 100]),
        yaxis=dict(automargin=True),
        margin=dict(l=220),
    )
    return figure


def sites_map(sites: Sequence[Row], communes: Sequence[Row], without_4g: set[str]) -> go.Figure:
    """BTS sites by best technology over the commune centroids; communes with no 4G site stand out."""
    traces: list[go.Scatter] = []
    for technology in (*TECHNOLOGIES, "other"):
        chosen = [s for s in sites if s["best_technology"] == technology]
        if not chosen:
            continue
        traces.append(
            go.Scatter(
                name=f"{technology} ({len(chosen)})" if technology != "other" else f"khác / other ({len(chosen)})",
                meta=MAP_TRACE_SITES,
                x=[s["longitude"] for s in chosen],
                y=[s["latitude"] for s in chosen],
                mode="markers",
                marker=dict(size=6, color=TECH_COLOURS[technology], opacity=0.85, line=dict(width=0.5, color="#fff")),
                customdata=[
                    [s["site_id"], s["commune_name"], s["new_unit_name"], s["technologies"], s["carriers"]]
                    for s in chosen
                ],
                hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]} → %{customdata[2]}<br>"
                "%{customdata[3]}<br>%{customdata[4]}<extra></extra>",
            )
        )
    covered = [c for c in communes if c["unit_code"] not in without_4g]
    gaps = [c for c in communes if c["unit_code"] in without_4g]
    traces.append(
        go.Scatter(
            name="Trung tâm xã / commune centroid",
            meta="communes",
            x=[c["longitude"] for c in covered],
            y=[c["latitude"] for c in covered],
            mode="markers",
            marker=dict(size=9, symbol="circle-open", color="#90a4ae", line=dict(width=1)),
            text=[f"{c['unit_name']} ({c['district_name']})" for c in covered],
            hovertemplate="%{text}<extra></extra>",
        )
    )
    if gaps:
        traces.append(
            go.Scatter(
                name=f"Xã chưa có 4G / commune without 4G ({len(gaps)})",
                meta="communes_without_4g",
                x=[c["longitude"] for c in gaps],
                y=[c["latitude"] for c in gaps],
                mode="markers+text",
                marker=dict(size=14, symbol="x-thin-open", color="#b3261e", line=dict(width=3)),
                text=[c["unit_name"] for c in gaps],
                textposition="top center",
                textfont=dict(color="#b3261e"),
                hovertemplate="%{text}<extra></extra>",
            )
        )
    latitudes = [s["latitude"] for s in sites] or [c["latitude"] for c in communes] or [0.0]
    middle = (min(latitudes) + max(latitudes)) / 2
    figure = go.Figure(traces)
    figure.update_layout(
        title=_title("Vị trí trạm BTS theo công nghệ cao nhất", "BTS sites by best technology"),
        height=760,
        xaxis=dict(title="Kinh độ / longitude", showgrid=False, zeroline=False, constrain="domain"),
        # one degree of longitude is shorter than one of latitude by cos(latitude): equal distances
        yaxis=dict(
            title="Vĩ độ / latitude", scaleanchor="x", scaleratio=1 / math.cos(math.radians(middle)), showgrid=False
        ),
        legend=dict(orientation="h", y=-0.08),
        hovermode="closest",
        plot_bgcolor="#f7fafc",
    )
    return figure


def postal_by_unit(rows: Sequence[Row]) -> go.Figure:
    kinds = (
        ("post_office_1", "Bưu cục cấp 1 / post office level 1"),
        ("post_office_2", "Bưu cục cấp 2 / level 2"),
        ("post_office_3", "Bưu cục cấp 3 / level 3"),
        ("commune_cultural_post", "Điểm BĐ-VH xã / commune cultural post"),
        ("postal_agent", "Đại lý / agent"),
        ("transaction_point", "Điểm giao dịch / transaction point"),
    )
    ordered = sorted(rows, key=lambda r: r["service_points"])
    figure = go.Figure(
        [
            go.Bar(name=label, y=[r["new_unit_name"] for r in ordered], x=[r[column] for r in ordered], orientation="h")
            for column, label in kinds
            if any(r.get(column) for r in ordered)
        ]
    )
    figure.update_layout(
        title=_title("Điểm phục vụ bưu chính theo đơn vị mới (sau 2025)", "Postal service points by post-2025 unit"),
        barmode="stack",
        height=max(360, 18 * len(ordered) + 160),
        xaxis=dict(title="Điểm phục vụ / service points"),
        yaxis=dict(automargin=True, tickfont=dict(size=11)),
        legend=dict(orientation="h", y=-0.06),
    )
    return figure


def spark(values: Sequence[float | None], width: int = 110, height: int = 26) -> str:
    """A tiny inline SVG line of an indicator over its snapshots (no script; one dot for one snapshot)."""
    points = [v for v in values if v is not None]
    if not points:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = (width - 8) / max(len(points) - 1, 1)
    xy = [(4 + i * step, height - 4 - (v - low) / span * (height - 8)) for i, v in enumerate(points)]
    if len(xy) == 1:
        xy = [(width / 2, height / 2)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#0b5fa5"/>' for x, y in xy)
    label = esc(json.dumps(points))
    return (
        f'<svg class="spark" width="{width}" height="{height}" role="img" aria-label="{label}">'
        f'<polyline points="{line}" fill="none" stroke="#0b5fa5" stroke-width="1.5"/>{dots}</svg>'
    )
