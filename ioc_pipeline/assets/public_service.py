"""One-stop-shop dossiers: the national service-quality indicators, without the citizens' data.

    gateway API (incremental on NgayCapNhat) or landing/public_service/dossiers_YYYYMM.ndjson
        ▼ dlt, Arrow batches; ChuHoSo → applicant_id (HMAC) before anything is written
    bronze/dossiers            every version as delivered, append-only, with its month of receipt; a partition
        │                      per former province (its own gateway, IOC_DOSSIER_API_URL_<code>, else its exports)
        ▼ per month × former province partition (`2022-04|93`): newest version of each MaHoSo, typed, gated
    silver/dossiers ─┬─────────► quarantine/dossiers (per month and province)
        │            └ check procedure_code_in_catalog (warning: unknown codes are kept)
        ▼ all months
    gold/public_service_kpis_monthly, gold/public_service_kpis_by_agency_monthly ──► gold/ioc_scorecard

Which months to rebuild is derived from the data, not from what Dagster recorded (a run killed
between dlt's load and the bronze materialization must not lose its versions): each silver month of a
former province records the bronze loads it was built from (`ops/_silver_lineage/month=YYYY-MM[/<code>]`,
bookkeeping, not published), and `months_to_refresh()` names the months whose bronze loads (of any province)
differ from that record; `python -m ioc_pipeline.cli run` (or the `dossier_months_changed` sensor)
materializes exactly those months, of every province (a rectangle of `PARTITIONS`), so an update to an old
dossier re-materializes its month, once. The months are those bronze holds dossiers for (`MONTHS`, dynamic):
the bronze step registers a month when its first dossier arrives, so the UI lists delivered months only, none
of them missing once built.

Indicators (Decision 766/QĐ-TTg's public-service scoring), per month of receipt, each month as of its
end (a dossier still open then is late once NgayHenTra has passed), or as of the extraction (the
gateway pull, the export's delivery: `extracted_at`) while the month is not over; never as of the
newest change, which a quiet week would hold back. Each formula sits in `KPI_DOCS`.
"""

import calendar
import datetime as dt
import functools
import json
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import dagster as dg
import polars as pl

from ioc_pipeline import automation, faults, gate, parsing, provinces, recovery, versions, vocabularies
from ioc_pipeline.assets import deliveries, layers
from ioc_pipeline.assets.layers import (
    OWNERS,
    PROVINCE_COLUMN,
    SCOPE_COLUMN,
    Gated,
    GatedTable,
    gate_batch,
    gated_specs,
    indicator,
    quarantine_metadata,
)
from ioc_pipeline.checks.dossiers import RULES
from ioc_pipeline.gate import ROW_ID
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc, table_metadata
from ioc_pipeline.pii import PiiKeyError
from ioc_pipeline.policies import pool_for, retry_network_failure
from ioc_pipeline.resources import AlertsResource, DossierGatewayResource, LakeResource, LandingResource, PiiResource
from ioc_pipeline.sources import dossiers as source
from ioc_pipeline.sources import fates
from ioc_pipeline.sources.files import LOAD_ID, SOURCE_FILE, SOURCE_ROW
from ioc_pipeline.units import REFORM_DATE, UnitResolver

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

GROUP = "public_service"
TABLE = source.TABLE
BRONZE_KEY = dg.AssetKey(["bronze", TABLE])
SILVER_KEY = dg.AssetKey(["silver", TABLE])
QUARANTINE_KEY = dg.AssetKey(["quarantine", TABLE])
# The months of receipt that bronze holds rows for, `YYYY-MM`, registered by the bronze step (and by the
# `dossier_months_changed` sensor, the CLI) as deliveries bring them: a month without a dossier is no partition.
MONTHS = dg.DynamicPartitionsDefinition(name="dossier_months")
# silver and quarantine: a partition per month × former province (`2022-04|93`; one province by default)
PARTITIONS = dg.MultiPartitionsDefinition(
    {automation.MONTH_DIMENSION: MONTHS, provinces.PROVINCE_DIMENSION: layers.province_partitions()}
)
PARTITION_COLUMN = "month"  # lake partitions month=YYYY-MM
CATALOG_CHECK = "procedure_code_in_catalog"
CATALOG_KEY = dg.AssetKey(["silver", "procedures"])
MONTHS_CHANGED = "months_changed"
# The bronze loads each silver month was built from: one small Parquet file per month partition,
# written after the month's silver and quarantine (a kill in between: the month is rebuilt, idempotently).
# A leading `_`: the pipeline's bookkeeping, not a table of the warehouse (`Lake.tables` skips it).
LINEAGE = ("ops", "_silver_lineage")

STATUS_NAMES = vocabularies.DOSSIER_STATUS_NAMES
CHANNELS = vocabularies.DOSSIER_CHANNELS
FINISHED_STATUSES = [9, 10]
CLOSED_UNFINISHED_STATUSES = [3, 7, 8]  # refused at reception, withdrawn by the applicant, processing stopped
MAX_SUPPLEMENTS_ON_TIME = 1  # asked to supplement more than once: late (the national scoring rule)


def _lookup(names: dict[int, str]) -> dict[str, int]:
    """Every accepted spelling (code or folded name) -> code."""
    table = {str(code): code for code in names}
    table.update({parsing.fold(name): code for code, name in names.items()})
    return table


STATUS_LOOKUP = _lookup(STATUS_NAMES)
CHANNEL_LOOKUP = _lookup({code: vi for code, (_, vi) in CHANNELS.items()})

SILVER_COLUMNS = [
    "dossier_code",
    "procedure_code",
    "agency",
    "unit_code",
    "unit_level",
    "district_code",
    "new_unit_code",
    "channel_code",
    "channel",
    "status_code",
    "status",
    "received_at",
    "due_at",
    "finished_at",
    "returned_at",
    "updated_at",
    "supplement_count",
    "paid_online",
    "digitized",
    "e_result",
    "is_finished",
    "is_closed_unfinished",
    "is_finished_on_time",
    "processing_days",
    "applicant_id",
    "received_month",
    "versions_delivered",
    "source_file",
    "source_row",
]

KPI_DOCS: dict[str, tuple[str, str]] = {
    "month": (
        "Tháng tiếp nhận (ngày đầu tháng)",
        "month of receipt (first day): a dossier counts in the month it was received",
    ),
    "agency": ("Đơn vị xử lý (DonViXuLy)", "processing agency"),
    "dossiers_received": ("Số hồ sơ tiếp nhận", "dossiers received in the month (current version of each MaHoSo)"),
    "dossiers_finished": (
        "Số hồ sơ đã giải quyết",
        "finished: newest version has status 9 or 10, or a finish time (NgayKetThucXuLy)",
    ),
    "finished_on_time": (
        "Số hồ sơ giải quyết đúng hạn",
        "finished, no later than NgayHenTra (or no due date), and asked to supplement at most once",
    ),
    "finished_late": ("Số hồ sơ giải quyết quá hạn", "dossiers_finished - finished_on_time"),
    "open_overdue": (
        "Số hồ sơ đang giải quyết quá hạn",
        "not finished, not refused/withdrawn/stopped (status 3, 7, 8), and NgayHenTra before as_of "
        "(the end of the month, or the extraction while the month is not over)",
    ),
    "closed_unfinished": ("Số hồ sơ bị từ chối, rút, dừng", "status 3, 7 or 8 and not finished"),
    "dossiers_online": ("Số hồ sơ trực tuyến", "channel 2 (Trực tuyến)"),
    "dossiers_paid_online": ("Số hồ sơ thanh toán trực tuyến", "DuocThanhToanTrucTuyen true"),
    "dossiers_digitized": ("Số hồ sơ được số hóa", "HoSoCoThanhPhanSoHoa true"),
    "dossiers_e_result": ("Số hồ sơ có kết quả điện tử", "finished and CoKetQuaDienTu true"),
    "distinct_applicants": ("Số người nộp (bí danh)", "distinct applicant pseudonyms"),
    "on_time_pct": (
        "Tỷ lệ giải quyết đúng hạn (%)",
        "100 × finished_on_time / (dossiers_finished + open_overdue): an open dossier past its due date counts as late",
    ),
    "online_pct": ("Tỷ lệ hồ sơ trực tuyến (%)", "100 × dossiers_online / dossiers_received"),
    "paid_online_pct": ("Tỷ lệ thanh toán trực tuyến (%)", "100 × dossiers_paid_online / dossiers_received"),
    "digitized_pct": ("Tỷ lệ số hóa hồ sơ (%)", "100 × dossiers_digitized / dossiers_received"),
    "e_result_pct": ("Tỷ lệ trả kết quả điện tử (%)", "100 × dossiers_e_result / dossiers_finished"),
    "avg_processing_days": (
        "Thời gian giải quyết trung bình (ngày)",
        "mean of (NgayKetThucXuLy - NgayTiepNhan) in days over finished dossiers with both times",
    ),
    "catalog_online_pct": (
        "Tỷ lệ TTHC cung cấp trực tuyến (%)",
        "100 × catalog procedures with an online class (full or partial) / catalog procedures "
        "(silver.procedures; by agency: the agency's procedures)",
    ),
    "as_of": (
        "Thời điểm chốt số liệu: cuối tháng, hoặc lúc trích xuất dữ liệu nếu tháng chưa hết",
        "as of: the end of the month, or the moment the data was extracted (the gateway pull, the export's "
        "delivery) while the month is not over",
    ),
}

DOCS = {
    "silver.dossiers": TableDoc(
        "Hồ sơ một cửa: phiên bản mới nhất của mỗi hồ sơ, đã kiểm tra, không có dữ liệu cá nhân",
        "One-stop-shop dossiers: the current version of each, gated, without personal data",
        {
            "dossier_code": ("Mã hồ sơ (MaHoSo)", "dossier code"),
            "procedure_code": ("Mã TTHC", "procedure code (unknown codes are kept and flagged)"),
            "agency": ("Đơn vị xử lý", "processing agency"),
            "unit_code": ("Mã đơn vị hành chính tiếp nhận (GSO)", "GSO code of the receiving office's unit"),
            "unit_level": ("Cấp đơn vị: commune/district", "level of that unit"),
            "district_code": ("Mã huyện (trước 2025)", "district code before the 2025 reform"),
            "new_unit_code": ("Mã đơn vị sau sắp xếp 2025", "post-reform unit (communes only)"),
            "channel_code": ("Kênh thực hiện (1, 2, 3)", "channel code"),
            "channel": ("Kênh: in_person/online/postal", "channel"),
            "status_code": ("Trạng thái hồ sơ (1-10)", "national status code"),
            "status": ("Tên trạng thái", "status name"),
            "received_at": ("Ngày tiếp nhận", "received at (Asia/Ho_Chi_Minh)"),
            "due_at": ("Ngày hẹn trả", "legal due date"),
            "finished_at": ("Ngày kết thúc xử lý", "processing finished at"),
            "returned_at": ("Ngày trả kết quả", "result handed back at"),
            "updated_at": ("Ngày cập nhật", "last change (the version)"),
            "supplement_count": ("Số lần yêu cầu bổ sung", "times asked to supplement"),
            "paid_online": ("Thanh toán trực tuyến", "fee paid online"),
            "digitized": ("Thành phần hồ sơ được số hóa", "documents digitised"),
            "e_result": ("Có kết quả điện tử", "result issued electronically"),
            "is_finished": ("Đã giải quyết", "finished: status 9/10 or a finish time"),
            "is_closed_unfinished": ("Từ chối/rút/dừng", "refused, withdrawn or stopped (3, 7, 8)"),
            "is_finished_on_time": (
                "Giải quyết đúng hạn",
                "finished on time by the contract's rule (null if not finished)",
            ),
            "processing_days": ("Số ngày giải quyết", "days from receipt to finish"),
            "applicant_id": ("Bí danh người nộp (HMAC)", "applicant pseudonym (keyed HMAC of the citizen ID)"),
            "received_month": ("Tháng tiếp nhận", "month of receipt (the partition)"),
            "versions_delivered": ("Số phiên bản đã nhận", "versions of the dossier delivered so far"),
            "source_file": ("Tệp / trang nguồn", "delivered file or gateway page"),
            "source_row": ("Dòng nguồn", "line of the file or record of the page"),
            "month": ("Phân vùng tháng (YYYY-MM)", "month partition of the lake"),
        },
    ),
    "quarantine.dossiers": TableDoc(
        "Hồ sơ bị loại, kèm lý do (đã ẩn danh)", "Rejected dossier versions with the rules they broke (pseudonymised)"
    ),
    "gold.public_service_kpis_monthly": TableDoc(
        "Chỉ số phục vụ hành chính công theo tháng tiếp nhận (toàn tỉnh)",
        "Public-service indicators by month of receipt, whole province",
        KPI_DOCS,
    ),
    "gold.public_service_kpis_by_agency_monthly": TableDoc(
        "Chỉ số phục vụ hành chính công theo tháng và đơn vị xử lý",
        "Public-service indicators by month of receipt and processing agency",
        KPI_DOCS,
    ),
}
DOCS["quarantine.dossiers"] = layers.delivered_doc(
    source.FEED, DOCS["silver.dossiers"], *DOCS["quarantine.dossiers"].texts
)


# --------------------------------------------------------------------------------------------------
# bronze
# --------------------------------------------------------------------------------------------------


def bronze_dossiers_asset(retry_policy: dg.RetryPolicy | None = None) -> dg.AssetsDefinition:
    """The bronze asset. A gateway that kept failing retries the step with `NETWORK_RETRY`
    (`retry_network_failure`; a refused token is never retried); `retry_policy` stays a hook for a policy
    on every failure (which Dagster applies to an interrupted step too)."""

    @dg.asset(
        key=BRONZE_KEY,
        pool=pool_for("bronze", "dossiers"),
        group_name=GROUP,
        kinds={"dlt", "parquet"},
        owners=OWNERS,
        retry_policy=retry_policy,
        check_specs=deliveries.check_specs(BRONZE_KEY),
        partitions_def=layers.province_partitions(),  # each former province's exports, loaded by a step of its own
        description=(
            "Every dossier version as delivered (gateway API, incremental on NgayCapNhat; or the ndjson "
            "export), pseudonymised: ChuHoSo is replaced by applicant_id before the lake. Append-only."
        ),
    )
    def _bronze(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        landing: LandingResource,
        gateway: DossierGatewayResource,
        pii: PiiResource,
        alerts: AlertsResource,
    ) -> dg.MaterializeResult:
        store = lake.lake()
        try:
            key = pii.hmac_key()
        except PiiKeyError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        code = context.partition_key  # the former province whose gateway (else its exports) it loads
        webhook = alerts.webhook_url or None
        api = source.Gateway.from_settings(gateway, code)  # its own gateway (the unsuffixed one: the first's)
        try:
            where = landing.landing()
            feed, partition = next((f, p) for c, f, p in provinces.deliveries(source.FEED, where) if c == code)
            mine = layers.province_of_rows() == code if partition else None  # what its gateway is compared with
            try:
                loaded = source.ingest(
                    store, lake.dlt_dir, where, key, api, settle_seconds=landing.settle_seconds, feed=feed,
                    partition=partition, rows=mine,
                )  # fmt: skip
            except Exception as error:  # one province's broken export load fails its own partition only
                if api is not None or not provinces.partitioned():
                    raise  # the gateway's failures are retried as a whole step (NETWORK_RETRY)
                raise layers.province_failure(context, store, source.FEED, code, error, webhook) from error
            faults.point("dlt_recorded")
        except Exception as error:  # dlt wraps the source's errors: report the cause, clearly
            cause = _root_cause(error)
            if isinstance(cause, source.GatewayAuthError):
                raise _gateway_failed(context, store, code, api, cause, webhook) from None
            if isinstance(cause, source.GatewayError):  # after the source's own retries of the page
                retried = retry_network_failure(context, cause, gateway.step_retries)
                if isinstance(retried, dg.Failure):  # no step retry left: the province's partition fails
                    retried = _gateway_failed(context, store, code, api, retried, webhook)
                raise retried from cause
            raise
        report = loaded.report
        files, checks = deliveries.report_deliveries(context, store, source.FEED, report, webhook, partition)
        gateway_stats = loaded.gateway
        context.log.info(f"dossiers: {report.rows} versions loaded ({loaded.mode}); months changed: {loaded.months}")
        registered = automation.register(MONTHS, context.instance, delivered_months(store))
        if registered:
            context.log.info(f"dossiers: new month partitions {', '.join(registered)}")
        metadata: dict[str, Any] = {
            "dagster/row_count": _rows(store.scan("bronze", TABLE).filter(layers.province_of_rows() == code)),
            "source": loaded.mode,
            "rows_loaded": report.rows,
            MONTHS_CHANGED: loaded.months,
            "months_registered": registered,
            "dlt_load_ids": report.load_ids,
        }
        if gateway_stats and api is not None:
            metadata["gateway"] = api.host  # which gateway fed the partition (never its token)
            metadata.update(gateway_stats.metadata())
        else:
            metadata.update(files)
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    return _bronze


def _gateway_failed(
    context: dg.AssetExecutionContext,
    store: Lake,
    code: str,
    api: source.Gateway | None,
    cause: Exception,
    webhook: str | None,
) -> dg.Failure:
    """The final failure of a former province's gateway load (a refused token, or the step's retries spent):
    with several provinces, logged and alerted as a province's failed load (the others' runs go on)."""
    host = api.host if api is not None else ""
    description = getattr(cause, "description", None) or str(cause)
    if not provinces.partitioned():
        return dg.Failure(description=description, allow_retries=False, metadata={"gateway": host})
    error = source.GatewayError(f"the gateway {host} failed: {description}")
    why = layers.province_load_failed(context, store, source.FEED, code, error, webhook)
    return dg.Failure(
        description=f"{TABLE}: the load of former province {code} from the gateway {host} failed: {description}",
        metadata={"provinces_load_failed": {code: why}, "gateway": host},
        allow_retries=False,
    )


def _rows(frame: pl.LazyFrame) -> int:
    return frame.select(pl.len()).collect().item()


def _root_cause(error: BaseException) -> BaseException:
    seen = error
    while seen.__cause__ is not None or (seen.__context__ is not None and not seen.__suppress_context__):
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
        if isinstance(seen, source.GatewayError):
            return seen
    return seen


bronze_dossiers = bronze_dossiers_asset()


# --------------------------------------------------------------------------------------------------
# silver, per month of receipt
# --------------------------------------------------------------------------------------------------


ORDER = [source.UPDATED_AT, LOAD_ID, SOURCE_FILE, SOURCE_ROW]


def current_versions(bronze: pl.LazyFrame) -> pl.DataFrame:
    """The newest version of each dossier (by NgayCapNhat, then load, file and row); a version with no
    key stays a row of its own (the gate quarantines it). The choice is made on the ordering columns
    alone, then only the chosen rows are read whole: a month's history is never in memory at once."""
    numbered = bronze.with_row_index("_n")
    keys = (
        numbered.select("_n", parsing.text("dossier_code").alias("_key"), *ORDER)
        .collect()
        .sort(ORDER, nulls_last=False)
    )
    newest = (
        keys.filter(pl.col("_key").is_not_null())
        .group_by("_key")
        .agg(pl.col("_n").last(), pl.len().cast(pl.Int32).alias("versions_delivered"))
    )
    loose = keys.filter(pl.col("_key").is_null()).select("_n", pl.lit(1, pl.Int32).alias("versions_delivered"))
    chosen = pl.concat([newest.select("_n", "versions_delivered"), loose])
    rows = numbered.filter(pl.col("_n").is_in(chosen.get_column("_n").implode())).collect()
    return rows.join(chosen, on="_n").drop("_n").sort(SOURCE_FILE, SOURCE_ROW)


def _coded(text: pl.Expr, lookup: dict[str, int]) -> pl.Expr:
    return parsing.folded(text).replace_strict(lookup, default=None, return_dtype=pl.Int8)


@functools.cache
def _resolver(province: str) -> UnitResolver:
    return UnitResolver(province)  # its cache of resolved spellings lives as long as the process


def _resolve_units(frame: pl.DataFrame) -> pl.DataFrame:
    """Unit text -> code, once per distinct (text, era): names of the receiving office's commune or district."""
    pairs = frame.select(
        pl.col("unit_text"), (pl.col("received_at").dt.date() >= REFORM_DATE).fill_null(False).alias("_post")
    ).unique()
    resolver = _resolver(provinces.current())  # the former province being gated
    rows = []
    for text, post in pairs.iter_rows():
        found = resolver.resolve(text, as_of=REFORM_DATE if post else None, allow_district=True)
        rows.append(
            {
                "unit_text": text,
                "_post": post,
                "unit_code": found.unit_code,
                "unit_level": found.level,
                "district_code": found.district_code,
                "new_unit_code": found.new_unit_code,
                "unit_problem": None if found.error is None else f"{found.error}: {found.detail}",
            }
        )
    schema = {"unit_text": pl.String, "_post": pl.Boolean} | {
        c: pl.String for c in ("unit_code", "unit_level", "district_code", "new_unit_code", "unit_problem")
    }
    resolved = pl.DataFrame(rows, schema=schema, orient="row")
    frame = frame.with_columns((pl.col("received_at").dt.date() >= REFORM_DATE).fill_null(False).alias("_post"))
    return frame.join(resolved, on=["unit_text", "_post"], how="left", nulls_equal=True).drop("_post")


def typed_dossiers(delivered: pl.DataFrame) -> pl.DataFrame:
    """Current versions (bronze text) -> typed columns, plus the problem columns the rules read."""
    times = ("received_at", "due_at", "finished_at", "returned_at")
    flags = ("paid_online", "digitized", "e_result")
    texts = ("channel", "status", "supplement_count", *times, *flags)
    # every expression once: polars recomputes an expression each time it is used in a select
    frame = delivered.select(
        ROW_ID,
        parsing.text("dossier_code").alias("dossier_code"),
        parsing.text("procedure_code").alias("procedure_code"),
        parsing.text("agency").alias("agency"),
        parsing.text("unit").alias("unit_text"),
        *[parsing.text(c).alias(f"{c}_text") for c in texts],
        pl.col(source.UPDATED_AT).dt.convert_time_zone(parsing.TIMEZONE).alias("updated_at"),
        pl.col("applicant_id"),
        pl.col(source.PARSE_ERROR).alias("parse_error"),
        pl.col(SOURCE_FILE).alias("source_file"),
        pl.col(SOURCE_ROW).alias("source_row"),
        pl.col("versions_delivered").cast(pl.Int32),
    ).with_columns(
        _coded(pl.col("channel_text"), CHANNEL_LOOKUP).alias("channel_code"),
        _coded(pl.col("status_text"), STATUS_LOOKUP).alias("status_code"),
        *[parsing.datetime_local(f"{c}_text").alias(c) for c in times],
        parsing.integer("supplement_count_text").alias("supplement_count"),
        *[parsing.boolean(f"{c}_text").alias(c) for c in flags],
    )

    def unparsed(column: str) -> pl.Expr:
        return pl.when(pl.col(f"{column}_text").is_not_null() & pl.col(column).is_null()).then(pl.col(f"{column}_text"))

    frame = frame.with_columns(
        unparsed("received_at").alias("received_at_unparsed"),
        pl.coalesce(*[unparsed(c) for c in times[1:]]).alias("datetime_unparsed"),
        pl.when(pl.col("supplement_count_text").is_not_null() & ~(pl.col("supplement_count") >= 0).fill_null(False))
        .then(pl.col("supplement_count_text"))
        .alias("supplement_count_unparsed"),
        pl.coalesce(*[unparsed(c) for c in flags]).alias("flag_unparsed"),
    )
    first = dt.datetime.combine(source.FIRST_MONTH, dt.time(), tzinfo=source.TZ)
    finish = pl.coalesce("finished_at", "returned_at")
    frame = frame.with_columns(
        pl.when(pl.col("channel_text").is_not_null() & pl.col("channel_code").is_null())
        .then(pl.col("channel_text"))
        .alias("channel_unknown"),
        pl.when(pl.col("status_text").is_not_null() & pl.col("status_code").is_null())
        .then(pl.col("status_text"))
        .alias("status_unknown"),
        pl.when(pl.col("received_at") < first).then(pl.col("received_at_text")).alias("received_out_of_range"),
        pl.when(pl.col("finished_at") < pl.col("received_at"))
        .then(pl.lit("NgayKetThucXuLy before NgayTiepNhan"))
        .when(pl.col("returned_at") < pl.col("finished_at"))
        .then(pl.lit("NgayTra before NgayKetThucXuLy"))
        .when(pl.col("returned_at") < pl.col("received_at"))
        .then(pl.lit("NgayTra before NgayTiepNhan"))
        .when(pl.col("due_at") < pl.col("received_at"))
        .then(pl.lit("NgayHenTra before NgayTiepNhan"))
        .alias("dates_problem"),
        pl.col("supplement_count").fill_null(0).clip(lower_bound=0).cast(pl.Int16),
        pl.col("channel_code").replace_strict({k: v[0] for k, v in CHANNELS.items()}, default=None).alias("channel"),
        pl.col("status_code").replace_strict(STATUS_NAMES, default=None, return_dtype=pl.String).alias("status"),
        (pl.col("status_code").is_in(FINISHED_STATUSES) | pl.col("finished_at").is_not_null()).alias("is_finished"),
        pl.col("received_at").dt.date().dt.truncate("1mo").alias("received_month"),
    )
    frame = frame.with_columns(
        (~pl.col("is_finished") & pl.col("status_code").is_in(CLOSED_UNFINISHED_STATUSES)).alias(
            "is_closed_unfinished"
        ),
        pl.when(pl.col("is_finished"))
        .then(
            (pl.col("supplement_count") <= MAX_SUPPLEMENTS_ON_TIME)
            & (pl.col("due_at").is_null() | (finish.is_not_null() & (finish <= pl.col("due_at"))).fill_null(False))
        )
        .alias("is_finished_on_time"),
        ((pl.col("finished_at") - pl.col("received_at")).dt.total_seconds() / 86400.0).alias("processing_days"),
        *[pl.col(c).fill_null(False) for c in flags],
    )
    # codes are text everywhere (the national code lists are codes, not quantities)
    return _resolve_units(frame).with_columns(pl.col("channel_code", "status_code").cast(pl.String))


def _catalog_codes(store: Lake) -> pl.Series | None:
    if not store.exists("silver", "procedures"):
        return None
    return store.scan("silver", "procedures").select("procedure_code").collect().get_column("procedure_code")


def partition_key(month: str, code: str) -> dg.MultiPartitionKey:
    """The silver partition of a month of former province `code` (`2022-04|93`)."""
    return dg.MultiPartitionKey({automation.MONTH_DIMENSION: month, provinces.PROVINCE_DIMENSION: code})


def _lake_partition(month: str, code: str) -> str:
    """Its files: `month=2022-04/` (the legacy layout), `month=2022-04/93/` (IOC_PROVINCES set)."""
    return "/".join(filter(None, [_month_partition(month), provinces.lake_partition(code)]))


def requested(context: dg.AssetExecutionContext) -> dict[str, list[str]]:
    """Month -> the former provinces of it that the run asks for (in the run's order)."""
    partitions = cast(dg.MultiPartitionsDefinition, context.assets_def.partitions_def)
    wanted: dict[str, list[str]] = {}
    for key in context.partition_keys:
        dimensions = partitions.get_partition_key_from_str(key).keys_by_dimension
        wanted.setdefault(dimensions[automation.MONTH_DIMENSION], []).append(dimensions[provinces.PROVINCE_DIMENSION])
    return wanted


def _month_pages(
    store: Lake, month: str, code: str, gated: Gated | None, unknown: dict[str, int] | None
) -> list[dg.AssetMaterialization]:
    """One month's own materializations of silver and quarantine, of former province `code`: its rows,
    quarantined rows, decision and figures, whatever other partitions ran with it (Dagster records a
    single-run backfill's result on every partition of the range; these events, logged after it, are each
    partition's latest)."""
    key = partition_key(month, code)
    if gated is None:
        kept = store.row_count("silver", TABLE, _lake_partition(month, code)) or 0
        nothing = {"delivered": False, "dagster/row_count": kept, "delivered_rows": 0}
        return [
            dg.AssetMaterialization(SILVER_KEY, partition=key, metadata={**nothing, "published": False}),
            dg.AssetMaterialization(QUARANTINE_KEY, partition=key, metadata=nothing),
        ]
    figures: dict[str, Any] = {
        "delivered": True,
        "published": gated.published,
        "delivered_rows": gated.delivered,
        "quarantined_rows": gated.quarantine.height,
        **gated.outcome.metadata(),
    }
    if unknown is not None:
        figures["unknown_procedure_codes"] = dg.MetadataValue.json(unknown)
    silver = table_metadata(gated.clean, doc=SILVER.doc, **figures)
    return [
        dg.AssetMaterialization(SILVER_KEY, partition=key, metadata=silver),
        dg.AssetMaterialization(QUARANTINE_KEY, partition=key, metadata=quarantine_metadata(gated.quarantine)),
    ]


def _month_partition(month: str) -> str:
    return f"{PARTITION_COLUMN}={month}"


QUARANTINE_SCHEMA = {"source_file": pl.String, "source_row": pl.Int64, "rule": pl.String, "reason": pl.String}


def _combine(checks: dict[str, list[dg.AssetCheckResult]]) -> list[dg.AssetCheckResult]:
    """One result per batch check over the months of the run: passed when every month passed."""
    combined: dict[str, dict[str, Any]] = {}
    for month, results in checks.items():
        for result in results:
            entry = combined.setdefault(cast(str, result.check_name), {"passed": True, "by_month": {}})
            entry["passed"] = entry["passed"] and result.passed
            entry["by_month"][month] = {"passed": result.passed, **{k: v.value for k, v in result.metadata.items()}}
    return [
        dg.AssetCheckResult(
            asset_key=SILVER_KEY,
            check_name=name,
            passed=entry["passed"],
            metadata={
                "months": dg.MetadataValue.json(entry["by_month"]),
                "failed_months": [m for m, r in entry["by_month"].items() if not r["passed"]],
            },
        )
        for name, entry in combined.items()
    ]


SILVER = GatedTable(
    table=TABLE,
    feed=source.FEED,
    rules=RULES,
    silver_columns=SILVER_COLUMNS,
    typed=lambda delivered, _lake: typed_dossiers(delivered),
    doc=DOCS.get("silver.dossiers"),
    batch=lambda bronze: current_versions(bronze.lazy()),
    # validating an export offline: pseudonymised with a throwaway key, like bronze, never shown
    reader=lambda landing, file, feed: source.read_export(landing, file, feed, secrets.token_bytes(32)),
)
GATED = [SILVER]  # `cli validate` finds a file's feed among the gated tables

_silver_specs = gated_specs(
    SILVER,
    GROUP,
    "The current version of every dossier received in the month: typed (Asia/Ho_Chi_Minh), unit resolved, "
    "channel and status normalised, on-time flag by the contract's rule, applicant pseudonym only.",
    [BRONZE_KEY],
)
_silver_specs["check_specs"] = [
    *_silver_specs["check_specs"],
    dg.AssetCheckSpec(
        CATALOG_CHECK,
        asset=SILVER_KEY,
        blocking=False,
        additional_deps=[CATALOG_KEY],
        description="Procedure codes the catalog (silver.procedures) does not know: flagged, not dropped (warning).",
    ),
]


@dg.multi_asset(**_silver_specs, partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())
def silver_dossiers(
    context: dg.AssetExecutionContext, lake: LakeResource, alerts: AlertsResource
) -> Iterator[dg.MaterializeResult]:
    store = lake.lake()
    catalog = _catalog_codes(store)
    wanted = requested(context)
    months = list(wanted)
    has_bronze = store.exists("bronze", TABLE)
    unknown: dict[str, dict[str, int]] = {}
    summaries: dict[str, dict[str, Any]] = {}
    previews: list[pl.DataFrame] = []
    rejected: list[pl.DataFrame] = []
    checks_by_month: dict[str, list[dg.AssetCheckResult]] = {}
    pages: list[dg.AssetMaterialization] = []  # each partition's own figures (see `_month_pages`)
    for month in months:
        for code in wanted[month]:  # each former province's month on its own (the legacy layout: one)
            mine = (
                store.scan("bronze", TABLE).filter(
                    (pl.col(source.MONTH) == month) & (layers.province_of_rows() == code)
                )
                if has_bronze
                else None
            )
            # the loads, listed before the rows are read: one landing meanwhile is read again next time, never missed
            loads = (
                sorted(mine.select(pl.col(LOAD_ID).unique()).collect().get_column(LOAD_ID)) if mine is not None else []
            )
            delivered = current_versions(mine).with_row_index(ROW_ID) if mine is not None else pl.DataFrame()
            if delivered.is_empty():
                context.log.info(f"dossiers {month} of {code}: no versions delivered, nothing to rebuild")
                pages.extend(_month_pages(store, month, code, None, None))
                continue
            batch = f"{month}_{code}" if provinces.partitioned() else month
            partition = _lake_partition(month, code)
            gated = gate_batch(context, store, SILVER, delivered, partition, batch, alerts.webhook_url or None, code)
            del delivered
            summary = summaries.setdefault(month, {"published": True, "rows": 0, "delivered": 0})
            summary["published"] = summary["published"] and gated.published
            summary["rows"] += gated.clean.height
            summary["delivered"] += gated.delivered
            checks_by_month[batch] = gated.checks
            previews.append(gated.clean.head(5))
            rejected.append(gated.quarantine.select("source_file", "source_row", "rule", "reason"))
            mine_unknown: dict[str, int] | None = None
            if catalog is not None:
                codes = gated.clean.filter(
                    ~pl.col("procedure_code").is_in(catalog) | pl.col("procedure_code").is_null()
                )
                found = codes.group_by(pl.col("procedure_code").fill_null("(missing)")).len().iter_rows()
                mine_unknown = dict(found)
                month_unknown = unknown.setdefault(month, {})
                for procedure, count in mine_unknown.items():
                    month_unknown[procedure] = month_unknown.get(procedure, 0) + count
            pages.extend(_month_pages(store, month, code, gated, mine_unknown))
            record_lineage(store, month, code, loads, gated.delivered)
            del gated  # keep one month in memory at a time
            faults.point("silver")
    if not summaries:
        # the nightly's months before their first dossier: nothing to rebuild is a success, not a failure
        context.log.info(f"dossiers: no versions delivered for {', '.join(months)}; silver left as it was")
        empty = current_versions(store.scan("bronze", TABLE).head(0)).with_row_index(ROW_ID) if has_bronze else None
        previews = [typed_dossiers(empty).select(SILVER_COLUMNS) if empty is not None else pl.DataFrame()]
        rejected = [pl.DataFrame(schema=QUARANTINE_SCHEMA)]
        checks_by_month = {month: gate.empty_batch_checks(SILVER_KEY, {"delivered_rows": 0}) for month in months}
    clean = pl.concat(previews, how="vertical_relaxed")
    quarantine = pl.concat(rejected, how="vertical_relaxed")
    checks = _combine(checks_by_month)
    unknown_total = sum(n for counts in unknown.values() for n in counts.values())
    checks.append(
        dg.AssetCheckResult(
            asset_key=SILVER_KEY,
            check_name=CATALOG_CHECK,
            passed=unknown_total == 0 and catalog is not None,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"{unknown_total:,} dossier(s) name a procedure code the catalog does not know (kept, flagged)"
                if catalog is not None
                else "the procedure catalog is not published yet: codes not checked"
            ),
            metadata={
                "dossiers_with_unknown_code": unknown_total,
                "unknown_codes_by_month": dg.MetadataValue.json(unknown),
                "catalog_available": catalog is not None,
            },
        )
    )
    # The run's materialization is recorded for every month of the range with the same metadata: it
    # carries the run's totals (named so), and each month's own page follows right after it.
    yield dg.MaterializeResult(
        asset_key=SILVER_KEY,
        metadata={
            "run_months": months,
            "published_months": [m for m, v in summaries.items() if v["published"]],
            "blocked_months": [m for m, v in summaries.items() if not v["published"]],
            "run_rows": sum(m["rows"] for m in summaries.values()),
            "run_delivered_rows": sum(m["delivered"] for m in summaries.values()),
            "run_quarantined_rows": quarantine.height,
            "rows_by_month": {m: v["rows"] for m, v in summaries.items()},
            "preview": table_metadata(clean, doc=SILVER.doc)["preview"],
        },
        check_results=checks,
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE_KEY,
        metadata={"run_months": months, "run_quarantined_rows": quarantine.height},
    )
    for page in pages:
        context.log_event(page)


# --------------------------------------------------------------------------------------------------
# gold
# --------------------------------------------------------------------------------------------------

# The silver columns the KPIs read, and their types (an empty silver of this schema gives empty KPIs).
KPI_INPUT_SCHEMA: "dict[str, PolarsDataType]" = {
    "received_month": pl.Date,
    "agency": pl.String,
    "channel_code": pl.String,
    "status_code": pl.String,
    "due_at": pl.Datetime("us", parsing.TIMEZONE),
    "updated_at": pl.Datetime("us", parsing.TIMEZONE),
    "paid_online": pl.Boolean,
    "digitized": pl.Boolean,
    "e_result": pl.Boolean,
    "is_finished": pl.Boolean,
    "is_closed_unfinished": pl.Boolean,
    "is_finished_on_time": pl.Boolean,
    "processing_days": pl.Float64,
    "applicant_id": pl.String,
}
KPI_INPUTS = list(KPI_INPUT_SCHEMA)


def kpis(
    silver: pl.LazyFrame, catalog: pl.DataFrame | None, by: list[str], extracted_at: dt.datetime | None = None
) -> pl.DataFrame:
    """The indicators of `KPI_DOCS` per month of receipt (and per `by`). A month is judged as of its end,
    or as of `extracted_at` (when the data left its source) while the month is not over yet; without
    `extracted_at` (no delivery known), as of the newest change delivered."""
    if extracted_at is None:
        extracted_at = silver.select(pl.col("updated_at").max()).collect(engine="streaming").item()
    period_end = (
        pl.col("received_month").dt.offset_by("1mo").cast(pl.Datetime("us")).dt.replace_time_zone(parsing.TIMEZONE)
    )
    as_of = (
        pl.min_horizontal(period_end, pl.lit(extracted_at, pl.Datetime("us", parsing.TIMEZONE)))
        if extracted_at is not None
        else period_end
    )
    silver = silver.with_columns(as_of.alias("as_of"))
    finished = pl.col("is_finished")
    open_overdue = ~finished & ~pl.col("is_closed_unfinished") & (pl.col("due_at") < pl.col("as_of"))
    counts = (
        silver.group_by(["received_month", *by])
        .agg(
            pl.len().alias("dossiers_received"),
            finished.sum().alias("dossiers_finished"),
            pl.col("is_finished_on_time").fill_null(False).sum().alias("finished_on_time"),
            open_overdue.fill_null(False).sum().alias("open_overdue"),
            pl.col("is_closed_unfinished").sum().alias("closed_unfinished"),
            (pl.col("channel_code") == "2").sum().alias("dossiers_online"),
            pl.col("paid_online").sum().alias("dossiers_paid_online"),
            pl.col("digitized").sum().alias("dossiers_digitized"),
            (finished & pl.col("e_result")).sum().alias("dossiers_e_result"),
            pl.col("applicant_id").n_unique().alias("distinct_applicants"),
            pl.col("processing_days").filter(finished).mean().alias("avg_processing_days"),
            pl.col("as_of").first(),
        )
        .collect(engine="streaming")
    )

    def pct(numerator: str | pl.Expr, denominator: str | pl.Expr) -> pl.Expr:
        num = pl.col(numerator) if isinstance(numerator, str) else numerator
        den = pl.col(denominator) if isinstance(denominator, str) else denominator
        return pl.when(den > 0).then(num.cast(pl.Float64) * 100.0 / den)

    table = counts.rename({"received_month": "month"}).with_columns(
        (pl.col("dossiers_finished") - pl.col("finished_on_time")).alias("finished_late"),
        pct("finished_on_time", pl.col("dossiers_finished") + pl.col("open_overdue")).alias("on_time_pct"),
        pct("dossiers_online", "dossiers_received").alias("online_pct"),
        pct("dossiers_paid_online", "dossiers_received").alias("paid_online_pct"),
        pct("dossiers_digitized", "dossiers_received").alias("digitized_pct"),
        pct("dossiers_e_result", "dossiers_finished").alias("e_result_pct"),
    )
    if by:
        table = table.join(_catalog_online(catalog, by), on=by, how="left")
    else:
        share = _catalog_online(catalog, by).get_column("catalog_online_pct")[0]
        table = table.with_columns(pl.lit(share, pl.Float64).alias("catalog_online_pct"))
    columns = ["month", *by, *[c for c in KPI_DOCS if c not in ("month", "agency")]]
    int_columns = [c for c in columns if c.startswith(("dossiers_", "finished_", "open_", "closed_", "distinct_"))]
    return table.with_columns(pl.col(int_columns).cast(pl.Int64)).select(columns).sort(["month", *by])


def _catalog_online(catalog: pl.DataFrame | None, by: list[str]) -> pl.DataFrame:
    schema = {**{b: pl.String for b in by}, "catalog_online_pct": pl.Float64}
    if catalog is None or catalog.is_empty():
        return pl.DataFrame(schema=schema) if by else pl.DataFrame({"catalog_online_pct": [None]}, schema=schema)
    online = pl.col("online_class").is_in(["full", "partial"])
    if not by:
        return catalog.select((online.sum() * 100.0 / pl.len()).alias("catalog_online_pct"))
    share = catalog.group_by(parsing.folded(pl.col("agency")).alias("_agency")).agg(
        (online.sum() * 100.0 / pl.len()).alias("catalog_online_pct")
    )
    return share.rename({"_agency": by[0]})


def extracted_at(store: Lake) -> dt.datetime | None:
    """When the newest dossier data left its source: the delivered export files' modification time (the
    delivery) when the newest bronze load read files, else that load's start (the gateway pull)."""
    if not store.exists("bronze", TABLE):
        return None
    load_id = store.scan("bronze", TABLE).select(pl.col(LOAD_ID).max()).collect().item()
    if load_id is None:
        return None
    if store.exists(fates.LAYER, fates.LANDING_FILES):
        files = store.scan(fates.LAYER, fates.LANDING_FILES).filter(
            (pl.col("feed") == TABLE) & (pl.col("load_id") == load_id)
        )
        delivered = files.select(pl.col("modified_at").max()).collect().item()
        if delivered is not None:
            return delivered.astimezone(source.TZ)
    return dt.datetime.fromtimestamp(float(load_id), source.TZ)


def _kpi_table(
    store: Lake, by: list[str], extracted: dt.datetime | None, months: set[str] | None = None
) -> pl.DataFrame:
    """The KPIs of each scope (provinces.scopes: each former province, and the merged city when there are
    several), its rows marked with `province_code` and `province_scope`; only `months` (YYYY-MM) when given.
    Agencies by their folded name (`_named` shows them)."""
    if store.exists("silver", TABLE):
        silver = store.scan("silver", TABLE)
        if months is not None:
            silver = silver.filter(pl.col(PARTITION_COLUMN).is_in(sorted(months)))  # only their partitions read
        silver = silver.select(PROVINCE_COLUMN, *KPI_INPUTS)
    else:
        silver = pl.LazyFrame(schema={PROVINCE_COLUMN: pl.String, **KPI_INPUT_SCHEMA})
    catalog = store.read("silver", "procedures") if store.exists("silver", "procedures") else None
    tables = []
    for scope in provinces.scopes():
        scoped = layers.rows_of_scope(silver, scope).drop(PROVINCE_COLUMN)
        if by:
            scoped = scoped.with_columns(parsing.folded(pl.col("agency")).alias("agency"))
        mine = layers.rows_of_scope(catalog, scope) if catalog is not None else None
        table = kpis(scoped, mine, by, extracted)
        if table.is_empty() and scope.scope == provinces.SCOPE_FORMER and provinces.several():
            continue  # a former province with no dossier yet (in these months)
        marks = [pl.lit(scope.province_code).alias(PROVINCE_COLUMN), pl.lit(scope.scope).alias(SCOPE_COLUMN)]
        tables.append(table.select(*marks, pl.all()))
    return pl.concat(tables, how="diagonal_relaxed")


def _named(table: pl.DataFrame, store: Lake) -> pl.DataFrame:
    """Each scope's agencies shown as written in the scope's first dossier of that agency (all months)."""
    if not store.exists("silver", TABLE):
        return table
    silver = store.scan("silver", TABLE).select(PROVINCE_COLUMN, "agency")
    parts = []
    for scope in provinces.scopes():
        rows = table.filter((pl.col(PROVINCE_COLUMN) == scope.province_code) & (pl.col(SCOPE_COLUMN) == scope.scope))
        first = layers.rows_of_scope(silver, scope).group_by(parsing.folded(pl.col("agency")).alias("_key"))
        names = dict(first.agg(pl.col("agency").first()).collect().iter_rows())
        parts.append(
            rows.with_columns(parsing.folded(pl.col("agency")).replace_strict(names, default=pl.col("agency")))
        )
    return pl.concat(parts)


def _ordered(table: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Scope by scope (in `provinces.scopes()` order), then month and `by` (agencies by folded name)."""
    rank = {f"{s.province_code}|{s.scope}": i for i, s in enumerate(provinces.scopes())}
    scope = pl.concat_str(PROVINCE_COLUMN, SCOPE_COLUMN, separator="|").replace_strict(rank, default=len(rank))
    return table.sort([scope, pl.col("month"), *[parsing.folded(pl.col(b)) for b in by]], maintain_order=True)


# What a KPI table was computed from, stored in its own Parquet file (written with it): the next run recomputes
# only the months whose inputs changed and keeps the other rows (`_months_to_recompute`).
GOLD_INPUTS = "ioc_gold_inputs"


def _kpi_inputs(store: Lake, extracted: dt.datetime | None) -> dict[str, Any]:
    return {
        "code": versions.code_version(),  # new code (the KPI rules among it): every month again
        "scopes": [repr(scope) for scope in provinces.scopes()],
        "catalog": store.fingerprints("silver", "procedures"),
        "months": store.fingerprints("silver", TABLE),
        "extracted_at": extracted.isoformat() if extracted else None,
    }


def _months_to_recompute(previous: dict[str, Any], current: dict[str, Any]) -> set[str] | None:
    """The months (YYYY-MM) whose KPIs may differ from the previous table's; None: every month. A month's
    figures depend on its own dossiers (its partition), the catalog, the scopes, the rules, and the moment it is
    judged at: its end, or the extraction while it is not over."""
    if not previous or previous.get("extracted_at") is None or current["extracted_at"] is None:
        return None
    if any(previous.get(part) != current[part] for part in ("code", "scopes", "catalog")):
        return None
    before = dt.datetime.fromisoformat(previous["extracted_at"])
    if dt.datetime.fromisoformat(current["extracted_at"]) < before:
        return None
    old, new = previous.get("months", {}), current["months"]
    changed = {p for p in set(old) | set(new) if old.get(p) != new.get(p)}
    if "" in changed:
        return None  # files outside the month partitions
    months = {p.removeprefix(f"{PARTITION_COLUMN}=") for p in changed}
    for partition in new:  # a month not over at the previous extraction was judged as of it: judge it again
        month = dt.date.fromisoformat(partition.removeprefix(f"{PARTITION_COLUMN}=") + "-01")
        over_at = dt.datetime.combine((month + dt.timedelta(days=31)).replace(day=1), dt.time(), source.TZ)
        if over_at > before:  # as `kpis` judges it: the first moment of the next month
            months.add(f"{month:%Y-%m}")
    return months


def _gold_asset(name: str, by: list[str], description: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["gold", name],
        pool=pool_for("gold", name),
        deps=[SILVER_KEY, CATALOG_KEY],
        group_name=GROUP,
        kinds={"polars", "parquet"},
        owners=OWNERS,
        description=description,
    )
    def _gold(lake: LakeResource) -> dg.MaterializeResult:
        store = lake.lake()
        extracted = extracted_at(store)
        inputs = _kpi_inputs(store, extracted)
        previous = json.loads(store.file_metadata("gold", name).get(GOLD_INPUTS, "{}"))
        months = _months_to_recompute(previous, inputs)  # None without a previous table: every month
        table = _kpi_table(store, by, extracted, months)
        if months is not None:  # the other months' rows as the previous run computed them
            kept = store.read("gold", name).filter(~pl.col("month").dt.strftime("%Y-%m").is_in(sorted(months)))
            table = pl.concat([kept, table.select(kept.columns)], how="vertical_relaxed")
        table = _ordered(_named(table, store) if by else table, by)
        store.write(table, "gold", name, metadata={GOLD_INPUTS: json.dumps(inputs)})
        faults.point("gold")
        recomputed = sorted(months) if months is not None else "all"
        return dg.MaterializeResult(
            metadata={
                **table_metadata(table, preview_rows=12, doc=DOCS[f"gold.{name}"]),
                "recomputed_months": dg.MetadataValue.json(recomputed),
            }
        )

    return _gold


gold_kpis_monthly = _gold_asset(
    "public_service_kpis_monthly",
    [],
    "Public-service indicators per month of receipt for the province (Decision 766/QĐ-TTg); formulas in the "
    "column descriptions.",
)
gold_kpis_by_agency_monthly = _gold_asset(
    "public_service_kpis_by_agency_monthly",
    ["agency"],
    "Public-service indicators per month of receipt and processing agency; formulas in the column descriptions.",
)


def latest_complete_month(table: pl.DataFrame) -> pl.DataFrame:
    """The row of the newest month that ended on or before the snapshot day."""
    if table.is_empty():
        return table
    as_of = cast(dt.datetime, table.get_column("as_of").max()).date()
    done = table.filter(
        pl.col("month").map_elements(
            lambda m: m.replace(day=calendar.monthrange(m.year, m.month)[1]) <= as_of, pl.Boolean
        )
    )
    return done.filter(pl.col("month") == done.get_column("month").max()) if not done.is_empty() else done


INDICATOR_INPUTS = [gold_kpis_monthly.key]  # what `indicators` reads: the scorecard waits for them


def indicators(store: Lake) -> list[dict]:
    """Scorecard rows of the latest complete month, dated its last day."""
    if not store.exists("gold", "public_service_kpis_monthly"):
        return []
    row = latest_complete_month(store.read("gold", "public_service_kpis_monthly"))
    if row.is_empty():
        return []
    values = row.row(0, named=True)
    month: dt.date = values["month"]
    as_of = month.replace(day=calendar.monthrange(month.year, month.month)[1])

    def item(code: str, name: str, column: str, unit: str) -> dict:
        return indicator(code, name, values[column], as_of, "gold/public_service_kpis_monthly", unit)

    return [
        item("dossiers_received", "Số hồ sơ tiếp nhận trong tháng", "dossiers_received", "count"),
        item("dossiers_on_time_pct", "Tỷ lệ hồ sơ giải quyết đúng hạn", "on_time_pct", "percent"),
        item("dossiers_online_pct", "Tỷ lệ hồ sơ tiếp nhận trực tuyến", "online_pct", "percent"),
        item("dossiers_paid_online_pct", "Tỷ lệ hồ sơ thanh toán trực tuyến", "paid_online_pct", "percent"),
        item("dossiers_digitized_pct", "Tỷ lệ hồ sơ được số hóa", "digitized_pct", "percent"),
        item("dossiers_e_result_pct", "Tỷ lệ hồ sơ có kết quả điện tử", "e_result_pct", "percent"),
    ]


# --------------------------------------------------------------------------------------------------
# which months to rebuild
# --------------------------------------------------------------------------------------------------


def record_lineage(store: Lake, month: str, code: str, load_ids: list[str], rows: int) -> None:
    """Record that silver `month` of former province `code` was gated from the bronze rows of these loads
    (published or blocked: either way the gate has judged them, and a blocked month waits for a new delivery)."""
    record = pl.DataFrame(
        {"table": [TABLE], "bronze_load_ids": [load_ids], "bronze_rows": [rows]},
        schema={"table": pl.String, "bronze_load_ids": pl.List(pl.String), "bronze_rows": pl.Int64},
    )
    store.write(record, *LINEAGE, _lake_partition(month, code))


def built_from(store: Lake) -> dict[tuple[str, str], set[str]]:
    """(month, former province) -> the bronze loads its silver partition was last built from."""
    built: dict[tuple[str, str], set[str]] = {}
    for partition in store.partitions(*LINEAGE):
        month = partition.split("=", 1)[1]
        for code in provinces.codes():
            record = store.read_partition(*LINEAGE, _lake_partition(month, code))
            if record is not None and record.height:
                built[(month, code)] = set(record.get_column("bronze_load_ids")[0].to_list())
    return built


def bronze_loads(store: Lake) -> dict[tuple[str, str], set[str]]:
    """(month, former province) -> the loads whose rows bronze holds for it (three columns of bronze read)."""
    if not store.exists("bronze", TABLE):
        return {}
    province = layers.province_of_rows().alias("_province")
    triples = store.scan("bronze", TABLE).select(source.MONTH, province, LOAD_ID).unique().collect()
    loads: dict[tuple[str, str], set[str]] = {}
    for month, code, load_id in triples.iter_rows():
        if month is not None:
            loads.setdefault((month, code), set()).add(load_id)
    return loads


def delivered_months(lake: Lake | None = None) -> list[str]:
    """The months of receipt bronze holds rows for: the partitions of `MONTHS`. `lake` defaults to the
    configured one (`IOC_LAKE_DIR`)."""
    store = lake or Lake(recovery.configured("lake"))
    if not store.exists("bronze", TABLE):
        return []
    months = store.scan("bronze", TABLE).select(pl.col(source.MONTH).unique().drop_nulls()).collect()
    return sorted(months.get_column(source.MONTH).to_list())


def months_to_refresh(instance: dg.DagsterInstance | None = None, lake: Lake | None = None) -> list[str]:
    """Months whose bronze loads differ from those their silver partition was built from (new versions,
    or a partition never built): what a run command or a sensor should request, whether or not Dagster
    recorded the loads. `instance` is the sensor's argument and is not needed; `lake` defaults to the
    configured one (`IOC_LAKE_DIR`)."""
    store = lake or Lake(recovery.configured("lake"))
    built = built_from(store)
    return sorted({month for (month, code), loads in bronze_loads(store).items() if loads != built.get((month, code))})


PARTITIONED = automation.PartitionedFeed(
    job_name="dossier_months",
    assets=dg.AssetSelection.assets(silver_dossiers),
    partitions=PARTITIONS,
    watched=BRONZE_KEY,
    delivered=delivered_months,
    changed=months_to_refresh,
    sensor_name="dossier_months_changed",
    description="A range of dossier months (silver and quarantine, one single run) and everything downstream "
    "of them: gold KPIs, the scorecard, the warehouse.",
)
