"""Reference data: Vietnam's administrative units before and after the 2025 reform.

    vietnamadminunits (package data, offline) ──► silver/admin_units
                                              └─► silver/admin_unit_crosswalk (old commune → new unit)

Every feed resolves unit names with `ioc_pipeline.units`; these tables let analysts join the
same codes, and read any figure by the old units (history) or the new ones (today's IOC).
"""

from collections.abc import Callable

import dagster as dg
import polars as pl

from ioc_pipeline import provinces, units
from ioc_pipeline.assets.layers import OWNERS
from ioc_pipeline.metadata import TableDoc, table_metadata
from ioc_pipeline.policies import pool_for
from ioc_pipeline.resources import LakeResource

GROUP = "reference"

# The unit columns every feed that names communes carries (silver and gold), documented once.
UNIT_DOCS = {
    "commune_code": ("Mã xã/phường/thị trấn (trước 2025)", "pre-2025 commune code (GSO)"),
    "commune_name": ("Tên xã/phường/thị trấn (trước 2025)", "pre-2025 commune name"),
    "district_code": ("Mã huyện/thị xã/thành phố (trước 2025)", "pre-2025 district code"),
    "district_name": ("Tên huyện/thị xã/thành phố (trước 2025)", "pre-2025 district name"),
    "new_unit_code": ("Mã đơn vị hành chính cấp xã sau sắp xếp 2025", "post-2025 commune-level unit code"),
    "new_unit_name": ("Tên đơn vị hành chính sau sắp xếp 2025", "post-2025 unit name"),
}

DOCS = {
    "silver.admin_units": TableDoc(
        "Đơn vị hành chính trước và sau sắp xếp 2025 (Sóc Trăng 94, Cần Thơ 92)",
        "Administrative units before and after the 2025 reform (Sóc Trăng 94, Cần Thơ 92)",
        {
            "unit_code": ("Mã đơn vị hành chính (GSO)", "GSO unit code; reused across eras, key with era"),
            "unit_name": ("Tên đơn vị", "official name"),
            "unit_type": ("Loại đơn vị", "unit type"),
            "level": ("Cấp: province/district/commune", "level"),
            "parent_code": ("Mã đơn vị cấp trên", "parent unit code"),
            "province_code": ("Mã tỉnh/thành phố", "province code"),
            "era": ("Thời kỳ: pre_2025/post_2025", "era of validity"),
            "valid_from": ("Hiệu lực từ", "valid from"),
            "valid_to": ("Hiệu lực đến", "valid to"),
            "latitude": ("Vĩ độ trung tâm (WGS84)", "latitude of the unit's centre (WGS84)"),
            "longitude": ("Kinh độ trung tâm (WGS84)", "longitude of the unit's centre (WGS84)"),
        },
    ),
    "silver.admin_unit_crosswalk": TableDoc(
        "Bảng chuyển đổi xã cũ sang đơn vị mới sau sắp xếp 2025",
        "Crosswalk from each pre-2025 commune to its post-reform unit",
        {
            "old_commune_code": ("Mã xã cũ", "pre-2025 commune code"),
            "old_commune_name": ("Tên xã cũ", "pre-2025 commune name"),
            "old_district_code": ("Mã huyện cũ", "pre-2025 district code"),
            "old_district_name": ("Tên huyện cũ", "pre-2025 district name"),
            "new_unit_name": ("Tên đơn vị mới", "post-2025 unit name"),
            "distance_km": (
                "Khoảng cách giữa tâm xã cũ và tâm đơn vị mới (km)",
                "distance between the old commune's centre and the new unit's centre (km)",
            ),
            "new_unit_code": ("Mã đơn vị mới", "post-2025 unit code"),
            "is_primary": ("Đơn vị mới chính", "primary target when the commune was split"),
            "is_split": ("Xã cũ bị chia tách", "the old commune went to several new units"),
        },
    ),
}


@dg.asset(
    key=["silver", "admin_units"],
    group_name=GROUP,
    kinds={"polars", "parquet"},
    owners=OWNERS,
    pool=pool_for("silver", "admin_units"),
    description="Units of Sóc Trăng (94) before the 2025 reform and of Cần Thơ city (92) after it, with validity.",
)
def admin_units(lake: LakeResource) -> dg.MaterializeResult:
    table = units.admin_units(provinces.codes())
    lake.lake().write(table, "silver", "admin_units")
    return dg.MaterializeResult(metadata=table_metadata(table, doc=DOCS["silver.admin_units"]))


@dg.asset(
    key=["silver", "admin_unit_crosswalk"],
    group_name=GROUP,
    kinds={"polars", "parquet"},
    owners=OWNERS,
    pool=pool_for("silver", "admin_unit_crosswalk"),
    description="Every pre-2025 commune of Sóc Trăng and the post-reform unit(s) it became.",
)
def admin_unit_crosswalk(lake: LakeResource) -> dg.MaterializeResult:
    table = units.admin_unit_crosswalk(provinces.codes())
    lake.lake().write(table, "silver", "admin_unit_crosswalk")
    return dg.MaterializeResult(metadata=table_metadata(table, doc=DOCS["silver.admin_unit_crosswalk"]))


def old_communes() -> pl.DataFrame:
    """Every pre-2025 commune of the former provinces in scope (provinces.in_scope: one former province, or
    the merged city's) with its district and its primary post-2025 unit."""
    return (
        units.admin_unit_crosswalk(provinces.in_scope())
        .filter(pl.col("is_primary"))
        .select(
            pl.col("old_commune_code").alias("commune_code"),
            pl.col("old_commune_name").alias("commune_name"),
            pl.col("old_district_code").alias("district_code"),
            pl.col("old_district_name").alias("district_name"),
            "new_unit_code",
            "new_unit_name",
        )
        .sort("commune_code")
    )


def new_units(extra: pl.DataFrame | None = None) -> pl.DataFrame:
    """The post-2025 units the old communes became (plus any unit a post-reform register names)."""
    mapped = (
        old_communes()
        .group_by("new_unit_code", "new_unit_name")
        .agg(pl.col("commune_code").sort().alias("old_commune_codes"))
    )
    if extra is not None and extra.height:
        named = extra.select("new_unit_code", "new_unit_name").unique().drop_nulls("new_unit_code")
        mapped = pl.concat(
            [mapped, named.join(mapped, on="new_unit_code", how="anti").with_columns(old_commune_codes=pl.lit([]))],
            how="diagonal_relaxed",
        )
    return mapped.sort("new_unit_code")


NEW_UNIT_COLUMNS = ["new_unit_code", "new_unit_name", "old_commune_codes"]


def roll_up(rows: pl.DataFrame, key: str, counts: Callable[[pl.DataFrame, str], pl.DataFrame]) -> pl.DataFrame:
    """`counts(rows, key)` on every unit of `key`'s era: `commune_code` (all pre-2025 communes, with
    their district and new unit) or `new_unit_code` (the post-2025 units). A unit with no row is kept,
    its counts null for the caller to fill; rows naming no unit of that era are left out."""
    units_of_era = old_communes() if key == "commune_code" else new_units(rows)
    return units_of_era.join(counts(rows.filter(pl.col(key).is_not_null()), key), on=key, how="left")


def by_unit(
    rows: pl.DataFrame,
    level: str,
    counts: Callable[[pl.DataFrame, str], pl.DataFrame],
    fill: Callable[[pl.DataFrame, object], pl.DataFrame],
    count_columns: list[str],
) -> pl.DataFrame:
    """The gold skeleton every network feed shares: its counts per old commune (`level="commune"`) or per
    new unit (`"new_unit"`), every unit of the province listed, as of the newest snapshot of `rows`."""
    key, columns = ("commune_code", list(UNIT_DOCS)) if level == "commune" else ("new_unit_code", NEW_UNIT_COLUMNS)
    table = fill(roll_up(rows, key, counts), rows["snapshot_date"].max())
    return table.select("as_of_date", *columns, *count_columns)
