"""The administrative procedure catalog, from delivery to the IOC.

    landing/procedures/tthc_*.{json,xlsx}
        ▼ dlt
    bronze/procedures ──gate (checks/procedures.py)──► quarantine/procedures
        ▼
    silver/procedures ──► gold/procedure_service_levels ──► gold/ioc_scorecard (procedures_*)

Online classes follow Decree 42/2022: a level-4 service is full online (toàn trình), a level-3
one partial (một phần), unless the delivery states the class of the newer scale itself.
"""

import polars as pl

from ioc_pipeline import parsing
from ioc_pipeline.assets import layers
from ioc_pipeline.checks.procedures import RULES
from ioc_pipeline.gate import ROW_ID
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc
from ioc_pipeline.sources.files import SOURCE_FILE
from ioc_pipeline.sources.procedures import FEED

GROUP = "procedures"
TIERS = {"cap tinh": "Cấp tỉnh", "cap huyen": "Cấp huyện", "cap xa": "Cấp xã"}
ONLINE_CLASSES = {"toan trinh": "full", "mot phan": "partial"}

bronze_procedures = layers.bronze_asset(
    FEED, GROUP, "The procedure catalog as delivered (every snapshot, every column as text), with file, row and load."
)

SILVER_COLUMNS = [
    "procedure_code",
    "procedure_name",
    "sector",
    "tiers",
    "agency",
    "service_level",
    "online_class",
    "online_class_source",
    "updated_at",
    *layers.LINEAGE_DOCS,
]

DOCS = {
    "silver.procedures": TableDoc(
        "Danh mục thủ tục hành chính (bản mới nhất, đã kiểm tra)",
        "Administrative procedure catalog (newest snapshot, gated)",
        {
            "procedure_code": ("Mã TTHC", "procedure code"),
            "procedure_name": ("Tên TTHC", "procedure name"),
            "sector": ("Lĩnh vực", "sector"),
            "tiers": ("Cấp thực hiện", "tiers that perform it"),
            "agency": ("Cơ quan thực hiện", "implementing agency"),
            "service_level": ("Mức độ DVC (2, 3, 4)", "online service level, old scale"),
            "online_class": (
                "DVC trực tuyến: full = toàn trình, partial = một phần, none",
                "online class per Decree 42/2022",
            ),
            "online_class_source": ("Nguồn phân loại (delivered/derived)", "class delivered or derived from level"),
            "updated_at": ("Ngày cập nhật", "last update"),
            **layers.LINEAGE_DOCS,
        },
    ),
    "quarantine.procedures": TableDoc(
        "Dòng danh mục TTHC bị loại, kèm lý do", "Rejected catalog rows with the rules they broke"
    ),
    "gold.procedure_service_levels": TableDoc(
        "Số TTHC theo mức độ, phân loại trực tuyến và cấp thực hiện",
        "Procedures by service level, online class and tier",
        {
            "as_of_date": ("Ngày chốt", "snapshot date"),
            "dimension": ("Chiều phân tích", "dimension: total, service_level, online_class, tier"),
            "category": ("Giá trị", "category within the dimension"),
            "procedures": ("Số TTHC", "number of procedures"),
            "share_pct": ("Tỷ lệ trên tổng số (%)", "share of all procedures, percent"),
        },
    ),
}


def typed_procedures(delivered: pl.DataFrame) -> pl.DataFrame:
    """Bronze text → typed columns, plus the `*_unparsed` / `tier_unknown` columns the rules read."""
    tiers = (
        parsing.text("tiers")
        .str.replace_all(",", ";", literal=True)
        .str.split(";")
        .list.eval(parsing.folded(pl.element()))
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    online_given = parsing.text("online_class")
    online_folded = parsing.folded(online_given)
    return delivered.select(
        ROW_ID,
        parsing.text("procedure_code").alias("procedure_code"),
        parsing.text("procedure_name").alias("procedure_name"),
        parsing.text("sector").alias("sector"),
        parsing.text("agency").alias("agency"),
        parsing.text("tiers").alias("tiers_text"),
        tiers.alias("tiers_folded"),
        parsing.integer("service_level").alias("service_level"),
        online_folded.replace_strict(ONLINE_CLASSES, default=None).alias("online_class_given"),
        pl.when(online_given.is_not_null() & ~online_folded.is_in(list(ONLINE_CLASSES)))
        .then(online_given)
        .alias("online_class_unparsed"),
        parsing.date("updated_at").alias("updated_at"),
        parsing.text("updated_at").alias("updated_at_text"),
        *layers.lineage_columns(),
    ).with_columns(
        pl.when(pl.col("updated_at_text").is_not_null() & pl.col("updated_at").is_null())
        .then(pl.col("updated_at_text"))
        .alias("updated_at_unparsed"),
        pl.col("tiers_folded")
        .list.eval(pl.element().filter(~pl.element().is_in(list(TIERS))))
        .list.first()
        .alias("tier_unknown"),
        pl.col("tiers_folded")
        .list.eval(pl.element().replace_strict(TIERS, default=None))
        .list.unique(maintain_order=True)
        .alias("tiers"),
        pl.coalesce(
            "online_class_given",
            pl.col("service_level").replace_strict({4: "full", 3: "partial"}, default="none", return_dtype=pl.String),
        ).alias("online_class"),
        pl.when(pl.col("online_class_given").is_not_null())
        .then(pl.lit("delivered"))
        .otherwise(pl.lit("derived"))
        .alias("online_class_source"),
        pl.col("service_level").cast(pl.Int8),
    )


SILVER = layers.GatedTable(
    table="procedures",
    feed=FEED,
    rules=RULES,
    silver_columns=SILVER_COLUMNS,
    typed=lambda delivered, _lake: typed_procedures(delivered),
    doc=DOCS["silver.procedures"],
    describe=lambda delivered: {"snapshot_file": delivered[SOURCE_FILE][0]},
)

silver_procedures = layers.gated_silver(
    SILVER, GROUP, "The catalog in force: the newest snapshot, typed and gated by the procedure suite."
)


def service_levels(silver: pl.DataFrame) -> pl.DataFrame:
    total = silver.height
    as_of = silver["snapshot_date"].max()
    parts = [
        pl.DataFrame({"dimension": ["total"], "category": ["all"], "procedures": [total]}),
        silver.group_by(pl.col("service_level").cast(pl.String).alias("category"))
        .len("procedures")
        .with_columns(dimension=pl.lit("service_level")),
        silver.group_by(pl.col("online_class").alias("category"))
        .len("procedures")
        .with_columns(dimension=pl.lit("online_class")),
        silver.explode("tiers")
        .group_by(pl.col("tiers").alias("category"))
        .len("procedures")
        .with_columns(dimension=pl.lit("tier")),
    ]
    return (
        pl.concat([p.select("dimension", "category", pl.col("procedures").cast(pl.Int64)) for p in parts])
        .with_columns(
            pl.lit(as_of).alias("as_of_date"),
            (pl.col("procedures") * 100.0 / total if total else pl.lit(None, pl.Float64)).alias("share_pct"),
        )
        .select("as_of_date", "dimension", "category", "procedures", "share_pct")
        .sort("dimension", "category")
    )


gold_procedure_service_levels = layers.derived_asset(
    ("gold", "procedure_service_levels"),
    [("silver", "procedures")],
    service_levels,
    GROUP,
    "Counts and shares of the catalog's procedures by service level, online class and tier.",
    DOCS["gold.procedure_service_levels"],
    preview_rows=20,
)


GATED = [SILVER]  # the gated tables of the domain (`cli validate` finds a file's feed among them)

INDICATOR_INPUTS = [gold_procedure_service_levels.key]  # what `indicators` reads: the scorecard waits for them


def indicators(store: Lake) -> list[dict]:
    """Scorecard rows of the catalog: counts by level and online class, shares on 0–100."""
    if not store.exists("gold", "procedure_service_levels"):
        return []
    levels = store.read("gold", "procedure_service_levels")
    count = {(d, c): n for d, c, n in levels.select("dimension", "category", "procedures").iter_rows()}
    total = count.get(("total", "all"), 0)
    as_of = levels["as_of_date"].max()
    source = "gold/procedure_service_levels"

    def row(code: str, name: str, value: float, unit: str = "count") -> dict:
        return layers.indicator(code, name, value, as_of, source, unit)

    def pct(n: int) -> float:
        return n * 100.0 / total if total else 0.0  # unrounded: rounding is the dashboard's choice

    return [
        row("procedures_total", "Tổng số TTHC tối thiểu mức độ 2", total),
        row("procedures_level_2", "Số TTHC mức độ 2", count.get(("service_level", "2"), 0)),
        row("procedures_level_3", "Số TTHC mức độ 3", count.get(("service_level", "3"), 0)),
        row("procedures_level_4", "Số TTHC mức độ 4", count.get(("service_level", "4"), 0)),
        row("procedures_level_3_pct", "Tỷ lệ TTHC mức độ 3", pct(count.get(("service_level", "3"), 0)), "percent"),
        row("procedures_level_4_pct", "Tỷ lệ TTHC mức độ 4", pct(count.get(("service_level", "4"), 0)), "percent"),
        row("procedures_online_full", "Số TTHC trực tuyến toàn trình", count.get(("online_class", "full"), 0)),
        row("procedures_online_partial", "Số TTHC trực tuyến một phần", count.get(("online_class", "partial"), 0)),
    ]
