"""The carriers' BTS registers, from delivery to the IOC's coverage tables.

    landing/telecom/bts/<carrier>_YYYYMMDD.{csv,xlsx}
        ▼ dlt
    bronze/bts_stations ──gate (checks/telecom.py)──► quarantine/bts_stations
        ▼ newest snapshot per carrier, typed, communes resolved; stations linked into sites (sites.py)
    silver/bts_stations ──► silver/bts_sites ──► gold/telecom_coverage_by_commune   (old units)
                                              ├─► gold/telecom_coverage_by_new_unit  (post-2025 units)
                                              └─► gold/telecom_coverage_gaps ──► gold/ioc_scorecard (bts_*)

A site is one physical location: stations of any carriers with the same shared-site code or
within 20 m of each other (transitively). Province figures count sites; a site has 4G when any
of its stations broadcasts 4G. Each site belongs to the commune most of its stations name.
"""

from collections.abc import Callable
from datetime import date
from typing import Any, SupportsFloat, cast

import dagster as dg
import polars as pl

from ioc_pipeline import parsing, units
from ioc_pipeline.assets import layers, reference
from ioc_pipeline.checks.telecom import RULES
from ioc_pipeline.checks.units import place_columns, resolved
from ioc_pipeline.gate import ROW_ID
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc
from ioc_pipeline.sites import SITE_RADIUS_M, assign_sites
from ioc_pipeline.sources.files import SOURCE_FILE
from ioc_pipeline.sources.telecom import FEED
from ioc_pipeline.vocabularies import TECHNOLOGIES

GROUP = "telecom"
FILE_CARRIER = "_file_carrier"
TECH_COLUMNS = {tech: f"sites_{tech.lower()}" for tech in TECHNOLOGIES}


SILVER_COLUMNS = [
    "carrier",
    "station_code",
    "station_name",
    "longitude",
    "latitude",
    "technologies",
    "on_air_date",
    "address",
    *reference.UNIT_DOCS,
    "shared_site_code",
    "site_id",
    *layers.LINEAGE_DOCS,
]

_UNIT_DOCS = reference.UNIT_DOCS
_COUNT_DOCS = {
    "as_of_date": ("Ngày chốt số liệu", "snapshot date of the registers"),
    "sites": ("Số vị trí trạm BTS", "BTS sites (physical locations)"),
    "sites_2g": ("Số vị trí có phát sóng 2G", "sites broadcasting 2G"),
    "sites_3g": ("Số vị trí có phát sóng 3G", "sites broadcasting 3G"),
    "sites_4g": ("Số vị trí có phát sóng 4G", "sites broadcasting 4G"),
    "sites_5g": ("Số vị trí có phát sóng 5G", "sites broadcasting 5G"),
    "stations": ("Số trạm của các doanh nghiệp", "carrier stations on those sites"),
    "carriers": ("Doanh nghiệp có trạm", "carriers present"),
    "carrier_count": ("Số doanh nghiệp có trạm", "number of carriers present"),
}

DOCS = {
    "silver.bts_stations": TableDoc(
        "Trạm BTS của các doanh nghiệp viễn thông (bản mới nhất của mỗi doanh nghiệp, đã kiểm tra)",
        "Carriers' BTS stations (newest register of each carrier, gated)",
        {
            "carrier": ("Doanh nghiệp: viettel, vinaphone, mobifone, vietnamobile", "carrier"),
            "station_code": ("Mã trạm", "the carrier's station code"),
            "station_name": ("Tên trạm", "station name"),
            "longitude": ("Kinh độ (WGS84)", "longitude, WGS84"),
            "latitude": ("Vĩ độ (WGS84)", "latitude, WGS84"),
            "technologies": ("Công nghệ đang phát sóng", "technologies on air (2G, 3G, 4G, 5G)"),
            "on_air_date": ("Ngày phát sóng", "on-air date"),
            "address": ("Địa chỉ", "street address"),
            **_UNIT_DOCS,
            "shared_site_code": ("Mã vị trí dùng chung", "shared-site code (infrastructure sharing)"),
            "site_id": ("Mã vị trí trạm (sau gộp trùng)", "physical site after de-duplication"),
            **layers.LINEAGE_DOCS,
        },
    ),
    "quarantine.bts_stations": TableDoc(
        "Dòng danh sách trạm BTS bị loại, kèm lý do", "Rejected BTS register rows with the rules they broke"
    ),
    "silver.bts_sites": TableDoc(
        "Vị trí trạm BTS (gộp các trạm dùng chung mã vị trí hoặc cách nhau không quá 20 m)",
        "BTS sites: stations sharing a shared-site code or within 20 m of each other, merged",
        {
            "site_id": ("Mã vị trí trạm (ổn định)", "stable site id"),
            "longitude": ("Kinh độ trung bình các trạm", "mean longitude of its stations"),
            "latitude": ("Vĩ độ trung bình các trạm", "mean latitude of its stations"),
            **_UNIT_DOCS,
            "technologies": ("Công nghệ (hợp của các trạm)", "technologies: union of its stations'"),
            "has_2g": ("Có 2G", "broadcasts 2G"),
            "has_3g": ("Có 3G", "broadcasts 3G"),
            "has_4g": ("Có 4G", "broadcasts 4G"),
            "has_5g": ("Có 5G", "broadcasts 5G"),
            "carriers": ("Doanh nghiệp có trạm tại vị trí", "carriers on the site"),
            "stations": ("Số trạm", "stations on the site"),
            "station_keys": ("Các trạm (doanh nghiệp:mã trạm)", "its stations as carrier:code"),
            "shared_site_codes": ("Mã vị trí dùng chung", "shared-site codes given"),
            "snapshot_date": ("Ngày chốt dữ liệu", "snapshot date"),
        },
    ),
    "gold.telecom_coverage_by_commune": TableDoc(
        "Hạ tầng BTS theo xã/phường/thị trấn (đơn vị trước 2025, kèm đơn vị mới)",
        "BTS coverage by pre-2025 commune, with its post-2025 unit",
        {**_UNIT_DOCS, **_COUNT_DOCS},
    ),
    "gold.telecom_coverage_by_new_unit": TableDoc(
        "Hạ tầng BTS theo đơn vị hành chính sau sắp xếp 2025",
        "BTS coverage by post-2025 commune-level unit",
        {
            **_UNIT_DOCS,
            "old_commune_codes": ("Các xã cũ (trước 2025) thuộc đơn vị", "pre-2025 communes mapped to the unit"),
            **_COUNT_DOCS,
        },
    ),
    "gold.telecom_coverage_gaps": TableDoc(
        "Đơn vị chưa có vị trí trạm 4G hoặc chưa có trạm nào (theo đơn vị cũ và đơn vị mới)",
        "Units with no 4G site, or no site at all (by old and by new units)",
        {
            "as_of_date": ("Ngày chốt số liệu", "snapshot date"),
            "level": ("Cấp đơn vị: old_commune (trước 2025) / new_unit (sau 2025)", "old_commune or new_unit"),
            "unit_code": ("Mã đơn vị", "unit code in its era"),
            "unit_name": ("Tên đơn vị", "unit name"),
            "district_code": ("Mã huyện (trước 2025)", "pre-2025 district code (old communes only)"),
            "district_name": ("Tên huyện (trước 2025)", "pre-2025 district name"),
            "new_unit_code": ("Mã đơn vị sau sắp xếp 2025", "post-2025 unit code"),
            "new_unit_name": ("Tên đơn vị sau sắp xếp 2025", "post-2025 unit name"),
            "sites": ("Số vị trí trạm", "sites"),
            "sites_4g": ("Số vị trí có 4G", "sites with 4G"),
            "gap": ("Loại thiếu hụt: no_site (chưa có trạm) / no_4g_site (chưa có 4G)", "no_site or no_4g_site"),
        },
    ),
}

DOCS["quarantine.bts_stations"] = layers.delivered_doc(
    FEED, DOCS["silver.bts_stations"], *DOCS["quarantine.bts_stations"].texts
)

bronze_bts_stations = layers.bronze_asset(
    FEED,
    GROUP,
    "The carriers' BTS registers as delivered (every snapshot of every carrier, every column as text), "
    "with file, row and load.",
    DOCS["quarantine.bts_stations"],
)


def carrier_code(text: pl.Expr) -> pl.Expr:
    """A carrier named any way (`Viettel`, `VNPT VinaPhone`, `Tổng công ty Viễn thông MobiFone`) -> its code."""
    folded = parsing.folded(text).str.replace_all(r"[^a-z0-9]", "")
    return (
        pl.when(folded.str.contains("vietnamobile"))
        .then(pl.lit("vietnamobile"))
        .when(folded.str.contains("mobifone"))
        .then(pl.lit("mobifone"))
        .when(folded.str.contains("vinaphone") | folded.str.contains("vnpt"))
        .then(pl.lit("vinaphone"))
        .when(folded.str.contains("viettel"))
        .then(pl.lit("viettel"))
    )


def typed_stations(delivered: pl.DataFrame) -> pl.DataFrame:
    """Bronze text → typed columns, communes resolved, plus the columns the rules read."""
    frame = layers.feed_columns(delivered, FEED)
    tokens = (
        parsing.text("technologies")
        .str.to_uppercase()
        .str.replace_all(r"[,/;+\s]+", " ")
        .str.strip_chars()
        .str.split(" ")
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    row_text = parsing.text("carrier")
    typed = frame.select(
        ROW_ID,
        parsing.text("station_code").alias("station_code"),
        parsing.text("station_name").alias("station_name"),
        row_text.alias("carrier_text"),
        carrier_code(row_text).alias("row_carrier"),
        pl.col(FILE_CARRIER).alias("file_carrier_text"),
        carrier_code(pl.col(FILE_CARRIER)).alias("file_carrier"),
        *parsing.decimal_checked("longitude"),
        *parsing.decimal_checked("latitude"),
        parsing.text("technologies").alias("technologies_text"),
        tokens.alias("tech_tokens"),
        parsing.date("on_air_date").alias("on_air_date"),
        parsing.text("on_air_date").alias("on_air_date_text"),
        parsing.text("address").alias("address"),
        *place_columns(),
        parsing.text("shared_site_code").str.to_uppercase().alias("shared_site_code"),
        *layers.lineage_columns(),
    ).with_columns(
        pl.when(pl.col("carrier_text").is_not_null())
        .then(pl.col("row_carrier"))
        .otherwise(pl.col("file_carrier"))
        .alias("carrier"),
        pl.when(pl.col("carrier_text").is_not_null() & pl.col("row_carrier").is_null())
        .then(pl.col("carrier_text"))
        .when(pl.col("carrier_text").is_null() & pl.col("file_carrier").is_null())
        .then(pl.col("file_carrier_text"))
        .alias("carrier_unknown"),
        pl.when(pl.col("row_carrier") != pl.col("file_carrier")).then(pl.col("carrier_text")).alias("carrier_mismatch"),
        pl.col("tech_tokens")
        .list.eval(pl.element().filter(~pl.element().is_in(TECHNOLOGIES)))
        .list.first()
        .alias("technology_unknown"),
        pl.col("tech_tokens")
        .list.eval(pl.element().filter(pl.element().is_in(TECHNOLOGIES)))
        .list.unique()
        .list.sort()
        .alias("technologies"),
        pl.when(pl.col("on_air_date_text").is_not_null() & pl.col("on_air_date").is_null())
        .then(pl.col("on_air_date_text"))
        .alias("on_air_date_unparsed"),
    )
    typed = typed.with_columns((pl.col("carrier") + "|" + pl.col("station_code")).alias("station_key"))
    return resolved(typed)


def newest_registers(bronze: pl.DataFrame) -> pl.DataFrame:
    """Each carrier's newest register (the carrier in the file name is the unit of supersession)."""
    carriers = bronze.with_columns(
        pl.col(SOURCE_FILE)
        .map_elements(cast(Callable[[str], str], FEED.partition_of), return_dtype=pl.String)
        .alias(FILE_CARRIER)
    )
    return layers.latest_snapshot(carriers, by=[FILE_CARRIER])


SILVER = layers.GatedTable(
    table="bts_stations",
    feed=FEED,
    rules=RULES,
    silver_columns=SILVER_COLUMNS,
    typed=lambda delivered, _lake: typed_stations(delivered),
    doc=DOCS.get("silver.bts_stations"),
    batch=newest_registers,
    finish=assign_sites,
    describe=lambda delivered: {"register_files": sorted(delivered[SOURCE_FILE].unique().to_list())},
)

silver_bts_stations = layers.gated_silver(
    SILVER,
    GROUP,
    "Every carrier's newest register, typed, communes resolved (old and new units), gated by the "
    f"telecom suite; each station carries the site it belongs to (shared-site code or ≤ {SITE_RADIUS_M:.0f} m).",
)


def sites_of(stations: pl.DataFrame) -> pl.DataFrame:
    """One row per site: the union of its stations' technologies and carriers, and its commune
    (the one most of its stations name; ties go to the lowest code)."""
    unit_columns = list(_UNIT_DOCS)
    commune = (
        stations.group_by(["site_id", *unit_columns])
        .len("named_by")
        .sort(["site_id", "named_by", "commune_code", "new_unit_code"], descending=[False, True, False, False])
        .group_by("site_id", maintain_order=True)
        .first()
        .drop("named_by")
    )
    sites = stations.group_by("site_id").agg(
        pl.col("longitude").mean(),
        pl.col("latitude").mean(),
        pl.col("technologies")
        .list.explode(keep_nulls=False, empty_as_null=False)
        .unique()
        .sort()
        .alias("technologies"),
        pl.col("carrier").unique().sort().alias("carriers"),
        pl.len().cast(pl.Int64).alias("stations"),
        (pl.col("carrier") + ":" + pl.col("station_code")).sort().alias("station_keys"),
        pl.col("shared_site_code").drop_nulls().unique().sort().alias("shared_site_codes"),
        pl.col("snapshot_date").max(),
    )
    flags = [pl.col("technologies").list.contains(t).alias(f"has_{t.lower()}") for t in TECHNOLOGIES]
    return (
        sites.join(commune, on="site_id", how="left")
        .with_columns(flags)
        .select(
            "site_id",
            "longitude",
            "latitude",
            *unit_columns,
            "technologies",
            *[f"has_{t.lower()}" for t in TECHNOLOGIES],
            "carriers",
            "stations",
            "station_keys",
            "shared_site_codes",
            "snapshot_date",
        )
        .sort("site_id")
    )


def _sites_report(sites: pl.DataFrame, stations: pl.DataFrame) -> dict[str, object]:
    shared = sites.filter(pl.col("stations") > 1)
    return {
        "stations": stations.height,
        "shared_sites": shared.height,
        "stations_on_shared_sites": int(shared["stations"].sum() or 0),
    }


silver_bts_sites = layers.derived_asset(
    ("silver", "bts_sites"),
    [("silver", "bts_stations")],
    sites_of,
    GROUP,
    "One row per physical BTS site: stations of all carriers linked by shared-site code or "
    f"distance (≤ {SITE_RADIUS_M:.0f} m, transitively); technologies and carriers are the union of its stations'.",
    DOCS["silver.bts_sites"],
    preview_rows=5,
    report=_sites_report,
)


def _counts(sites: pl.DataFrame, by: str) -> pl.DataFrame:
    return sites.group_by(by).agg(
        pl.len().cast(pl.Int64).alias("sites"),
        *[pl.col(f"has_{t.lower()}").sum().cast(pl.Int64).alias(column) for t, column in TECH_COLUMNS.items()],
        pl.col("stations").sum().cast(pl.Int64).alias("stations"),
        pl.col("carriers").list.explode(keep_nulls=False, empty_as_null=False).unique().sort().alias("carriers"),
    )


def _fill(frame: pl.DataFrame, as_of: object) -> pl.DataFrame:
    counts = ["sites", *TECH_COLUMNS.values(), "stations"]
    return frame.with_columns(
        pl.lit(as_of, pl.Date).alias("as_of_date"),
        *[pl.col(c).fill_null(0) for c in counts],
        pl.col("carriers").fill_null(pl.lit([], pl.List(pl.String))),
    ).with_columns(pl.col("carriers").list.len().cast(pl.Int64).alias("carrier_count"))


COUNT_COLUMNS = ["sites", *TECH_COLUMNS.values(), "stations", "carriers", "carrier_count"]


def coverage_by_commune(sites: pl.DataFrame) -> pl.DataFrame:
    return reference.by_unit(sites, "commune", _counts, _fill, COUNT_COLUMNS)


def coverage_by_new_unit(sites: pl.DataFrame) -> pl.DataFrame:
    return reference.by_unit(sites, "new_unit", _counts, _fill, COUNT_COLUMNS)


def coverage_gaps(by_commune: pl.DataFrame, by_new_unit: pl.DataFrame) -> pl.DataFrame:
    """Units with no 4G site (`gap` = no_4g_site) or no site at all (`gap` = no_site), at both levels, in the
    newest snapshot of the coverage tables (they keep every snapshot; so does this one)."""
    by_commune, by_new_unit = layers.latest(by_commune), layers.latest(by_new_unit)
    gap = pl.when(pl.col("sites") == 0).then(pl.lit("no_site")).otherwise(pl.lit("no_4g_site")).alias("gap")
    old = by_commune.filter(pl.col("sites_4g") == 0).select(
        "as_of_date",
        pl.lit("old_commune").alias("level"),
        pl.col("commune_code").alias("unit_code"),
        pl.col("commune_name").alias("unit_name"),
        "district_code",
        "district_name",
        "new_unit_code",
        "new_unit_name",
        "sites",
        "sites_4g",
        gap,
    )
    new = by_new_unit.filter(pl.col("sites_4g") == 0).select(
        "as_of_date",
        pl.lit("new_unit").alias("level"),
        pl.col("new_unit_code").alias("unit_code"),
        pl.col("new_unit_name").alias("unit_name"),
        pl.lit(None, pl.String).alias("district_code"),
        pl.lit(None, pl.String).alias("district_name"),
        "new_unit_code",
        "new_unit_name",
        "sites",
        "sites_4g",
        gap,
    )
    return pl.concat([old, new]).sort("level", "unit_code", descending=[True, False])


def _gaps_report(gaps: pl.DataFrame, *_: pl.DataFrame) -> dict[str, object]:
    return {
        "gaps": dict(gaps.group_by("level", "gap").len().select(pl.format("{}/{}", "level", "gap"), "len").iter_rows())
    }


def _gold(
    name: str, reads: list[tuple[str, str]], build: Callable[..., pl.DataFrame], description: str, **kwargs: Any
) -> dg.AssetsDefinition:
    return layers.derived_asset(
        ("gold", name), reads, build, GROUP, description, DOCS[f"gold.{name}"], history=True, **kwargs
    )


SITES = [("silver", "bts_sites")]
gold_telecom_coverage_by_commune = _gold(
    "telecom_coverage_by_commune",
    SITES,
    coverage_by_commune,
    "Per pre-2025 commune (all 108, with its post-2025 unit): sites, sites with each technology, "
    "stations and carriers present.",
)
gold_telecom_coverage_by_new_unit = _gold(
    "telecom_coverage_by_new_unit",
    SITES,
    coverage_by_new_unit,
    "The same coverage figures per post-2025 commune-level unit (today's IOC), with the old "
    "communes each unit took in.",
)
gold_telecom_coverage_gaps = _gold(
    "telecom_coverage_gaps",
    [("gold", "telecom_coverage_by_commune"), ("gold", "telecom_coverage_by_new_unit")],
    coverage_gaps,
    "Communes (old units) and post-2025 units with no site carrying 4G, or with no site at all.",
    report=_gaps_report,
)


GATED = [SILVER]  # the gated tables of the domain (`cli validate` finds a file's feed among them)

INDICATOR_INPUTS = [
    gold_telecom_coverage_by_new_unit.key,
    gold_telecom_coverage_gaps.key,
]  # what `indicators` reads: the scorecard waits for them


def indicators(store: Lake) -> list[dict]:
    """Scorecard rows: sites and sites per technology (province totals), and the commune-level units in
    force on the snapshot date with no 4G site (old communes before the 2025 reform, new units after)."""
    if not store.exists("gold", "telecom_coverage_by_new_unit"):
        return []
    by_unit = layers.latest(store.read("gold", "telecom_coverage_by_new_unit"))
    as_of = cast(date, by_unit["as_of_date"].max())
    source = "gold/telecom_coverage_by_new_unit"

    def row(code: str, name: str, value: SupportsFloat, source_asset: str = source) -> dict:
        return layers.indicator(code, name, value, as_of, source_asset)

    rows = [row("bts_sites", "Tổng số vị trí trạm BTS", by_unit["sites"].sum())]
    rows += [
        row(f"bts_{column}", f"Số vị trí trạm phát sóng {tech}", by_unit[column].sum())
        for tech, column in TECH_COLUMNS.items()
    ]
    if store.exists("gold", "telecom_coverage_gaps"):
        gaps = layers.latest(store.read("gold", "telecom_coverage_gaps"))
        level = "old_commune" if as_of < units.REFORM_DATE else "new_unit"
        rows.append(
            row(
                "communes_without_4g",
                "Số đơn vị cấp xã chưa có vị trí trạm 4G",
                gaps.filter(pl.col("level") == level).height,
                "gold/telecom_coverage_gaps",
            )
        )
    return rows
