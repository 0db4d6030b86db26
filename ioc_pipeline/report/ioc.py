"""The IOC report: one self-contained HTML page of the published gold layer.

    ReportData (data.py) ──sections──► page (html.py) with plotly.js inline ──► bytes for the lake

Sections: the scorecard beside the founding report's figures, public services per month and the
agencies' ranking, telecom (map of BTS sites, communes without 4G), the postal network, and the
state of every feed when `ops.feed_status` is published. A section whose tables are absent (a
feed not delivered yet) says so instead of showing zeros.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ioc_pipeline.lake import Lake
from ioc_pipeline.report import charts
from ioc_pipeline.report.data import ReportData, Row, load
from ioc_pipeline.report.html import bi, day, esc, number, page, percent, signed, table

# The steering committee's first session, 17 May 2022 (Báo Sóc Trăng): figures "as of end of April 2022".
FOUNDING_REPORT = {
    "procedures_total": 1843,
    "procedures_level_3": 312,
    "procedures_level_3_pct": 16.9,
    "procedures_level_4": 971,
    "procedures_level_4_pct": 52.68,
    "bts_sites": 1268,
    "bts_sites_2g": 958,
    "bts_sites_3g": 1124,
    "bts_sites_4g": 906,
    "bts_sites_5g": 3,
    "postal_enterprises": 15,
    "postal_service_points": 186,
}
FOUNDING_SOURCE = (
    "Phiên họp thứ nhất Ban Chỉ đạo chuyển đổi số tỉnh Sóc Trăng, 17/05/2022 (Báo Sóc Trăng), "
    "số liệu đến cuối tháng 4/2022",
    "First session of the Sóc Trăng digital-transformation steering committee, 17 May 2022 (Báo Sóc Trăng), "
    "figures as of end of April 2022",
)

# English names of the scorecard's indicators (the table holds the Vietnamese name), in display order.
INDICATORS_EN = {
    "procedures_total": "Administrative procedures (level 2 or more)",
    "procedures_level_2": "Procedures at level 2",
    "procedures_level_3": "Procedures at level 3",
    "procedures_level_3_pct": "Share at level 3",
    "procedures_level_4": "Procedures at level 4",
    "procedures_level_4_pct": "Share at level 4",
    "procedures_online_full": "Procedures fully online",
    "procedures_online_partial": "Procedures partly online",
    "bts_sites": "BTS sites",
    "bts_sites_2g": "BTS sites with 2G",
    "bts_sites_3g": "BTS sites with 3G",
    "bts_sites_4g": "BTS sites with 4G",
    "bts_sites_5g": "BTS sites with 5G",
    "communes_without_4g": "Communes without a 4G site",
    "postal_enterprises": "Postal and courier enterprises",
    "postal_service_points": "Postal service points",
    "dossiers_received": "Dossiers received (latest complete month)",
    "dossiers_on_time_pct": "Dossiers finished on time",
    "dossiers_online_pct": "Dossiers received online",
    "dossiers_paid_online_pct": "Dossiers with fees paid online",
    "dossiers_digitized_pct": "Dossiers digitised",
    "dossiers_e_result_pct": "Finished with an electronic result",
}
GAP_LABELS = {
    "no_4g_site": ("chưa có trạm 4G", "no 4G site"),
    "no_site": ("chưa có trạm nào", "no site at all"),
}
FEED_STATES = {
    "published": ("Đã công bố", "published", "good"),
    "blocked": ("Bị chặn", "blocked", "bad"),
    "file_refused": ("Tệp bị từ chối", "file refused", "bad"),
    "late": ("Trễ hạn", "late", "warn"),
    "never_delivered": ("Chưa từng gửi", "never delivered", "muted"),
}
NAV = (
    ("scorecard", "Chỉ tiêu", "Scorecard"),
    ("public-services", "Dịch vụ công", "Public services"),
    ("telecom", "Viễn thông", "Telecom"),
    ("postal", "Bưu chính", "Postal"),
    ("feeds", "Nguồn dữ liệu", "Feeds"),
)


@dataclass(frozen=True)
class Rendered:
    """A rendered report: its page, the snapshot it shows, and what it holds (for metadata and tests)."""

    html: str
    snapshot: str
    charts: list[str]
    site_markers: int
    sections: list[str]


def _value(row: Row) -> str:
    if row["value"] is None:
        return "–"
    return percent(row["value"], 2) if row["unit"] == "percent" else number(row["value"])


def _missing(vi: str, en: str) -> str:
    return f'<p class="note">{bi(vi, en)}</p>'


def _cards(latest: dict[str, Row]) -> str:
    shown = (
        "procedures_total",
        "procedures_level_4_pct",
        "bts_sites",
        "bts_sites_4g",
        "postal_enterprises",
        "postal_service_points",
        "dossiers_on_time_pct",
        "dossiers_online_pct",
    )
    cards = [
        f'<div class="card"><div class="value">{_value(latest[code])}</div>'
        f"<div>{bi(latest[code]['indicator_name_vi'], INDICATORS_EN.get(code, code))}</div>"
        f'<div class="note">{day(latest[code]["as_of_date"])}</div></div>'
        for code in shown
        if code in latest
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def scorecard_section(data: ReportData) -> str:
    if not data.scorecard:
        return _missing("Chưa có bảng chỉ tiêu trong kho dữ liệu.", "No scorecard in the warehouse yet.")
    history: dict[str, list[Row]] = defaultdict(list)
    for row in data.scorecard:
        history[row["indicator_code"]].append(row)
    order = {code: i for i, code in enumerate(INDICATORS_EN)}
    codes = sorted(history, key=lambda c: (order.get(c, len(order)), c))
    latest = {code: history[code][-1] for code in codes}
    rows = []
    for code in codes:
        row, series = latest[code], history[code]
        founding = FOUNDING_REPORT.get(code)
        if founding is None:
            founding_text = difference = ""
        else:
            decimals = 2 if row["unit"] == "percent" else 0
            founding_text = percent(founding, decimals) if row["unit"] == "percent" else number(founding)
            delta = None if row["value"] is None else row["value"] - founding
            difference = "–" if delta is None else signed(delta, decimals)
        rows.append(
            [
                bi(row["indicator_name_vi"], INDICATORS_EN.get(code, code))
                + f"<br><code class='note'>{esc(code)}</code>",
                _value(row),
                esc(day(row["as_of_date"])),
                f"<code>{esc(row['source_asset'])}</code>",
                f"{charts.spark([r['value'] for r in series])} "
                f'<span class="note">{len(series)} {bi("kỳ", "snapshot(s)")}</span>',
                founding_text,
                esc(difference),
            ]
        )
    headers = [
        ("Chỉ tiêu", "indicator"),
        ("Giá trị mới nhất", "latest value", "num"),
        ("Ngày chốt", "as of"),
        ("Tài sản nguồn", "source asset"),
        ("Diễn biến qua các kỳ", "trend over snapshots"),
        ("Báo cáo BCĐ 17/05/2022", "founding report", "num"),
        ("Chênh lệch", "difference", "num"),
    ]
    return (
        _cards(latest)
        + table(headers, rows, css="scorecard")
        + '<p class="note">'
        + bi("Nguồn cột “Báo cáo BCĐ”: " + FOUNDING_SOURCE[0], "Founding report column: " + FOUNDING_SOURCE[1])
        + ". "
        + bi("Tỷ lệ % tính trên thang 0–100, chưa làm tròn.", "Percentages on 0–100, unrounded.")
        + "</p>"
    )


def _ranking_table(rows: Sequence[Row], column: str, count: int = 5) -> str:
    ranked = sorted((r for r in rows if r[column] is not None), key=lambda r: (-r[column], r["agency"]))
    if not ranked:
        return ""
    top, bottom = ranked[:count], ranked[-count:][::-1]
    body = [
        [esc(side), esc(r["agency"]), percent(r[column], 1), number(r["dossiers_received"])]
        for side, part in (("cao nhất / highest", top), ("thấp nhất / lowest", bottom))
        for r in part
    ]
    headers = [("Nhóm", "group"), ("Cơ quan", "agency"), ("Tỷ lệ", "rate", "num"), ("Hồ sơ", "dossiers", "num")]
    return table(headers, body, css="ranking")


def public_services_section(data: ReportData, rendered: list[str]) -> str:
    if not data.kpis_monthly:
        return _missing("Chưa có số liệu hồ sơ một cửa.", "No one-stop-shop dossier figures yet.")
    parts = [
        '<div class="grid">',
        charts.render(
            charts.dossier_volumes(data.kpis_monthly),
            _chart("ps-volume", rendered),
            bi(
                "Theo tháng tiếp nhận, phiên bản hiện tại của hồ sơ.",
                "By month of receipt, current version of each dossier.",
            ),
        ),
        charts.render(
            charts.dossier_rates(data.kpis_monthly),
            _chart("ps-rates", rendered),
            bi(
                "Đúng hạn: trên số đã giải quyết và quá hạn đang xử lý; các tỷ lệ khác: trên số tiếp nhận.",
                "On time: over finished plus open overdue; the others: over received.",
            ),
        ),
        "</div>",
    ]
    monthly = [
        [
            esc(r["month"].strftime("%Y-%m")),
            number(r["dossiers_received"]),
            number(r["dossiers_finished"]),
            percent(r["on_time_pct"]),
            percent(r["online_pct"]),
            percent(r["paid_online_pct"]),
            percent(r["digitized_pct"]),
        ]
        for r in data.kpis_monthly
    ]
    parts.append(
        f"<details><summary>{bi('Bảng số liệu theo tháng', 'Monthly figures')}</summary>"
        + table(
            [
                ("Tháng", "month"),
                ("Tiếp nhận", "received", "num"),
                ("Đã giải quyết", "finished", "num"),
                ("Đúng hạn", "on time", "num"),
                ("Trực tuyến", "online", "num"),
                ("Thanh toán trực tuyến", "paid online", "num"),
                ("Số hoá", "digitised", "num"),
            ],
            monthly,
        )
        + "</details>"
    )
    if data.agencies_latest:
        month = data.agencies_month.strftime("%m/%Y") if data.agencies_month else ""
        parts.append(f"<h3>{bi(f'Xếp hạng cơ quan, tháng {month}', f'Ranking of agencies, {month}')}</h3>")
        parts.append('<div class="grid">')
        for column, chart_id, vi, en in (
            ("on_time_pct", "ps-rank-on-time", "Tỷ lệ giải quyết đúng hạn (%)", "On-time rate (%)"),
            ("online_pct", "ps-rank-online", "Tỷ lệ hồ sơ trực tuyến (%)", "Online rate (%)"),
        ):
            parts.append(
                "<div>"
                + charts.render(
                    charts.agency_ranking(data.agencies_latest, column, vi, en),
                    _chart(chart_id, rendered),
                    bi("Mỗi thanh một cơ quan; cao nhất ở trên.", "One bar per agency; highest at the top."),
                )
                + _ranking_table(data.agencies_latest, column)
                + "</div>"
            )
        parts.append("</div>")
    return "".join(parts)


def _gaps_table(rows: Sequence[Row], level: str) -> str:
    chosen = [r for r in rows if r["level"] == level]
    if not chosen:
        return f'<p class="note">{bi("Không có.", "None.")}</p>'
    if level == "old_commune":
        headers = [
            ("Xã (trước 2025)", "commune (pre-2025)"),
            ("Huyện", "district"),
            ("Đơn vị mới", "new unit"),
            ("Số vị trí trạm", "sites", "num"),
            ("Vị trí 4G", "4G sites", "num"),
            ("Tình trạng", "gap"),
        ]
        body = [
            [
                esc(r["unit_name"]),
                esc(r["district_name"]),
                esc(r["new_unit_name"]),
                number(r["sites"]),
                number(r["sites_4g"]),
                bi(*GAP_LABELS.get(r["gap"], (r["gap"], r["gap"]))),
            ]
            for r in chosen
        ]
    else:
        headers = [
            ("Đơn vị mới (sau 2025)", "new unit (post-2025)"),
            ("Số vị trí trạm", "sites", "num"),
            ("Vị trí 4G", "4G sites", "num"),
            ("Tình trạng", "gap"),
        ]
        body = [
            [
                esc(r["unit_name"]),
                number(r["sites"]),
                number(r["sites_4g"]),
                bi(*GAP_LABELS.get(r["gap"], (r["gap"], r["gap"]))),
            ]
            for r in chosen
        ]
    return table(headers, body, css=f"gaps gaps-{level}")


def telecom_section(data: ReportData, rendered: list[str]) -> tuple[str, int]:
    if not data.sites:
        return _missing("Chưa có danh sách trạm BTS.", "No BTS register yet."), 0
    without_4g = {r["unit_code"] for r in data.gaps or [] if r["level"] == "old_commune"}
    figure = charts.sites_map(data.sites, data.communes, without_4g)
    parts = [
        charts.render(
            figure,
            _chart("telecom-map", rendered),
            bi(
                f"{number(len(data.sites))} vị trí trạm theo toạ độ khai báo; vòng xám: trung tâm xã "
                "(dữ liệu đơn vị hành chính, không dùng bản đồ nền trực tuyến). Bấm vào chú giải để ẩn/hiện.",
                f"{number(len(data.sites))} sites at their declared coordinates; grey rings: commune centroids "
                "(administrative-unit data, no online base map). Click the legend to hide or show.",
            ),
        )
    ]
    if data.gaps is not None:
        parts += [
            "<h3>"
            + bi("Xã chưa có trạm 4G, theo đơn vị cũ (trước 2025)", "Communes without 4G, by old unit")
            + "</h3>",
            _gaps_table(data.gaps, "old_commune"),
            f"<h3>{bi('Theo đơn vị mới (sau sắp xếp 2025)', 'By new unit (after the 2025 reform)')}</h3>",
            _gaps_table(data.gaps, "new_unit"),
        ]
    if data.coverage_by_new_unit:
        body = [
            [
                esc(r["new_unit_name"]),
                number(r["sites"]),
                number(r["sites_2g"]),
                number(r["sites_3g"]),
                number(r["sites_4g"]),
                number(r["sites_5g"]),
                esc(", ".join(r["carriers"] or [])),
            ]
            for r in data.coverage_by_new_unit
        ]
        parts.append(
            f"<details><summary>{bi('Hạ tầng BTS theo đơn vị mới', 'BTS sites by new unit')}</summary>"
            + table(
                [
                    ("Đơn vị mới", "new unit"),
                    ("Vị trí", "sites", "num"),
                    ("2G", "2G", "num"),
                    ("3G", "3G", "num"),
                    ("4G", "4G", "num"),
                    ("5G", "5G", "num"),
                    ("Doanh nghiệp", "carriers"),
                ],
                body,
            )
            + "</details>"
        )
    return "".join(parts), len(data.sites)


POSTAL_COLUMNS = [
    ("Điểm phục vụ", "service points", "num"),
    ("Bưu cục cấp 1", "post office 1", "num"),
    ("Cấp 2", "2", "num"),
    ("Cấp 3", "3", "num"),
    ("Điểm BĐ-VH xã", "commune cultural post", "num"),
    ("Đại lý", "agents", "num"),
    ("Điểm giao dịch", "transaction points", "num"),
    ("Doanh nghiệp", "enterprises", "num"),
]
POSTAL_FIELDS = (
    "service_points",
    "post_office_1",
    "post_office_2",
    "post_office_3",
    "commune_cultural_post",
    "postal_agent",
    "transaction_point",
    "enterprises",
)


def postal_section(data: ReportData, rendered: list[str]) -> str:
    if not data.postal_by_new_unit:
        return _missing("Chưa có danh sách điểm phục vụ bưu chính.", "No postal service point register yet.")
    rows = data.postal_by_new_unit
    total = ["<b>" + bi("Toàn tỉnh", "whole province") + "</b>"] + [
        number(sum(r[f] or 0 for r in rows)) if f != "enterprises" else "" for f in POSTAL_FIELDS
    ]
    body = [[esc(r["new_unit_name"]), *(number(r[f]) for f in POSTAL_FIELDS)] for r in rows]
    parts = [
        charts.render(
            charts.postal_by_unit(rows),
            _chart("postal-units", rendered),
            bi("Đơn vị hành chính sau sắp xếp 2025.", "Administrative units after the 2025 reform."),
        ),
        f"<details><summary>{bi('Bảng theo đơn vị mới', 'Table by new unit')}</summary>"
        + table(
            [("Đơn vị mới", "new unit"), *POSTAL_COLUMNS],
            [*body, total],
            css="postal",
            row_classes=[""] * len(body) + ["total"],
        )
        + "</details>",
    ]
    if data.postal_by_commune:
        old = [
            [
                esc(r["commune_name"]),
                esc(r["district_name"]),
                esc(r["new_unit_name"]),
                *(number(r[f]) for f in POSTAL_FIELDS),
            ]
            for r in data.postal_by_commune
        ]
        parts.append(
            f"<details><summary>{bi('Theo xã cũ (trước 2025)', 'By old commune (pre-2025)')}</summary>"
            + table([("Xã", "commune"), ("Huyện", "district"), ("Đơn vị mới", "new unit"), *POSTAL_COLUMNS], old)
            + "</details>"
        )
    return "".join(parts)


def feeds_section(data: ReportData) -> str:
    if data.feed_status is None:
        return ""
    headers = [
        ("Nguồn", "feed"),
        ("Cơ quan gửi", "department"),
        ("Tình trạng", "state"),
        ("Lý do", "reason"),
        ("Tệp gần nhất", "last file"),
        ("Nhận lúc", "received at"),
        ("Kỳ đã công bố", "last published snapshot"),
        ("Chu kỳ", "cadence"),
        ("Kiểm tra lúc", "checked at"),
    ]
    body = []
    for r in data.feed_status:
        vi, en, tone = FEED_STATES.get(r.get("state") or "", (r.get("state"), r.get("state"), "muted"))
        feed = esc(r.get("feed")) + (f" <span class='note'>({esc(r['carrier'])})</span>" if r.get("carrier") else "")
        body.append(
            [
                feed,
                bi(r.get("department_vi") or "", r.get("department_en") or ""),
                f'<span class="chip {tone}" data-state="{esc(r.get("state"))}">{bi(vi or "", en or "")}</span>',
                bi(r.get("reason_vi") or "", r.get("reason_en") or ""),
                f"<code>{esc(r.get('last_file') or '–')}</code>",
                esc(day(r.get("last_file_received_at"))),
                esc(day(r.get("last_published_snapshot"))),
                esc(r.get("cadence") or "")
                + (f" <span class='note'>(≤ {esc(r['late_after_days'])} d)</span>" if r.get("late_after_days") else ""),
                esc(day(r.get("checked_at"))),
            ]
        )
    return table(headers, body, css="feeds")


def _chart(chart_id: str, rendered: list[str]) -> str:
    rendered.append(chart_id)
    return f"chart-{chart_id}"


def _section(anchor: str, vi: str, en: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{bi(vi, en)}</h2>{body}</section>'


def render_report(data: ReportData, generated_at: datetime | None = None, source: str = "") -> Rendered:
    """The whole page for `data`; `source` names the warehouse it was read from (shown in the footer)."""
    generated = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    snapshot = day(data.snapshot) if data.snapshot else "no-data"
    rendered: list[str] = []
    telecom, markers = telecom_section(data, rendered)
    feeds = feeds_section(data)
    sections = [
        _section("scorecard", "Chỉ tiêu tổng hợp", "Scorecard", scorecard_section(data)),
        _section(
            "public-services", "Dịch vụ công trực tuyến", "Public services", public_services_section(data, rendered)
        ),
        _section("telecom", "Hạ tầng viễn thông", "Telecom infrastructure", telecom),
        _section("postal", "Mạng bưu chính", "Postal network", postal_section(data, rendered)),
    ]
    names = ["scorecard", "public-services", "telecom", "postal"]
    if feeds:
        sections.append(_section("feeds", "Tình trạng các nguồn dữ liệu", "State of every feed", feeds))
        names.append("feeds")
    footer = (
        f"<footer>{bi('Tạo lúc', 'Generated at')} {esc(generated)} · {bi('từ kho dữ liệu', 'from the warehouse')} "
        f"<code>{esc(source)}</code> · {bi('tài sản', 'asset')} <code>report/ioc</code> · "
        f"plotly {esc(charts.plotly_version())} "
        f"({bi('nhúng sẵn, không tải gì từ mạng', 'inline, nothing loaded from the network')})"
        "</footer>"
    )
    subtitle = (
        f"{bi('Số liệu chốt đến', 'Data as of')} <b>{esc(snapshot)}</b> · {bi('Tạo lúc', 'generated')} {esc(generated)}"
    )
    head = f"<script>{charts.plotly_js()}</script>" if rendered else ""
    document = page(
        ("Báo cáo IOC tỉnh Sóc Trăng", "Sóc Trăng IOC report"),
        subtitle,
        [n for n in NAV if n[0] in names],
        "".join(sections) + footer,
        head=head,
    )
    return Rendered(document, snapshot, rendered, markers, names)


def build(warehouse_path: str) -> Rendered:
    """Read the published warehouse (read-only) and render the report."""
    return render_report(load(warehouse_path), source=warehouse_path)


FOLDER = "report/ioc"  # in the lake: <snapshot>.html for each snapshot, latest.html the newest one rendered


@dataclass(frozen=True)
class Written:
    snapshot_url: str
    latest_url: str
    latest_path: str | None  # the OS path when the lake is local
    size_bytes: int


def write(lake: Lake, rendered: Rendered) -> Written:
    """`report/ioc/<snapshot>.html`, then `latest.html`, each replaced atomically."""
    data = rendered.html.encode("utf-8")
    snapshot_url = lake.write_bytes(f"{FOLDER}/{rendered.snapshot}.html", data)
    latest_url = lake.write_bytes(f"{FOLDER}/latest.html", data)
    return Written(snapshot_url, latest_url, lake.local_path(f"{FOLDER}/latest.html"), len(data))
