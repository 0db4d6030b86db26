"""What became of every file in the landing zone, and the ledger of refused files.

    each bronze run of a feed ──► lake/ops/landing_files/feed=<table>/data.parquet   (one row per file, replaced)
    a file refused for the first time ──► lake/ops/refused_files/feed=<table>/data.parquet (one row per path+sha256)

A file's fate is one of `FATES`. A refused file is recorded once (per path and content hash) and skipped by
later runs with "refused earlier: …" until a new file, or the same name with new content, arrives. Both tables
are partitioned by feed, so the bronze steps of two feeds running at once never overwrite each other's rows.
Reasons are given in English (`reason`) and Vietnamese (`reason_vi`, for the department).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import polars as pl

from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

LAYER = "ops"
LANDING_FILES = "landing_files"
REFUSED_FILES = "refused_files"
FATES = ("loaded", "already_loaded", "refused", "ignored", "deferred")

LANDING_FILES_SCHEMA: dict[str, PolarsDataType] = {
    "feed": pl.String,
    "path": pl.String,
    "size": pl.Int64,
    "modified_at": pl.Datetime("us", "UTC"),
    "sha256": pl.String,
    "fate": pl.String,
    "reason": pl.String,
    "reason_vi": pl.String,
    "rows": pl.Int64,
    "encoding": pl.String,
    "load_id": pl.String,
    "seen_at": pl.Datetime("us", "UTC"),
}
REFUSED_FILES_SCHEMA: dict[str, PolarsDataType] = {
    "feed": pl.String,
    "path": pl.String,
    "sha256": pl.String,
    "reason": pl.String,
    "reason_vi": pl.String,
    "refused_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String,
}

DOCS = {
    "ops.landing_files": TableDoc(
        "Số phận của từng tệp trong vùng tiếp nhận ở lần chạy gần nhất của mỗi nguồn dữ liệu",
        "What became of every file in the landing zone, as of each feed's latest bronze run",
        {
            "feed": ("Nguồn dữ liệu (bảng bronze)", "feed (its bronze table)"),
            "path": ("Đường dẫn tệp trong vùng tiếp nhận", "path of the file in the landing zone"),
            "size": ("Kích thước (byte)", "size in bytes"),
            "modified_at": ("Thời điểm sửa đổi tệp (UTC)", "file modification time (UTC)"),
            "sha256": ("Mã băm SHA-256 của nội dung", "SHA-256 of the content (null when not read)"),
            "fate": (
                "Kết quả: loaded, already_loaded, refused, ignored, deferred",
                "fate: loaded, already_loaded, refused, ignored, deferred",
            ),
            "reason": ("Lý do (tiếng Anh)", "reason, in English"),
            "reason_vi": ("Lý do (tiếng Việt, gửi đơn vị giao dữ liệu)", "reason, in Vietnamese (for the department)"),
            "rows": ("Số dòng đã nạp vào bronze", "rows loaded into bronze by this run (loaded files only)"),
            "encoding": ("Bảng mã ký tự đã dùng để đọc", "character encoding the file was read with"),
            "load_id": ("Mã lần nạp dlt", "dlt load id of the rows (loaded files only)"),
            "seen_at": ("Thời điểm lần chạy xem tệp (UTC)", "when the run looked at the file (UTC)"),
        },
    ),
    "ops.refused_files": TableDoc(
        "Các tệp bị từ chối (mỗi tệp và nội dung một lần), kèm lý do",
        "Delivered files refused (once per path and content), with the reason",
        {
            "feed": ("Nguồn dữ liệu (bảng bronze)", "feed (its bronze table)"),
            "path": ("Đường dẫn tệp trong vùng tiếp nhận", "path of the file in the landing zone"),
            "sha256": ("Mã băm SHA-256 của nội dung", "SHA-256 of the refused content"),
            "reason": ("Lý do từ chối (tiếng Anh)", "why it was refused, in English"),
            "reason_vi": ("Lý do từ chối (tiếng Việt)", "why it was refused, in Vietnamese"),
            "refused_at": ("Thời điểm từ chối (UTC)", "when it was first refused (UTC)"),
            "run_id": ("Mã lần chạy Dagster", "Dagster run that refused it"),
        },
    ),
}


@dataclass
class FileFate:
    """One file of a feed's folder and what this run did with it."""

    feed: str
    path: str
    size: int
    modified: float  # POSIX seconds
    fate: str
    reason: str | None = None
    reason_vi: str | None = None
    sha256: str | None = None
    rows: int | None = None
    encoding: str | None = None
    load_id: str | None = None

    def __post_init__(self) -> None:
        assert self.fate in FATES, self.fate

    def line(self) -> str:
        """The run log's line for this file."""
        detail = [f"{self.rows} rows"] if self.rows is not None else []
        detail += [f"encoding {self.encoding}"] if self.encoding else []
        detail += [self.reason] if self.reason else []
        return f"{self.feed}: {self.path}: {self.fate}" + (f" ({'; '.join(detail)})" if detail else "")


def _partition(feed: str, province: str | None = None) -> str:
    """`feed=<feed>`, and under it a former province's own folder when its bronze step writes alone (a
    province partition's run): two provinces' runs never rewrite each other's rows."""
    return f"feed={feed}" + (f"/{province}" if province else "")


def record_fates(
    store: Lake, feed: str, fates: list[FileFate], seen_at: datetime | None = None, province: str | None = None
) -> pl.DataFrame:
    """Replace the feed's rows (of former province `province`'s folder, when given) of `ops/landing_files` with
    this run's fates (other feeds' and provinces' rows are kept)."""
    seen = seen_at or datetime.now(UTC)
    frame = pl.DataFrame(
        [
            {
                "feed": feed,
                "path": f.path,
                "size": f.size,
                "modified_at": datetime.fromtimestamp(f.modified, UTC),
                "sha256": f.sha256,
                "fate": f.fate,
                "reason": f.reason,
                "reason_vi": f.reason_vi,
                "rows": f.rows,
                "encoding": f.encoding,
                "load_id": f.load_id,
                "seen_at": seen,
            }
            for f in fates
        ],
        schema=LANDING_FILES_SCHEMA,
    )
    # the feed is the partition (hive column), not a column of the file
    store.write(frame.drop("feed"), LAYER, LANDING_FILES, _partition(feed, province))
    return frame


def refused_earlier(store: Lake, feed: str, province: str | None = None) -> dict[tuple[str, str], tuple[str, str]]:
    """(path, sha256) -> (reason, reason_vi) of the feed's files refused by earlier runs."""
    found = store.read_partition(LAYER, REFUSED_FILES, _partition(feed, province))
    if found is None:
        return {}
    return {(p, s): (r, v) for p, s, r, v in found.select("path", "sha256", "reason", "reason_vi").iter_rows()}


def record_refused(
    store: Lake, feed: str, fates: list[FileFate], run_id: str, province: str | None = None
) -> list[FileFate]:
    """Add the fates' refused files not recorded yet to `ops/refused_files`; returns those added."""
    earlier = store.read_partition(LAYER, REFUSED_FILES, _partition(feed, province))
    known = set() if earlier is None else set(earlier.select("path", "sha256").iter_rows())
    new = [f for f in fates if f.fate == "refused" and f.sha256 and (f.path, f.sha256) not in known]
    if not new:
        return []
    now = datetime.now(UTC)
    rows = pl.DataFrame(
        [
            {
                "feed": feed,
                "path": f.path,
                "sha256": f.sha256,
                "reason": f.reason,
                "reason_vi": f.reason_vi,
                "refused_at": now,
                "run_id": run_id,
            }
            for f in new
        ],
        schema=REFUSED_FILES_SCHEMA,
    ).drop("feed")
    if earlier is not None:
        rows = pl.concat([earlier.select(rows.columns), rows])
    store.write(rows, LAYER, REFUSED_FILES, _partition(feed, province))
    return new


def read_table(store: Lake, table: str) -> pl.DataFrame:
    """`ops/landing_files` or `ops/refused_files` of every feed, in the documented column order."""
    schema = LANDING_FILES_SCHEMA if table == LANDING_FILES else REFUSED_FILES_SCHEMA
    if not store.exists(LAYER, table):
        return pl.DataFrame(schema=schema)
    return store.read(LAYER, table).select(list(schema))
