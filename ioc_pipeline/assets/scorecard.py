"""`gold/ioc_scorecard`: the IOC's headline table, one row per indicator and snapshot.

    gold/<domain tables> ──indicators(lake)──► gold/ioc_scorecard

Each domain module of `feeds.DOMAINS` that has indicators exposes `indicators(lake) -> list[dict]`
and `INDICATOR_INPUTS` (the assets they read): `PARTS` is derived from that list. Indicator codes
are stable: dashboards select by them. A feed whose newest batch was blocked contributes its last
good figures, dated by their own snapshot.
Rows of earlier snapshots are kept, so the scorecard is also the indicators' history.
"""

from collections.abc import Callable

import dagster as dg
import polars as pl

from ioc_pipeline.assets.layers import OWNERS
from ioc_pipeline.feeds import DOMAINS
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc, table_metadata
from ioc_pipeline.policies import pool_for
from ioc_pipeline.resources import LakeResource

Indicators = Callable[[Lake], list[dict]]

PARTS: list[tuple[list[dg.AssetKey], Indicators]] = [
    (module.INDICATOR_INPUTS, module.indicators)
    for module in (domain.module() for domain in DOMAINS)
    if hasattr(module, "indicators")
]

SCHEMA = {
    "indicator_code": pl.String,
    "indicator_name_vi": pl.String,
    "value": pl.Float64,
    "unit": pl.String,
    "as_of_date": pl.Date,
    "source_asset": pl.String,
}

DOCS = {
    "gold.ioc_scorecard": TableDoc(
        "Bảng chỉ tiêu tổng hợp của IOC (một dòng cho mỗi chỉ tiêu và ngày chốt)",
        "The IOC's headline indicators, one row per indicator and snapshot",
        {
            "indicator_code": ("Mã chỉ tiêu (ổn định)", "stable indicator code"),
            "indicator_name_vi": ("Tên chỉ tiêu", "indicator name in Vietnamese"),
            "value": ("Giá trị", "value"),
            "unit": ("Đơn vị: count hoặc percent (0–100)", "unit: count or percent on 0-100"),
            "as_of_date": ("Ngày chốt số liệu", "as-of date of the figure"),
            "source_asset": ("Tài sản dữ liệu nguồn", "asset the figure comes from"),
        },
    )
}


def merge_history(previous: pl.DataFrame | None, current: pl.DataFrame) -> pl.DataFrame:
    """Current rows replace those of the same indicator and date; other dates stay as history."""
    if previous is None or previous.is_empty():
        return current
    kept = previous.join(current, on=["indicator_code", "as_of_date"], how="anti")
    return pl.concat([kept.select(list(SCHEMA)), current]).sort("indicator_code", "as_of_date")


@dg.asset(
    key=["gold", "ioc_scorecard"],
    deps=[key for keys, _ in PARTS for key in keys],
    group_name="scorecard",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    pool=pool_for("gold", "ioc_scorecard"),
    description="The IOC's headline indicators: one row per indicator and snapshot, percent on 0–100.",
)
def ioc_scorecard(lake: LakeResource) -> dg.MaterializeResult:
    store = lake.lake()
    rows = [row for _, indicators in PARTS for row in indicators(store)]
    current = pl.DataFrame(rows, schema=SCHEMA).sort("indicator_code", "as_of_date")
    previous = store.read("gold", "ioc_scorecard") if store.exists("gold", "ioc_scorecard") else None
    table = merge_history(previous, current)
    store.write(table, "gold", "ioc_scorecard")
    return dg.MaterializeResult(
        metadata=table_metadata(current, preview_rows=100, doc=DOCS["gold.ioc_scorecard"], history_rows=table.height)
    )
