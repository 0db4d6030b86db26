"""`ops/feed_status`: one row per feed (per carrier for the BTS registers), for the IOC and the committee.

    landing zone (files, names, dates) ─┐
    ops/landing_files, ops/refused_files ┤
    ops/gate_results (decisions)        ├──► ops/feed_status ──► publish/warehouse (ops.feed_status)
    silver/* (snapshots published)      ┘

The state says, in this order of precedence: `never_delivered` (no file yet, nothing published),
`file_refused` (the newest file could not be read), `blocked` (the newest batch broke the feed's
quality policy: the last good version stays published), `late` (no new snapshot within the cadence
of the contract's "Who delivers, and how often" table), or `published`. The reason carries the
numbers, in Vietnamese and English.
"""

import posixpath
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl

from ioc_pipeline import feeds, parsing, provinces
from ioc_pipeline.assets.layers import OWNERS
from ioc_pipeline.checks import outcomes
from ioc_pipeline.lake import FileInfo, Lake, Landing
from ioc_pipeline.metadata import TableDoc, table_metadata
from ioc_pipeline.policies import pool_for
from ioc_pipeline.resources import DossierGatewayResource, LakeResource, LandingResource
from ioc_pipeline.sources.files import DeliveryError, snapshot_of

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

GROUP = "ops"
KEY = dg.AssetKey(["ops", "feed_status"])
STATES = ("published", "blocked", "file_refused", "late", "never_delivered")

SCHEMA: "dict[str, PolarsDataType]" = {
    "province_code": pl.String,
    "feed": pl.String,
    "carrier": pl.String,
    "department_vi": pl.String,
    "department_en": pl.String,
    "cadence_vi": pl.String,
    "cadence": pl.String,
    "late_after_days": pl.Int64,
    "last_file": pl.String,
    "last_file_received_at": pl.Datetime("us", parsing.TIMEZONE),
    "last_snapshot_delivered": pl.Date,
    "last_published_snapshot": pl.Date,
    "state": pl.String,
    "reason_vi": pl.String,
    "reason_en": pl.String,
    "checked_at": pl.Datetime("us", parsing.TIMEZONE),
}

DOCS = {
    "ops.feed_status": TableDoc(
        "Tình trạng từng nguồn dữ liệu: đơn vị gửi, tần suất, lần gửi cuối, đã công bố, bị chặn hay trễ hạn",
        "State of every feed: who delivers it, how often, the last delivery, and whether it is published, "
        "blocked or late",
        {
            "feed": ("Nguồn dữ liệu (bảng)", "feed (table)"),
            "carrier": ("Doanh nghiệp viễn thông (chỉ với trạm BTS)", "carrier (BTS registers only)"),
            "department_vi": ("Đơn vị chịu trách nhiệm gửi", "department that delivers it, in Vietnamese"),
            "department_en": ("Đơn vị chịu trách nhiệm gửi (tiếng Anh)", "department that delivers it"),
            "cadence_vi": ("Tần suất gửi theo quy định", "cadence, in Vietnamese"),
            "cadence": ("Tần suất gửi (tiếng Anh)", "cadence the contract sets"),
            "late_after_days": ("Trễ hạn sau số ngày không có dữ liệu mới", "late after this many days without news"),
            "last_file": ("Tệp gửi gần nhất", "newest delivered file"),
            "last_file_received_at": ("Thời điểm nhận tệp gần nhất (giờ Việt Nam)", "when it arrived (Vietnam time)"),
            "last_snapshot_delivered": ("Ngày chốt của dữ liệu gửi gần nhất", "snapshot date of the newest delivery"),
            "last_published_snapshot": ("Ngày chốt của dữ liệu đang công bố", "snapshot date of the published data"),
            "state": (
                "Tình trạng: published, blocked, file_refused, late, never_delivered",
                "state: published, blocked, file_refused, late, never_delivered",
            ),
            "reason_vi": ("Lý do, kèm số liệu", "reason with its numbers, Vietnamese"),
            "reason_en": ("Lý do, kèm số liệu (tiếng Anh)", "reason with its numbers, English"),
            "checked_at": ("Thời điểm đánh giá (giờ Việt Nam)", "checked at (Vietnam time)"),
        },
    )
}


@dataclass
class Inputs:
    """What the status is judged from, read once."""

    landing: Landing
    lake: Lake
    gates: pl.DataFrame
    refused: pl.DataFrame  # ops/refused_files (path, sha256, reason, reason_vi), empty when absent
    today: date
    api: frozenset[str]  # the former provinces whose dossiers come through a gateway API


def _refused_files(store: Lake) -> pl.DataFrame:
    if not store.exists("ops", "refused_files"):
        return pl.DataFrame(schema={"path": pl.String, "reason": pl.String, "reason_vi": pl.String})
    return store.read("ops", "refused_files")


def _snapshot(path: str) -> date | None:
    try:
        day = date.fromisoformat(snapshot_of(path))
    except DeliveryError:
        return None
    if posixpath.basename(path).lower().rsplit(".", 1)[0][-7:-6] == "_":  # …_YYYYMM: a month, complete at its end
        return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return day


def _newest(files: list[FileInfo]) -> FileInfo | None:
    dated = [(s, f.path, f) for f in files if (s := _snapshot(f.path)) is not None]
    return max(dated)[2] if dated else (max(files, key=lambda f: f.modified) if files else None)


def _published(store: Lake, table: str, column: str, carrier: str | None, province: str) -> date | None:
    if not store.exists("silver", table):
        return None
    frame = store.scan("silver", table)
    if provinces.partitioned():  # the former province's own rows
        frame = frame.filter(pl.col("province_code") == province)
    if carrier:
        frame = frame.filter(pl.col("carrier") == carrier)
    value = frame.select(pl.col(column).max()).collect().item()
    return value.date() if isinstance(value, datetime) else value


def status_row(spec: feeds.FeedSpec, inputs: Inputs, carrier: str | None = None, province: str | None = None) -> dict:
    """The state of one feed (or one carrier of the BTS feed) of one former province (provinces.py), with the
    reason in both languages."""
    table = spec.name
    province = province or provinces.codes()[0]
    delivered = next(f for code, f, _ in provinces.deliveries(spec.source, inputs.landing) if code == province)
    files = inputs.landing.matching(delivered.patterns)
    if carrier and spec.source.partition_of:
        files = [f for f in files if spec.source.partition_of(f.path) == carrier]
    newest = _newest(files)
    api = table == "dossiers" and province in inputs.api
    column = "updated_at" if table == "dossiers" else "snapshot_date"
    published = _published(inputs.lake, table, column, carrier, province)
    late_after = spec.api_late_after if api and spec.api_late_after else spec.late_after
    row = {
        "province_code": province,
        "feed": table,
        "carrier": carrier,
        "department_vi": spec.owner.vi,
        "department_en": spec.owner.en,
        "cadence_vi": spec.cadence[0],
        "cadence": spec.cadence[1],
        "late_after_days": late_after.days,
        "last_file": newest.path if newest else None,
        "last_file_received_at": datetime.fromtimestamp(newest.modified, ZoneInfo(parsing.TIMEZONE))
        if newest
        else None,
        "last_snapshot_delivered": _snapshot(newest.path) if newest else None,
        "last_published_snapshot": published,
    }
    who = f"{table}" + (f" ({carrier})" if carrier else "") + (f" [{province}]" if provinces.several() else "")

    def verdict(state: str, vi: str, en: str) -> dict:
        return {**row, "state": state, "reason_vi": vi, "reason_en": en}

    if newest is None and published is None:
        source = "qua API" if api else "tệp nào"
        return verdict(
            "never_delivered",
            f"{who}: chưa nhận được {source} từ {spec.owner.vi}",
            f"{who}: nothing received yet from the {spec.owner.en}"
            + ("" if api else f" (no file matching {', '.join(spec.source.patterns)})"),
        )
    if newest is not None and not inputs.refused.is_empty():
        refused = inputs.refused.filter(pl.col("path") == newest.path)
        if refused.height:
            last = refused.row(refused.height - 1, named=True)
            keeps = (
                f"; dữ liệu ngày {published} vẫn được công bố" if published else "; chưa có dữ liệu nào được công bố"
            )
            keeps_en = f"; the {published} data stays published" if published else "; nothing published yet"
            return verdict(
                "file_refused",
                f"{who}: tệp {newest.path} bị từ chối: {last.get('reason_vi') or last.get('reason')}{keeps}",
                f"{who}: file {newest.path} refused: {last.get('reason')}{keeps_en}",
            )
    gates = inputs.gates.filter(pl.col("feed") == table) if not inputs.gates.is_empty() else inputs.gates
    if provinces.partitioned() and gates.height:  # the province's own batches (`<batch>_<code>`)
        gates = gates.filter(pl.col("batch").str.ends_with(f"_{province}"))
    if gates.height:
        last_gate = gates.sort("batch").row(gates.height - 1, named=True)
        if last_gate["decision"] == "blocked":
            keeps = (
                f"; dữ liệu ngày {published} vẫn được công bố" if published else "; chưa có dữ liệu nào được công bố"
            )
            keeps_en = f"; the {published} data stays published" if published else "; nothing published yet"
            return verdict("blocked", f"{last_gate['reason_vi']}{keeps}", f"{last_gate['reason_en']}{keeps_en}")
    reference = _snapshot(newest.path) if newest and not api else published
    if reference is not None and inputs.today - reference > late_after:
        overdue = (inputs.today - reference).days
        return verdict(
            "late",
            f"{who}: dữ liệu mới nhất ngày {reference}, đã {overdue} ngày không có dữ liệu mới "
            f"(quy định: trễ sau {late_after.days} ngày); {spec.owner.vi} cần gửi bản mới",
            f"{who}: newest data of {reference}, {overdue} days without news (late after "
            f"{late_after.days} days); the {spec.owner.en} must deliver",
        )
    return verdict(
        "published",
        f"{who}: đã công bố dữ liệu ngày {published}",
        f"{who}: data of {published} published",
    )


def feed_status(inputs: Inputs, checked_at: datetime) -> pl.DataFrame:
    rows: list[dict] = []
    for code in provinces.codes():
        for spec in feeds.feeds():
            carriers = spec.parts or (None,)
            rows.extend(status_row(spec, inputs, carrier, code) for carrier in carriers)
    return pl.DataFrame([{**r, "checked_at": checked_at} for r in rows], schema=SCHEMA)


def _inputs_keys() -> list[dg.AssetKey]:
    keys = []
    for spec in feeds.feeds():
        keys += [dg.AssetKey([layer, spec.name]) for layer in ("bronze", "silver", "quarantine")]
    return keys


@dg.asset(
    key=KEY,
    deps=_inputs_keys(),
    group_name=GROUP,
    kinds={"polars", "parquet"},
    owners=OWNERS,
    pool=pool_for("ops", "feed_status"),
    description="One row per feed (per carrier for BTS): department, cadence, last delivery, last published "
    "snapshot, and the state (published, blocked, file_refused, late, never_delivered) with its reason.",
)
def ops_feed_status(
    context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource, gateway: DossierGatewayResource
) -> dg.MaterializeResult:
    store = lake.lake()
    now = datetime.now(ZoneInfo(parsing.TIMEZONE))
    inputs = Inputs(
        landing=landing.landing(),
        lake=store,
        gates=outcomes.read(store),
        refused=_refused_files(store),
        today=now.date(),
        api=gateway.api_provinces(),
    )
    table = feed_status(inputs, now)
    store.write(table, "ops", "feed_status")
    for row in table.filter(pl.col("state") != "published").iter_rows(named=True):
        context.log.warning(f"feed {row['feed']}{' ' + row['carrier'] if row['carrier'] else ''}: {row['reason_en']}")
    return dg.MaterializeResult(
        metadata=table_metadata(
            table.select("feed", "carrier", "state", "last_published_snapshot", "reason_en"),
            preview_rows=20,
            doc=DOCS["ops.feed_status"],
            states=dict(table.group_by("state").len().sort("state").iter_rows()),
        )
    )
