"""The postal network, from delivery to the IOC's tables.

    landing/postal/enterprises_YYYYMMDD.xlsx
        ▼ dlt
    bronze/postal_enterprises ──gate──► quarantine/postal_enterprises
        ▼ newest snapshot, typed
    silver/postal_enterprises ─────────────────────────────────────┐ (each point's enterprise must exist)
    landing/postal/service_points_YYYYMMDD.csv                      ▼
        ▼ dlt                                                        │
    bronze/postal_service_points ──gate──► quarantine/postal_service_points
        ▼ newest snapshot, typed, communes resolved (old and new units)
    silver/postal_service_points ──► gold/postal_network_by_commune   (old units)
                                 └─► gold/postal_network_by_new_unit  (post-2025 units) ──► gold/ioc_scorecard

Only active enterprises (`Đang hoạt động`) count as operating: suspended and revoked ones stay in
silver with their status, and their service points stay in silver but are not counted in gold or
the scorecard.
"""

from collections.abc import Callable

import dagster as dg
import polars as pl

from ioc_pipeline import parsing, vocabularies
from ioc_pipeline.assets import layers, reference
from ioc_pipeline.checks.postal import ENTERPRISE_RULES, SERVICE_POINT_RULES
from ioc_pipeline.checks.units import place_columns, resolved
from ioc_pipeline.gate import ROW_ID
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc
from ioc_pipeline.sources.files import SOURCE_FILE
from ioc_pipeline.sources.postal import ENTERPRISES, SERVICE_POINTS

GROUP = "postal"

STATUSES = vocabularies.lookup(vocabularies.ENTERPRISE_STATUS_NAMES, vocabularies.ENTERPRISE_STATUS_ALIASES)
SCOPES = vocabularies.lookup(vocabularies.POSTAL_SCOPE_NAMES)
POINT_TYPES = vocabularies.lookup(vocabularies.POINT_TYPE_NAMES, vocabularies.POINT_TYPE_ALIASES)
TYPE_COLUMNS = dict.fromkeys(POINT_TYPES.values())  # ordered, unique


ENTERPRISE_COLUMNS = [
    "tax_code",
    "enterprise_name",
    "licence_number",
    "licence_date",
    "scopes",
    "status",
    "is_active",
    *layers.LINEAGE_DOCS,
]
POINT_COLUMNS = [
    "point_code",
    "point_name",
    "point_type",
    "enterprise_tax_code",
    "enterprise_name",
    "enterprise_status",
    "enterprise_active",
    "address",
    *reference.UNIT_DOCS,
    "longitude",
    "latitude",
    *layers.LINEAGE_DOCS,
]

_UNIT_DOCS = reference.UNIT_DOCS
_COUNT_DOCS = {
    "as_of_date": ("Ngày chốt số liệu", "snapshot date of the service point register"),
    "service_points": ("Số điểm phục vụ bưu chính (của doanh nghiệp đang hoạt động)", "service points"),
    "post_office_1": ("Bưu cục cấp 1", "first-level post offices"),
    "post_office_2": ("Bưu cục cấp 2", "second-level post offices"),
    "post_office_3": ("Bưu cục cấp 3", "third-level post offices"),
    "commune_cultural_post": ("Điểm Bưu điện - Văn hóa xã", "commune post-and-culture points"),
    "postal_agent": ("Đại lý bưu chính", "postal agents"),
    "transaction_point": ("Điểm giao dịch", "transaction points"),
    "enterprises": ("Số doanh nghiệp có điểm phục vụ", "enterprises with a service point there"),
    "enterprise_names": ("Doanh nghiệp có điểm phục vụ", "those enterprises"),
}

DOCS = {
    "silver.postal_enterprises": TableDoc(
        "Doanh nghiệp bưu chính, chuyển phát trên địa bàn (bản mới nhất, đã kiểm tra)",
        "Postal and courier enterprises in the province (newest snapshot, gated)",
        {
            "tax_code": ("Mã số thuế", "tax code"),
            "enterprise_name": ("Tên doanh nghiệp", "enterprise name"),
            "licence_number": ("Số giấy phép bưu chính", "postal licence number"),
            "licence_date": ("Ngày cấp", "licence date"),
            "scopes": ("Phạm vi: provincial (nội tỉnh), interprovincial (liên tỉnh), international", "scopes"),
            "status": ("Trạng thái: active (đang hoạt động), suspended (tạm ngừng), revoked (đã thu hồi)", "status"),
            "is_active": ("Đang hoạt động (chỉ số này mới được tính)", "active: only these count as operating"),
            **layers.LINEAGE_DOCS,
        },
    ),
    "quarantine.postal_enterprises": TableDoc(
        "Dòng danh sách doanh nghiệp bưu chính bị loại, kèm lý do", "Rejected enterprise rows with their rules"
    ),
    "silver.postal_service_points": TableDoc(
        "Điểm phục vụ bưu chính (bản mới nhất, đã kiểm tra)",
        "Postal service points (newest snapshot, gated)",
        {
            "point_code": ("Mã điểm", "service point code"),
            "point_name": ("Tên điểm phục vụ", "name"),
            "point_type": ("Loại điểm", "type (see the gold columns)"),
            "enterprise_tax_code": ("Mã số thuế doanh nghiệp", "operating enterprise's tax code"),
            "enterprise_name": ("Tên doanh nghiệp", "operating enterprise"),
            "enterprise_status": ("Trạng thái doanh nghiệp", "its status"),
            "enterprise_active": ("Doanh nghiệp đang hoạt động (điểm được tính)", "counted: enterprise active"),
            "address": ("Địa chỉ", "address"),
            **_UNIT_DOCS,
            "longitude": ("Kinh độ", "longitude"),
            "latitude": ("Vĩ độ", "latitude"),
            **layers.LINEAGE_DOCS,
        },
    ),
    "quarantine.postal_service_points": TableDoc(
        "Dòng danh sách điểm phục vụ bưu chính bị loại, kèm lý do", "Rejected service point rows with their rules"
    ),
    "gold.postal_network_by_commune": TableDoc(
        "Mạng bưu chính theo xã/phường/thị trấn (đơn vị trước 2025, kèm đơn vị mới)",
        "Postal network by pre-2025 commune, with its post-2025 unit",
        {**_UNIT_DOCS, **_COUNT_DOCS},
    ),
    "gold.postal_network_by_new_unit": TableDoc(
        "Mạng bưu chính theo đơn vị hành chính sau sắp xếp 2025",
        "Postal network by post-2025 commune-level unit",
        {
            **_UNIT_DOCS,
            "old_commune_codes": ("Các xã cũ (trước 2025) thuộc đơn vị", "pre-2025 communes mapped to the unit"),
            **_COUNT_DOCS,
        },
    ),
}

for _feed in (ENTERPRISES, SERVICE_POINTS):
    _doc = DOCS[f"quarantine.{_feed.table}"]
    DOCS[f"quarantine.{_feed.table}"] = layers.delivered_doc(_feed, DOCS[f"silver.{_feed.table}"], *_doc.texts)

bronze_postal_enterprises = layers.bronze_asset(
    ENTERPRISES,
    GROUP,
    "The postal enterprise register as delivered (every snapshot, every column as text).",
    DOCS["quarantine.postal_enterprises"],
)
bronze_postal_service_points = layers.bronze_asset(
    SERVICE_POINTS,
    GROUP,
    "The postal service point register as delivered (every snapshot, every column as text).",
    DOCS["quarantine.postal_service_points"],
)


def tax_code(col: str) -> pl.Expr:
    """A tax code as text without spaces (`2200 123 456` -> `2200123456`)."""
    return parsing.text(col).str.replace_all(r"\s+", "")


def _vocabulary(folded: pl.Expr, vocabulary: dict[str, str], prefix: bool = False) -> pl.Expr:
    expr = pl.lit(None, pl.String)
    for word, code in reversed(vocabulary.items()):
        hit = folded.str.starts_with(word) if prefix else folded == word
        expr = pl.when(hit).then(pl.lit(code)).otherwise(expr)
    return expr


def _words(expr: pl.Expr) -> pl.Expr:
    """Folded text with punctuation as spaces: `Điểm BĐ-VHX` -> `diem bd vhx`."""
    return parsing.folded(expr).str.replace_all(r"[^a-z0-9]+", " ").str.strip_chars()


def typed_enterprises(delivered: pl.DataFrame) -> pl.DataFrame:
    frame = layers.feed_columns(delivered, ENTERPRISES)
    scope_words = (
        parsing.text("scope")
        .str.replace_all(",", ";", literal=True)
        .str.split(";")
        .list.eval(_words(pl.element()))
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    status_text = parsing.text("status")
    return frame.select(
        ROW_ID,
        tax_code("tax_code").alias("tax_code"),
        parsing.text("enterprise_name").alias("enterprise_name"),
        parsing.text("licence_number").alias("licence_number"),
        parsing.date("licence_date").alias("licence_date"),
        parsing.text("licence_date").alias("licence_date_text"),
        parsing.text("scope").alias("scope_text"),
        scope_words.alias("scope_words"),
        status_text.alias("status_text"),
        _vocabulary(_words(status_text), STATUSES, prefix=True).alias("status"),
        *layers.lineage_columns(),
    ).with_columns(
        pl.col("scope_words")
        .list.eval(pl.element().filter(~pl.element().is_in(list(SCOPES))))
        .list.first()
        .alias("scope_unknown"),
        pl.col("scope_words")
        .list.eval(pl.element().replace_strict(SCOPES, default=None))
        .list.drop_nulls()
        .list.unique(maintain_order=True)
        .alias("scopes"),
        pl.when(pl.col("licence_date_text").is_not_null() & pl.col("licence_date").is_null())
        .then(pl.col("licence_date_text"))
        .alias("licence_date_unparsed"),
        pl.when(pl.col("status_text").is_not_null() & pl.col("status").is_null())
        .then(pl.col("status_text"))
        .alias("status_unknown"),
        pl.when((pl.col("scope_words").list.len() > 0) & pl.col("licence_number").is_null())
        .then(pl.col("scope_text"))
        .alias("licence_missing"),
        (pl.col("status") == "active").alias("is_active"),
    )


ENTERPRISES_SILVER = layers.GatedTable(
    table="postal_enterprises",
    feed=ENTERPRISES,
    rules=ENTERPRISE_RULES,
    silver_columns=ENTERPRISE_COLUMNS,
    typed=lambda delivered, _lake: typed_enterprises(delivered),
    doc=DOCS.get("silver.postal_enterprises"),
    describe=lambda delivered: {"snapshot_file": delivered[SOURCE_FILE][0]},
)

silver_postal_enterprises = layers.gated_silver(
    ENTERPRISES_SILVER,
    GROUP,
    "The enterprise register in force: the newest snapshot, typed and gated (tax code, licence, scope, status).",
)


def typed_service_points(delivered: pl.DataFrame, enterprises: pl.DataFrame | None) -> pl.DataFrame:
    """Bronze text → typed columns, communes resolved, each point joined to its enterprise (not judged
    when `enterprises` is None: a file validated alone)."""
    frame = layers.feed_columns(delivered, SERVICE_POINTS)
    type_text = parsing.text("point_type")
    typed = frame.select(
        ROW_ID,
        parsing.text("point_code").alias("point_code"),
        parsing.text("point_name").alias("point_name"),
        type_text.alias("point_type_text"),
        _vocabulary(_words(type_text), POINT_TYPES).alias("point_type"),
        tax_code("enterprise_tax_code").alias("enterprise_tax_code"),
        parsing.text("address").alias("address"),
        *place_columns(),
        *parsing.decimal_checked("longitude"),
        *parsing.decimal_checked("latitude"),
        *layers.lineage_columns(),
    )
    known = (NO_ENTERPRISES if enterprises is None else enterprises).select(
        pl.col("tax_code").alias("enterprise_tax_code"),
        pl.col("enterprise_name"),
        pl.col("status").alias("enterprise_status"),
        pl.col("is_active").alias("enterprise_active"),
    )
    typed = typed.join(known, on="enterprise_tax_code", how="left", maintain_order="left").with_columns(
        pl.when(pl.col("point_type_text").is_not_null() & pl.col("point_type").is_null())
        .then(pl.col("point_type_text"))
        .alias("point_type_unknown"),
        pl.when(
            pl.col("enterprise_tax_code").is_not_null()
            & pl.col("enterprise_status").is_null()
            & pl.lit(enterprises is not None)
        )
        .then(pl.col("enterprise_tax_code"))
        .alias("enterprise_unknown"),
        (pl.col("enterprise_tax_code") + "|" + pl.col("point_code")).alias("point_key"),
        pl.when(pl.col("longitude_text").is_null() != pl.col("latitude_text").is_null())
        .then(pl.coalesce("longitude_text", "latitude_text"))
        .alias("coordinate_alone"),
    )
    return resolved(typed)


NO_ENTERPRISES = pl.DataFrame(
    schema={"tax_code": pl.String, "enterprise_name": pl.String, "status": pl.String, "is_active": pl.Boolean}
)


def published_enterprises(store: Lake | None) -> pl.DataFrame | None:
    """The enterprise register in force (silver), an empty one when never published, None offline
    (a department validating its file alone: the enterprise rule is not judged then)."""
    if store is None:
        return None
    if not store.exists("silver", "postal_enterprises"):
        return NO_ENTERPRISES
    return store.read("silver", "postal_enterprises")


SERVICE_POINTS_SILVER = layers.GatedTable(
    table="postal_service_points",
    feed=SERVICE_POINTS,
    rules=SERVICE_POINT_RULES,
    silver_columns=POINT_COLUMNS,
    typed=lambda delivered, store: typed_service_points(delivered, published_enterprises(store)),
    doc=DOCS.get("silver.postal_service_points"),
    describe=lambda delivered: {"snapshot_file": delivered[SOURCE_FILE][0]},
)

silver_postal_service_points = layers.gated_silver(
    SERVICE_POINTS_SILVER,
    GROUP,
    "The service point register in force: the newest snapshot, typed, communes resolved (old and new units), "
    "each point's enterprise checked against silver/postal_enterprises.",
    deps=[bronze_postal_service_points.key, dg.AssetKey(["silver", "postal_enterprises"])],
)


def _counts(points: pl.DataFrame, by: str) -> pl.DataFrame:
    active = points.filter(pl.col("enterprise_active"))
    return active.group_by(by).agg(
        pl.len().cast(pl.Int64).alias("service_points"),
        *[(pl.col("point_type") == t).sum().cast(pl.Int64).alias(t) for t in TYPE_COLUMNS],
        pl.col("enterprise_tax_code").n_unique().cast(pl.Int64).alias("enterprises"),
        pl.col("enterprise_name").unique().sort().alias("enterprise_names"),
    )


COUNT_COLUMNS = ["service_points", *TYPE_COLUMNS, "enterprises", "enterprise_names"]


def _fill(frame: pl.DataFrame, as_of: object) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(as_of, pl.Date).alias("as_of_date"),
        *[pl.col(c).fill_null(0) for c in ["service_points", *TYPE_COLUMNS, "enterprises"]],
        pl.col("enterprise_names").fill_null(pl.lit([], pl.List(pl.String))),
    )


def network_by_commune(points: pl.DataFrame) -> pl.DataFrame:
    return reference.by_unit(points, "commune", _counts, _fill, COUNT_COLUMNS)


def network_by_new_unit(points: pl.DataFrame) -> pl.DataFrame:
    return reference.by_unit(points, "new_unit", _counts, _fill, COUNT_COLUMNS)


def _gold(name: str, build: Callable[[pl.DataFrame], pl.DataFrame], description: str) -> dg.AssetsDefinition:
    points = [("silver", "postal_service_points")]
    return layers.derived_asset(("gold", name), points, build, GROUP, description, DOCS[f"gold.{name}"], history=True)


gold_postal_network_by_commune = _gold(
    "postal_network_by_commune",
    network_by_commune,
    "Per pre-2025 commune (all 108, with its post-2025 unit): service points of active enterprises "
    "by type, and the enterprises present.",
)
gold_postal_network_by_new_unit = _gold(
    "postal_network_by_new_unit",
    network_by_new_unit,
    "The same postal figures per post-2025 commune-level unit, with the old communes each took in.",
)


GATED = [
    ENTERPRISES_SILVER,
    SERVICE_POINTS_SILVER,
]  # the gated tables of the domain (`cli validate` finds a file's feed among them)

INDICATOR_INPUTS = [
    dg.AssetKey(["silver", "postal_enterprises"]),
    gold_postal_network_by_new_unit.key,
]  # what `indicators` reads: the scorecard waits for them


def indicators(store: Lake) -> list[dict]:
    """Scorecard rows: active postal enterprises, and service points of active enterprises."""
    rows: list[dict] = []

    if store.exists("silver", "postal_enterprises"):
        enterprises = store.read("silver", "postal_enterprises")
        rows.append(
            layers.indicator(
                "postal_enterprises",
                "Số doanh nghiệp đang hoạt động bưu chính, chuyển phát",
                enterprises["is_active"].sum(),
                enterprises["snapshot_date"].max(),
                "silver/postal_enterprises",
            )
        )
    if store.exists("gold", "postal_network_by_new_unit"):
        network = layers.latest(store.read("gold", "postal_network_by_new_unit"))
        rows.append(
            layers.indicator(
                "postal_service_points",
                "Số điểm phục vụ bưu chính",
                network["service_points"].sum(),
                network["as_of_date"].max(),
                "gold/postal_network_by_new_unit",
            )
        )
    return rows
