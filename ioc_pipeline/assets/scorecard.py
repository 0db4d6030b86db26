"""`gold/ioc_scorecard`: the IOC's headline table, one row per indicator and snapshot.

    gold/<domain tables> ──indicators(lake)──► gold/ioc_scorecard

Each domain module of `feeds.DOMAINS` that has indicators exposes `indicators(lake) -> list[dict]`
and `INDICATOR_INPUTS` (the assets they read): `PARTS` is derived from that list. Indicator codes
are stable: dashboards select by them. A feed whose newest batch was blocked contributes its last
good figures, dated by their own snapshot.
Rows of earlier snapshots are kept, so the scorecard is also the indicators' history.

Each indicator is computed per former province (`scope` former_province, `province_code` its code) and,
when the deployment receives several, for the merged Cần Thơ city (`scope` merged_city, `province_code`
92, by the new units): `indicators` reads the lake through `ScopedLake`, which shows it one scope's rows.
"""

from collections.abc import Callable

import dagster as dg
import polars as pl

from ioc_pipeline import provinces
from ioc_pipeline.assets.layers import (
    OWNERS,
    PROVINCE_COLUMN,
    PROVINCE_DOCS,
    SCOPE_COLUMN,
    SCOPE_DOCS,
    rows_of_scope,
)
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
    PROVINCE_COLUMN: pl.String,
    SCOPE_COLUMN: pl.String,
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
            **PROVINCE_DOCS,
            **SCOPE_DOCS,
            "indicator_code": ("Mã chỉ tiêu (ổn định)", "stable indicator code"),
            "indicator_name_vi": ("Tên chỉ tiêu", "indicator name in Vietnamese"),
            "value": ("Giá trị", "value"),
            "unit": ("Đơn vị: count hoặc percent (0–100)", "unit: count or percent on 0-100"),
            "as_of_date": ("Ngày chốt số liệu", "as-of date of the figure"),
            "source_asset": ("Tài sản dữ liệu nguồn", "asset the figure comes from"),
        },
    )
}


KEY = [PROVINCE_COLUMN, SCOPE_COLUMN, "indicator_code", "as_of_date"]


class ScopedLake(Lake):
    """The lake as one scope's indicators see it: tables that carry `province_code` show that scope's rows
    (a gold table's rows of that scope; a silver table's rows of its former provinces); a table not split by
    province (the dossiers' KPIs) belongs to the merged city, or to the one province of a single-province
    deployment."""

    def __init__(self, store: Lake, scope: provinces.Scope) -> None:
        self.__dict__.update(store.__dict__)
        self.scope = scope

    def exists(self, layer: str, table: str) -> bool:
        return super().exists(layer, table) and not self.read(layer, table).is_empty()

    def read(self, layer: str, table: str) -> pl.DataFrame:
        frame = super().read(layer, table)
        if PROVINCE_COLUMN not in frame.columns:
            whole = self.scope.scope == provinces.SCOPE_MERGED or not provinces.several()
            return frame if whole else frame.clear()
        return rows_of_scope(frame, self.scope)


def merge_history(previous: pl.DataFrame | None, current: pl.DataFrame) -> pl.DataFrame:
    """Current rows replace those of the same scope, indicator and date; other dates stay as history. Rows
    written before provinces were known are the legacy province's."""
    if previous is None or previous.is_empty():
        return current
    legacy = {PROVINCE_COLUMN: provinces.LEGACY[0], SCOPE_COLUMN: provinces.SCOPE_FORMER}
    previous = previous.with_columns(*[pl.lit(v).alias(c) for c, v in legacy.items() if c not in previous.columns])
    kept = previous.join(current, on=KEY, how="anti")
    return pl.concat([kept.select(list(SCHEMA)), current]).sort(KEY)


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
    rows = [
        {PROVINCE_COLUMN: scope.province_code, SCOPE_COLUMN: scope.scope, **row}
        for scope in provinces.scopes()
        for _, indicators in PARTS
        for row in indicators(ScopedLake(store, scope))
    ]
    current = pl.DataFrame(rows, schema=SCHEMA).sort(KEY)
    previous = store.read("gold", "ioc_scorecard") if store.exists("gold", "ioc_scorecard") else None
    table = merge_history(previous, current)
    store.write(table, "gold", "ioc_scorecard")
    return dg.MaterializeResult(
        metadata=table_metadata(current, preview_rows=100, doc=DOCS["gold.ioc_scorecard"], history_rows=table.height)
    )
