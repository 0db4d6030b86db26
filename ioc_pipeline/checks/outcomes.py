"""What the gate decided about each batch, kept where people and `ops.feed_status` can read it.

    gate_batch ──record()──► lake ops/gate_results/feed=<table>/  one row per batch in force
                        ├──► lake ops/feedback/<table>/<file>.xlsx  the department's feedback workbook
                        └──► lake ops/quality/<table>/<batch>.html  the batch's quality page (every rule,
                             its Vietnamese and English text, rows checked and refused, a sample, the decision)
    a blocked batch ──alert_blocked()──► ops/alerts (once per batch), the log, the webhook

A snapshot feed keeps one row (its newest batch); the dossiers keep one row per month.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg
import polars as pl

from ioc_pipeline import alerts, feedback, provinces
from ioc_pipeline.gate import Decision, GateResult, Rule
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

LAYER, TABLE = "ops", "gate_results"
SOURCE_FILE = "_source_file"

SCHEMA: dict[str, PolarsDataType] = {
    "batch": pl.String,
    "source_files": pl.List(pl.String),
    "delivered_rows": pl.Int64,
    "clean_rows": pl.Int64,
    "refused_rows": pl.Int64,
    "refused_share": pl.Float64,
    "decision": pl.String,
    "reason_vi": pl.String,
    "reason_en": pl.String,
    "feedback_files": pl.List(pl.String),
    "quality_page": pl.String,
    "checked_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String,
}

DOCS = {
    "ops.gate_results": TableDoc(
        "Kết quả kiểm tra chất lượng của từng lô dữ liệu đang có hiệu lực",
        "The quality gate's decision on each batch in force",
        {
            "feed": ("Nguồn dữ liệu (bảng)", "feed (its table)"),
            "batch": ("Lô: ngày chốt của bản danh sách, hoặc tháng hồ sơ", "batch: snapshot date, or dossier month"),
            "source_files": ("Các tệp của lô", "files of the batch"),
            "delivered_rows": ("Số dòng đã nhận", "rows delivered"),
            "clean_rows": ("Số dòng hợp lệ", "rows accepted"),
            "refused_rows": ("Số dòng bị loại", "rows refused"),
            "refused_share": ("Tỷ lệ dòng bị loại (0–1)", "share of rows refused (0-1)"),
            "decision": ("Quyết định: published hoặc blocked", "decision: published or blocked"),
            "reason_vi": ("Lý do, kèm số liệu (tiếng Việt)", "reason with its numbers, Vietnamese"),
            "reason_en": ("Lý do, kèm số liệu (tiếng Anh)", "reason with its numbers, English"),
            "feedback_files": ("Sổ phản hồi gửi đơn vị (.xlsx)", "feedback workbooks for the department"),
            "quality_page": ("Trang kết quả kiểm tra chất lượng (.html)", "the batch's quality page"),
            "checked_at": ("Thời điểm kiểm tra", "checked at"),
            "run_id": ("Mã lần chạy Dagster", "Dagster run id"),
        },
    )
}


@dataclass
class Outcome:
    table: str
    batch: str
    decision: Decision
    feedback_files: list[str] = field(default_factory=list)
    quality_page: str = ""

    def links(self) -> dict[str, Any]:
        """The quality page and the feedback workbooks, as metadata links (checks and materializations)."""
        return {
            "quality_page": dg.MetadataValue.path(self.quality_page),
            **{f"feedback {posixpath.basename(p)}": dg.MetadataValue.path(p) for p in self.feedback_files[:20]},
        }

    def metadata(self) -> dict[str, Any]:
        vi, en = self.decision.reason()
        return {
            "decision": "published" if self.decision.published else "blocked",
            "decision_reason": en,
            "decision_reason_vi": vi,
            "batch": self.batch,
            **self.links(),
        }


def _workbook_name(table: str, batch: str, file: str | None) -> str:
    if not file:
        return f"{table}/{table}_{batch}.xlsx"
    # a former province's files (`92/procedures/…`) get its folder: two provinces deliver the same names
    folder = f"{provinces.of_path(file)}/" if provinces.partitioned() else ""
    return f"{table}/{folder}{posixpath.basename(file)}.xlsx"


def quality_summary(
    table: str,
    batch: str,
    files: list[str],
    result: GateResult,
    decision: Decision,
    rules: list[Rule],
    quarantine: pl.DataFrame,
) -> dict[str, Any]:
    """What `report.quality.render_quality_page` shows: only the delivered columns a rule may show."""
    vi, en = decision.reason()
    shown = feedback.visible_columns(quarantine)
    columns = [c for c in shown if c not in {"source_file", "source_row", "rule", "rules", "reason", "reason_vi"}]
    sample = [
        {
            "source_file": row["source_file"],
            "source_row": row["source_row"],
            "rule": row["rule"],
            "reason_vi": row["reason_vi"],
            "reason_en": row["reason"],
            "values": {c: row[c] for c in columns if row.get(c) is not None},
        }
        for row in quarantine.head(20).iter_rows(named=True)
    ]
    return {
        "feed": table,
        "table": table,
        "batch": batch,
        "source_files": files,
        "delivered_rows": decision.delivered,
        "clean_rows": decision.clean,
        "refused_rows": decision.refused,
        "decision": "published" if decision.published else "blocked",
        "decision_vi": vi,
        "decision_en": en,
        "policy": {
            "max_refused_share": decision.policy.max_refused_share,
            "min_refused_rows": decision.policy.min_refused_rows,
            "min_row_ratio": decision.policy.min_row_ratio,
        },
        "rules": [
            {
                "name": rule.name,
                "text_vi": rule.vi or rule.message,
                "text_en": rule.message,
                "checked": decision.delivered,
                "refused": result.failures.get(rule.name, result.warnings.get(rule.name, 0)),
                "warn_only": rule.name in decision.policy.warn_only,
            }
            for rule in rules
        ],
        "sample": sample,
    }


def record(
    store: Lake,
    table: str,
    batch: str,
    delivered: pl.DataFrame,
    quarantine: pl.DataFrame,
    result: GateResult,
    decision: Decision,
    rules: list[Rule],
    run_id: str,
    per_file: bool = True,
    province: str | None = None,
) -> Outcome:
    """Write the feedback workbook(s) and the quality page of the batch, and its row in ops/gate_results."""
    from ioc_pipeline.report.quality import render_quality_page

    texts = {r.name: (r.vi or r.message, r.message) for r in rules}
    vi, en = decision.reason()
    files = sorted(delivered.get_column(SOURCE_FILE).unique().to_list()) if SOURCE_FILE in delivered.columns else []
    written: list[str] = []
    units = files if per_file else [None]
    for file in units:
        rows = delivered.filter(pl.col(SOURCE_FILE) == file) if file else delivered
        refused = quarantine.filter(pl.col("source_file") == file) if file else quarantine
        summary = feedback.Summary(
            feed=table,
            file=file or f"{table} {batch}",
            rows_read=rows.height,
            rows_accepted=rows.height - refused.height,
            rows_refused=refused.height,
            refused_by_rule=dict(refused.group_by("rule").len().iter_rows()) if refused.height else {},
            rule_texts=texts,
            published=decision.published,
            decision_vi=vi,
            decision_en=en,
        )
        name = _workbook_name(table, batch, file)
        written.append(store.write_bytes(f"ops/feedback/{name}", feedback.workbook(summary, refused)))
    page = render_quality_page(quality_summary(table, batch, files, result, decision, rules, quarantine))
    quality = store.write_bytes(f"ops/quality/{table}/{table}_{batch}.html", page.encode("utf-8"))
    row = pl.DataFrame(
        [
            {
                "batch": batch,
                "source_files": files,
                "delivered_rows": decision.delivered,
                "clean_rows": decision.clean,
                "refused_rows": decision.refused,
                "refused_share": round(decision.share, 6),
                "decision": "published" if decision.published else "blocked",
                "reason_vi": vi,
                "reason_en": en,
                "feedback_files": written,
                "quality_page": quality,
                "checked_at": datetime.now(UTC),
                "run_id": run_id,
            }
        ],
        schema=SCHEMA,
    )
    partition = f"feed={table}" + (f"/{province}" if province else "")  # a former province's own row(s)
    if not per_file:  # one row per batch (month): keep the other batches' rows
        previous = store.read_partition(LAYER, TABLE, partition)
        if previous is not None:
            row = pl.concat([previous.select(list(SCHEMA)).filter(pl.col("batch") != batch), row]).sort("batch")
    store.write(row, LAYER, TABLE, partition)
    return Outcome(table, batch, decision, written, quality)


def alert_blocked(store: Lake, outcome: Outcome, run_id: str, job_name: str, webhook_url: str | None = None) -> None:
    """One alert per blocked batch (the same batch re-gated by later runs is not alerted again)."""
    vi, en = outcome.decision.reason()
    digest = f"{outcome.decision.delivered}:{outcome.decision.refused}:{outcome.decision.clean}"
    alerts.raise_once(
        store,
        alerts.Alert(
            kind="batch_blocked",
            job_name=job_name,
            run_id=run_id,
            message=f"{en} / {vi}",
            subject=f"{outcome.table}:{outcome.batch}:{digest}",
        ),
        webhook_url,
    )


def read(store: Lake) -> pl.DataFrame:
    """Every feed's batches in force, with the `feed` column (empty when nothing was gated yet)."""
    if not store.exists(LAYER, TABLE):
        return pl.DataFrame(schema={"feed": pl.String, **SCHEMA})
    return store.read(LAYER, TABLE)
