"""The feedback workbook a department gets for each delivered file: what was accepted, what to fix.

    gate outcome of a batch ──workbook(summary, refused rows)──► ops/feedback/<table>/<file>.xlsx
    `cli validate FILE` (same readers, same rules, offline) ──► the same workbook beside --out

Sheet "Tóm tắt" (summary): rows read, accepted, refused, refused by rule, and whether the batch was
published (with the policy's sentence). Sheet "Dòng bị loại" (refused rows): the department's own
rows as delivered, each with its row number and the reason in Vietnamese (English beside it).
Personal data never reaches a workbook: callers pass only the delivered columns a rule may show.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import polars as pl

ROW_LIMIT = 5000  # refused rows listed in full up to this many; the summary always counts all
HIDDEN_PREFIXES = ("_",)
PERSONAL = {"applicant_id"}  # a pseudonym, not the department's data: left out as well


@dataclass
class Summary:
    """One delivered file (or one month of dossiers) through the gate."""

    feed: str
    file: str
    rows_read: int
    rows_accepted: int
    rows_refused: int
    refused_by_rule: dict[str, int] = field(default_factory=dict)
    rule_texts: dict[str, tuple[str, str]] = field(default_factory=dict)  # rule -> (vi, en)
    published: bool = True
    decision_vi: str = ""
    decision_en: str = ""
    encoding: str | None = None
    checked_before_sending: bool = False  # `cli validate`: what would happen, not what did

    @property
    def state_vi(self) -> str:
        if self.checked_before_sending:
            return "Sẽ được công bố" if self.published else "Sẽ bị chặn, không được công bố"
        return "Đã công bố" if self.published else "Bị chặn, không công bố"


def visible_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if not c.startswith(HIDDEN_PREFIXES) and c not in PERSONAL]


def workbook(summary: Summary, refused: pl.DataFrame) -> bytes:
    """The .xlsx bytes: summary sheet, then the refused rows (reason first, then the row as delivered)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "Tóm tắt"
    bold = Font(bold=True)
    lines: list[tuple[str, object, str]] = [
        ("Nguồn dữ liệu", summary.feed, "feed"),
        ("Tệp", summary.file, "file"),
        ("Số dòng đã đọc", summary.rows_read, "rows read"),
        ("Số dòng được chấp nhận", summary.rows_accepted, "rows accepted"),
        ("Số dòng bị loại", summary.rows_refused, "rows refused"),
        ("Kết quả", summary.state_vi, "published" if summary.published else "blocked"),
        ("Lý do", summary.decision_vi, summary.decision_en),
    ]
    if summary.encoding:
        lines.append(("Bảng mã", summary.encoding, "encoding"))
    sheet.append(["Mục", "Giá trị", "English"])
    for cell in sheet[1]:
        cell.font = bold
    for line in lines:
        sheet.append(list(line))
    sheet.append([])
    sheet.append(["Quy tắc", "Số dòng bị loại", "Nội dung quy tắc", "Rule"])
    for cell in sheet[sheet.max_row]:
        cell.font = bold
    for rule, count in sorted(summary.refused_by_rule.items(), key=lambda item: (-item[1], item[0])):
        vi, en = summary.rule_texts.get(rule, ("", ""))
        sheet.append([rule, count, vi, en])
    sheet.column_dimensions["A"].width = 28
    sheet.column_dimensions["B"].width = 40
    sheet.column_dimensions["C"].width = 60

    rows = book.create_sheet("Dòng bị loại")
    front: list[str] = [c for c in ("source_row", "rule", "reason_vi", "reason") if c in refused.columns]
    delivered = [c for c in visible_columns(refused) if c not in {*front, "rules", "source_file", "reason_en"}]
    headers = {"source_row": "Dòng", "rule": "Quy tắc", "reason_vi": "Lý do", "reason": "Reason"}
    rows.append([headers.get(c, c) for c in front] + delivered)
    for cell in rows[1]:
        cell.font = bold
    for values in refused.head(ROW_LIMIT).select(front + delivered).iter_rows():
        rows.append(["" if v is None else v if isinstance(v, (int, float)) else str(v) for v in values])
    if refused.height > ROW_LIMIT:
        rows.append([f"… và {refused.height - ROW_LIMIT:,} dòng khác (and {refused.height - ROW_LIMIT:,} more)"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def summary_lines(summary: Summary) -> list[str]:
    """The summary in Vietnamese for a console (the validator prints it)."""
    lines = [
        f"Tệp: {summary.file} (nguồn {summary.feed}" + (f", bảng mã {summary.encoding})" if summary.encoding else ")"),
        f"  Số dòng đã đọc: {summary.rows_read:,}; chấp nhận: {summary.rows_accepted:,}; "
        f"bị loại: {summary.rows_refused:,}",
    ]
    for rule, count in sorted(summary.refused_by_rule.items(), key=lambda item: (-item[1], item[0])):
        vi = summary.rule_texts.get(rule, ("", ""))[0]
        lines.append(f"    {count:>6,} dòng: {vi} [{rule}]")
    lines.append(f"  Kết quả: {summary.state_vi}. {summary.decision_vi}")
    return lines
