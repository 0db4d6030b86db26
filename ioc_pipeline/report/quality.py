"""A gated batch's quality page: what the gate checked, what it refused, and why it published or blocked.

    gate (lead's code) ──summary dict──► render_quality_page ──► one self-contained HTML page
                                                               (linked from the check's metadata,
                                                                written beside the delivery's feedback)

Our own rendering of the Great Expectations results, not GE's Data Docs: Data Docs are English
only, spread over many files and load their styles and scripts from a CDN. This page is one file,
Vietnamese and English, no script needed to read it, and it holds only what the summary gives:
the gate passes safe columns in `sample[].values`, never personal data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ioc_pipeline.report.html import bi, esc, number, page, percent, table

SAMPLE_LIMIT = 20


def _share(part: int | None, whole: int | None) -> float | None:
    return None if not whole or part is None else 100.0 * part / whole


def _fraction(value: float | None) -> str:
    """A policy share given as 0–1 (0.1) or as a percentage (10): shown as a percentage."""
    if value is None:
        return "–"
    return percent(value * 100 if value <= 1 else value, 1)


def _decision(summary: Mapping[str, Any]) -> str:
    published = summary.get("decision") == "published"
    vi = summary.get("decision_vi") or ("Đã công bố" if published else "Bị chặn, chưa công bố")
    en = summary.get("decision_en") or ("published" if published else "blocked, not published")
    tone = "good" if published else "bad"
    return f'<div class="banner {tone}" data-decision="{esc(summary.get("decision"))}">{bi(vi, en)}</div>'


def _counts(summary: Mapping[str, Any]) -> str:
    delivered, clean, refused = (summary.get(k) for k in ("delivered_rows", "clean_rows", "refused_rows"))
    cards = [
        ("Dòng nhận được", "rows delivered", number(delivered)),
        ("Dòng hợp lệ", "clean rows", number(clean)),
        ("Dòng bị loại", "rows refused", number(refused)),
        ("Tỷ lệ bị loại", "refused share", percent(_share(refused, delivered), 2)),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="value">{value}</div><div>{bi(vi, en)}</div></div>'
            for vi, en, value in cards
        )
        + "</div>"
    )


def _policy(policy: Mapping[str, Any]) -> str:
    rows = [
        [
            bi("Tỷ lệ dòng bị loại tối đa", "largest refused share allowed"),
            _fraction(policy.get("max_refused_share")),
        ],
        [
            bi("Chỉ xét tỷ lệ khi số dòng bị loại từ", "share applies from this many refused rows"),
            number(policy.get("min_refused_rows")),
        ],
        [
            bi("Số dòng tối thiểu so với kỳ đã công bố", "smallest row count, against the published snapshot"),
            _fraction(policy.get("min_row_ratio")),
        ],
    ]
    return table([("Quy tắc công bố", "publishing policy"), ("Ngưỡng", "threshold", "num")], rows, css="policy")


def _rules(rules: Sequence[Mapping[str, Any]]) -> str:
    body, classes = [], []
    for rule in rules:
        refused = rule.get("refused") or 0
        kind = bi("cảnh báo", "warning") if rule.get("warn_only") else bi("loại dòng", "refuses rows")
        body.append(
            [
                f"<code>{esc(rule.get('name'))}</code>",
                esc(rule.get("text_vi")),
                esc(rule.get("text_en")),
                number(rule.get("checked")),
                number(refused),
                percent(_share(refused, rule.get("checked")), 2),
                kind,
            ]
        )
        classes.append("failed" if refused else "passed")
    headers = [
        ("Quy tắc", "rule"),
        ("Nội dung", "in Vietnamese"),
        ("Nội dung (tiếng Anh)", "in English"),
        ("Dòng kiểm tra", "rows checked", "num"),
        ("Dòng vi phạm", "rows refused", "num"),
        ("Tỷ lệ", "share", "num"),
        ("Loại", "kind"),
    ]
    return table(headers, body, css="rules", row_classes=classes)


def _sample(sample: Sequence[Mapping[str, Any]]) -> str:
    rows = list(sample)[:SAMPLE_LIMIT]
    if not rows:
        return f'<p class="note">{bi("Không có dòng nào bị loại.", "No row was refused.")}</p>'
    columns: list[str] = []
    for row in rows:
        for column in row.get("values") or {}:
            if column not in columns:
                columns.append(column)
    headers = [
        ("Tệp", "file"),
        ("Dòng", "row", "num"),
        ("Quy tắc", "rule"),
        ("Lý do", "reason"),
        *((column, column) for column in columns),
    ]
    body = [
        [
            f"<code>{esc(row.get('source_file'))}</code>",
            esc(row.get("source_row")),
            f"<code>{esc(row.get('rule'))}</code>",
            bi(row.get("reason_vi") or "", row.get("reason_en") or ""),
            *(esc((row.get("values") or {}).get(column)) for column in columns),
        ]
        for row in rows
    ]
    return table(headers, body, css="sample")


def render_quality_page(summary: dict) -> str:
    """The quality page of one gated batch (see the module docstring for what `summary` holds)."""
    feed, name, batch = (esc(summary.get(k)) for k in ("feed", "table", "batch"))
    files = summary.get("source_files") or []
    file_list = "".join(f"<li><code>{esc(f)}</code></li>" for f in files) or f"<li>{bi('không có', 'none')}</li>"
    sample = summary.get("sample") or []
    shown = min(len(sample), SAMPLE_LIMIT)
    sample_note = bi(f"{shown} dòng đầu (tối đa {SAMPLE_LIMIT}).", f"First {shown} rows (at most {SAMPLE_LIMIT}).")
    safe_note = bi("Chỉ hiện các cột không chứa dữ liệu cá nhân.", "Only columns without personal data are shown.")
    body = (
        f'<section id="decision"><h2>{bi("Kết quả", "Decision")}</h2>{_decision(summary)}{_counts(summary)}'
        f"{_policy(summary.get('policy') or {})}"
        f"<h3>{bi('Tệp của lô dữ liệu', 'Files of the batch')}</h3><ul class='files'>{file_list}</ul></section>"
        f'<section id="rules"><h2>{bi("Các quy tắc kiểm tra", "Rules checked")}</h2>'
        f"{_rules(summary.get('rules') or [])}</section>"
        f'<section id="sample"><h2>{bi("Mẫu các dòng bị loại", "Sample of refused rows")}</h2>'
        f'<p class="note">{sample_note} {safe_note}</p>{_sample(sample)}</section>'
    )
    subtitle = (
        f"{bi('Nguồn', 'feed')} <b>{feed}</b> · {bi('bảng', 'table')} <code>{name}</code> · "
        f"{bi('lô', 'batch')} <b>{batch}</b>"
    )
    return page(
        (
            f"Kết quả kiểm tra dữ liệu: {summary.get('table')} {summary.get('batch')}",
            f"Data quality: {summary.get('table')} {summary.get('batch')}",
        ),
        subtitle,
        [
            ("decision", "Kết quả", "Decision"),
            ("rules", "Quy tắc", "Rules"),
            ("sample", "Dòng bị loại", "Refused rows"),
        ],
        body,
    )
