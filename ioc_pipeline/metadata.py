"""Materialization metadata every asset attaches: row count, schema, a markdown preview."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl

# Columns every silver, quarantine and gold table of a delivery carries (provinces.py), documented once: a
# table's own doc may still describe them otherwise (silver.admin_units' province_code is a unit's).
SHARED_COLUMNS: dict[str, tuple[str, str]] = {
    "province_code": (
        "Mã tỉnh cũ (trước 01/7/2025) đã gửi dữ liệu: 92 Cần Thơ, 93 Hậu Giang, 94 Sóc Trăng; dòng "
        "province_scope = merged_city: 92, cả thành phố Cần Thơ sau sáp nhập",
        "former (pre-July-2025) province that delivered the data: 92 Cần Thơ, 93 Hậu Giang, 94 Sóc Trăng; on "
        "province_scope = merged_city rows: 92, the whole merged Cần Thơ city",
    ),
    "province_scope": (
        "Phạm vi số liệu: former_province = một tỉnh cũ (province_code), merged_city = cả thành phố Cần Thơ "
        "sau sáp nhập, theo đơn vị hành chính mới (chỉ khi nhận dữ liệu của nhiều tỉnh cũ)",
        "scope of the figures: former_province = one former province (province_code), merged_city = the whole "
        "merged Cần Thơ city by its new units (only when several former provinces deliver)",
    ),
}


@dataclass(frozen=True)
class TableDoc:
    """What a published table means, in Vietnamese and English (warehouse comments, UI schema)."""

    vi: str
    en: str
    columns: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (vi, en)
    other: tuple[str, str] | None = None  # any column not listed (a delivered table's extra headers)

    @property
    def texts(self) -> tuple[str, str]:
        return self.vi, self.en

    def comment(self) -> str:
        return f"{self.vi} / {self.en}"

    def column_comment(self, column: str) -> str | None:
        found = self.columns.get(column) or SHARED_COLUMNS.get(column) or self.other
        return f"{found[0]} / {found[1]}" if found else None


def table_metadata(
    frame: pl.DataFrame, preview_rows: int = 5, doc: TableDoc | None = None, **extra: Any
) -> dict[str, Any]:
    """Row count, column schema and a preview; never pass a frame that holds personal data."""
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), description=doc.column_comment(name) if doc else None)
            for name, dtype in frame.schema.items()
        ]
    )
    preview = frame.head(preview_rows)
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": schema,
        "preview": dg.MetadataValue.md(_markdown(preview)),
        **extra,
    }


def _markdown(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "_(no rows)_"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = [
        "| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |"
        for row in frame.iter_rows()
    ]
    return "\n".join([header, rule, *body])
