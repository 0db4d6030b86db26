"""Row rules every feed that names communes shares: the resolver's errors, one rule each.

The rule names are the resolver's error codes (`ioc_pipeline.units.UnitResolver`), so a
quarantined row says exactly why its unit was not accepted; the reason carries the resolver's
sentence (e.g. which districts a `Phường 1` exists in). Names are never guessed.
"""

from __future__ import annotations

import polars as pl

from ioc_pipeline import parsing, units
from ioc_pipeline.gate import E, Rule

UNIT_ERRORS = ("unit_missing", "unit_unknown", "unit_ambiguous")

UNIT_RULES = [
    Rule(
        "unit_missing",
        E.ExpectColumnValuesToBeNull(column="unit_missing"),
        "Xã/Phường/Thị trấn is missing",
        "Thiếu Xã/Phường/Thị trấn",
    ),
    Rule(
        "unit_unknown",
        E.ExpectColumnValuesToBeNull(column="unit_unknown"),
        "Xã/Phường/Thị trấn names no commune-level unit in force on the snapshot date (or not in the district given)",
        "Xã/Phường/Thị trấn không có trong danh mục đơn vị hành chính tại ngày chốt (hoặc không thuộc huyện đã ghi)",
    ),
    Rule(
        "unit_ambiguous",
        E.ExpectColumnValuesToBeNull(column="unit_ambiguous"),
        "Xã/Phường/Thị trấn matches several units; give the district and the unit type",
        "Xã/Phường/Thị trấn trùng tên nhiều đơn vị; hãy ghi rõ huyện và loại đơn vị",
    ),
]


def unit_rule_columns() -> list[pl.Expr]:
    """The columns UNIT_RULES read, from `units.resolve_columns`' output: one per resolver error,
    holding the resolver's sentence on the rows that got that error."""
    return [pl.when(pl.col("unit_error") == e).then(pl.col("unit_detail")).alias(e) for e in UNIT_ERRORS]


def place_columns() -> list[pl.Expr]:
    """The delivered commune and district names (bronze `commune`, `district`), as `resolved` reads them."""
    return [parsing.text("commune").alias("commune_text"), parsing.text("district").alias("district_text")]


def resolved(typed: pl.DataFrame) -> pl.DataFrame:
    """Resolve each row's `place_columns` on its `snapshot_date` (old and new units) and add the
    columns UNIT_RULES read: the one step every feed that names communes shares."""
    return units.resolve_columns(typed, "commune_text", "district_text", "snapshot_date").with_columns(
        unit_rule_columns()
    )
