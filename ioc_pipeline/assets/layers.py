"""The two steps every feed repeats, written once: landing → bronze, and the gate into silver.

    landing ──bronze_asset()──► bronze/<table>
    bronze ──(domain transform)──► gate_and_write() ──► silver/<table> + quarantine/<table>

`gate_and_write` publishes silver only when the feed's quality policy lets the batch through, so a
delivery that collapsed or is mostly refused leaves the last good silver (and so that feed's gold and
warehouse tables) as they were, while every other feed goes on; its quarantine, its outcome
(ops/gate_results) and the department's feedback workbooks are written either way. The batch checks
are ERROR-severity and non-blocking: red in the UI, never a reason to skip another feed's publish.

A feed never delivered yet (no bronze) is not a failure: its `gated_silver` step succeeds without
writing silver or quarantine (`delivered: false`, checks passed with a description saying so),
and every `derived_asset` downstream succeeds without writing its table. The warehouse then has
no table for that feed and the scorecard no row for its indicators (unknown, not zero), while the
other feeds are published as usual.
"""

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, SupportsFloat, TypeVar

import dagster as dg
import polars as pl

from ioc_pipeline import gate, provinces, versions
from ioc_pipeline.alerts import Alert, raise_alert
from ioc_pipeline.assets import deliveries
from ioc_pipeline.checks import outcomes
from ioc_pipeline.checks.policy import Policy, policy_for
from ioc_pipeline.checks.rules import for_province
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import SHARED_COLUMNS, TableDoc, table_metadata
from ioc_pipeline.policies import pool_for
from ioc_pipeline.resources import AlertsResource, LakeResource, LandingResource
from ioc_pipeline.sources.files import (
    FILE_HASH,
    LOAD_ID,
    SNAPSHOT,
    SOURCE_FILE,
    SOURCE_ROW,
    Feed,
    Reader,
    ingest,
    whole_file,
)

OWNERS = ["team:ioc-data"]
# The lineage columns every silver table of a file feed ends with (`lineage_columns`), documented once.
LINEAGE_DOCS = {
    "snapshot_date": ("Ngày chốt dữ liệu", "snapshot date"),
    "source_file": ("Tệp nguồn", "delivered file"),
    "source_row": ("Dòng trong tệp nguồn", "row in the delivered file"),
}
PROVINCE_COLUMN = "province_code"  # the former province of every silver, quarantine and gold row (provinces.py)
PROVINCE_DOCS = {PROVINCE_COLUMN: SHARED_COLUMNS[PROVINCE_COLUMN]}
# gold rows: one former province's figures, or the merged city's (not "scope": the postal enterprises have one)
SCOPE_COLUMN = "province_scope"
SCOPE_DOCS = {SCOPE_COLUMN: SHARED_COLUMNS[SCOPE_COLUMN]}


# Observable sources are declared with `multi_observable_source_asset` (the one form that takes an AssetSpec, so
# owners and kinds): Dagster marks it beta; its warning at every start says nothing we act on.
warnings.filterwarnings("ignore", message="Function `multi_observable_source_asset` is currently in beta")

# The file feeds with a bronze step, and their groups: each gets a `landing/<table>` observable source
# (versions.py), whose data version makes its bronze stale when a delivery changed.
LANDED: dict[str, tuple[Feed, str]] = {}


def landing_source(feed: Feed, group: str) -> dg.AssetsDefinition:
    """The feed's landing folder as Dagster sees it: observed (a fingerprint of the settled files is its
    data version), never materialized by us."""
    key = versions.landing_key(feed.table)

    @dg.multi_observable_source_asset(
        name=f"landing_{feed.table}",
        specs=[
            dg.AssetSpec(
                key,
                group_name=group,
                owners=OWNERS,
                kinds={"file"},
                description=f"The {feed.table} files departments deliver to {', '.join(feed.folders)}/ (observed: "
                "its data version is a fingerprint of the settled files, so bronze goes stale when a delivery "
                "arrives).",
            )
        ],
    )
    def _landing(landing: LandingResource) -> dg.ObserveResult:
        version = versions.landing_version(feed, landing.landing(), landing.settle_seconds)
        return dg.ObserveResult(asset_key=key, data_version=dg.DataVersion(version))

    return _landing


@dg.multi_observable_source_asset(
    specs=[
        dg.AssetSpec(
            versions.POLICY_KEY,
            group_name="ops",
            owners=OWNERS,
            kinds={"toml"},
            description="The quality policy file (checks/quality_policy.toml or $IOC_QUALITY_POLICY), observed: a "
            "new policy makes every gated silver table stale, so the next run gates again.",
        )
    ],
)
def quality_policy() -> dg.ObserveResult:
    return dg.ObserveResult(asset_key=versions.POLICY_KEY, data_version=dg.DataVersion(versions.policy_version()))


def province_partitions() -> dg.StaticPartitionsDefinition:
    """One partition per configured former province (`IOC_PROVINCES`; unset: the legacy one, 94): the snapshot
    feeds' bronze, silver and quarantine, each province's step reading and writing only its own paths."""
    return dg.StaticPartitionsDefinition(list(provinces.codes()))


def by_province(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """`assets` with the province partitions of the environment now on those partitioned by province: the
    assets are declared when their module is imported, a test (or `build_defs`) may have another
    `IOC_PROVINCES` since."""
    current = province_partitions()

    def now(partitions: dg.PartitionsDefinition | None) -> dg.PartitionsDefinition | None:
        if isinstance(partitions, dg.StaticPartitionsDefinition):
            return current
        if isinstance(partitions, dg.MultiPartitionsDefinition):  # the dossiers' month × province
            dimensions = {d.name: d.partitions_def for d in partitions.partitions_defs}
            if provinces.PROVINCE_DIMENSION in dimensions:
                return dg.MultiPartitionsDefinition({**dimensions, provinces.PROVINCE_DIMENSION: current})
        return partitions

    def stamp(asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
        partitions = now(asset.partitions_def)
        if partitions == asset.partitions_def:
            return asset
        return asset.map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=partitions))

    return [stamp(a) for a in assets]


def bronze_asset(feed: Feed, group: str, description: str, doc: TableDoc | None = None) -> dg.AssetsDefinition:
    """The dlt ingestion of one file feed into bronze (files loaded once, by content hash), a partition per
    former province. A refused file does not fail the step: it is recorded (ops/refused_files, an alert) and
    the `delivered_files_readable` check fails while it is the feed's newest delivery (see
    assets/deliveries.py). A province's load that fails outright (its dlt state, a bug) fails its partition
    only, with an alert."""
    key = dg.AssetKey(["bronze", feed.table])
    LANDED[feed.table] = (feed, group)

    @dg.asset(
        key=key,
        deps=[versions.landing_key(feed.table)],
        group_name=group,
        kinds={"dlt", "parquet"},
        owners=OWNERS,
        description=description,
        pool=pool_for("bronze", feed.table),  # the feed's bronze files and its dlt state
        check_specs=deliveries.check_specs(key),
        partitions_def=province_partitions(),  # each former province's folder, loaded by a step of its own
    )
    def _bronze(
        context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource, alerts: AlertsResource
    ) -> dg.MaterializeResult:
        store = lake.lake()
        where = landing.landing()
        table = ("bronze", feed.table)
        code = context.partition_key  # the former province whose folder this partition loads
        delivered_feed, partition = next((f, p) for c, f, p in provinces.deliveries(feed, where) if c == code)
        try:
            report = ingest(delivered_feed, where, store, lake.dlt_dir, landing.settle_seconds, partition)
        except Exception as error:
            if not provinces.partitioned():
                raise
            raise province_failure(context, store, feed, code, error, alerts.webhook_url or None) from error
        files, checks = deliveries.report_deliveries(
            context, store, feed, report, alerts.webhook_url or None, provinces.lake_partition(code)
        )
        mine = store.scan("bronze", feed.table).filter(province_of_rows() == code) if store.exists(*table) else None
        rows = mine.select(pl.len()).collect().item() if mine is not None else 0
        if not rows:
            context.log.warning(not_delivered_message(feed))
        preview = mine.tail(5).collect() if mine is not None and rows else pl.DataFrame()
        return dg.MaterializeResult(
            metadata=table_metadata(
                preview,
                doc=doc,
                **{
                    "dagster/row_count": rows,
                    "delivered": rows > 0,
                    "rows_loaded": report.rows,
                    "dlt_load_ids": report.load_ids,
                    **files,
                },
            ),
            check_results=checks,
        )

    return _bronze


def province_load_failed(
    context: dg.AssetExecutionContext, store: Lake, feed: Feed, code: str, error: Exception, webhook: str | None
) -> str:
    """A former province's load that failed outright (its dlt state, a bug): logged, alerted once per run and
    province; its bronze is left as it was and the other provinces' loads go on (provinces.py)."""
    message = f"{feed.table}: the load of former province {code} failed, the other provinces go on: {error!r}"
    context.log.error(message)
    alert = Alert("province_load_failed", context.job_name, context.run_id, message, subject=f"{feed.table}/{code}")
    raise_alert(store, alert, webhook)
    return repr(error)


def province_failure(
    context: dg.AssetExecutionContext, store: Lake, feed: Feed, code: str, error: Exception, webhook: str | None
) -> dg.Failure:
    """The failure that fails a former province's partition only (logged and alerted by `province_load_failed`):
    the other provinces' runs go on."""
    why = province_load_failed(context, store, feed, code, error, webhook)
    return dg.Failure(
        description=f"{feed.table}: the load of former province {code} failed: {why}",
        metadata={"provinces_load_failed": {code: why}},
    )


def latest_snapshot(bronze: pl.DataFrame, by: list[str] | None = None) -> pl.DataFrame:
    """The rows of the newest snapshot (per `by` group, e.g. per carrier): of the files with the
    newest snapshot date, the one loaded last wins, since a re-delivery supersedes; of a file delivered
    again under the same name with new content, only its newest load counts (never both merged)."""
    keys = by or []
    files = (
        bronze.group_by([*keys, SOURCE_FILE])
        .agg(pl.col(SNAPSHOT).first(), pl.col(LOAD_ID).max())
        .sort([SNAPSHOT, LOAD_ID, SOURCE_FILE])
    )
    chosen = files.group_by(keys, maintain_order=True).last() if keys else files.tail(1)
    return bronze.join(chosen.select([*keys, SOURCE_FILE, LOAD_ID]), on=[*keys, SOURCE_FILE, LOAD_ID], how="semi")


@dataclass(frozen=True)
class GatedTable:
    """How one feed's batch becomes silver: read from bronze, typed, gated by the feed's rules and
    policy, finished. The one code path of the pipeline and of `cli validate` (a department's check
    before sending): no rule, reader or transform exists twice.

    `typed(delivered, lake)` may read reference tables of the lake (the enterprise register for
    service points); `lake` is None when a file is validated offline."""

    table: str
    feed: Feed
    rules: list[gate.Rule]
    silver_columns: list[str]
    typed: Callable[[pl.DataFrame, Lake | None], pl.DataFrame]
    doc: TableDoc | None = None
    batch: Callable[[pl.DataFrame], pl.DataFrame] = latest_snapshot  # bronze → the batch in force
    finish: Callable[[pl.DataFrame], pl.DataFrame] | None = None  # over clean rows only (e.g. BTS sites)
    describe: Callable[[pl.DataFrame], dict[str, Any]] | None = None  # extra silver metadata of a batch
    # how `cli validate` reads one file: the reader the feed's bronze step uses (default `files.whole_file`)
    reader: Reader = whole_file

    @property
    def silver_key(self) -> dg.AssetKey:
        return dg.AssetKey(["silver", self.table])

    @property
    def quarantine_key(self) -> dg.AssetKey:
        return dg.AssetKey(["quarantine", self.table])

    def policy(self) -> Policy:
        return policy_for(self.table)

    def gate(self, delivered: pl.DataFrame, lake: Lake | None) -> gate.GateResult:
        rules = for_province(self.rules, provinces.current())  # the former province being gated (validate too)
        return gate.split(self.typed(delivered, lake), self.table, rules, self.policy().warn_only)


@dataclass
class Gated:
    """One batch (a snapshot, or a month partition) through the gate."""

    clean: pl.DataFrame
    quarantine: pl.DataFrame
    checks: list[dg.AssetCheckResult]
    decision: gate.Decision
    outcome: outcomes.Outcome

    @property
    def published(self) -> bool:
        return self.decision.published

    @property
    def delivered(self) -> int:
        return self.decision.delivered


def gate_batch(
    context: dg.AssetExecutionContext,
    store: Lake,
    spec: GatedTable,
    delivered: pl.DataFrame,
    partition: str | None = None,
    batch: str | None = None,
    webhook: str | None = None,
    province: str | None = None,
) -> Gated:
    """Gate one batch of `spec` (rows of `delivered` numbered by `_row_id`) and write silver (only when
    the policy publishes it) and quarantine (always), the whole table or one partition of it. The
    outcome (numbers, decision, feedback workbooks) is recorded in ops/gate_results; a blocked batch
    raises one alert. Units resolve, and coordinates are judged, against former province `province`
    (default: the first configured); silver and quarantine rows carry it (`province_code`)."""
    code = province or provinces.codes()[0]
    where = f"{spec.table} {partition}" if partition else spec.table
    with provinces.gating(code):
        result = spec.gate(delivered, store)
    previous = store.row_count("silver", spec.table, partition) or None
    decision = gate.decide(spec.table, result, previous, spec.policy())
    quarantine = gate.quarantine_rows(delivered, result.rejected).with_columns(pl.lit(code).alias(PROVINCE_COLUMN))
    store.write(quarantine, "quarantine", spec.table, partition)
    if quarantine.height:
        context.log.warning(
            f"{where}: {quarantine.height} of {result.delivered} rows quarantined:\n"
            + gate.quarantine_summary(quarantine)
        )
    clean = (spec.finish(result.clean) if spec.finish else result.clean).select(
        pl.lit(code).alias(PROVINCE_COLUMN), *spec.silver_columns
    )
    if decision.published:
        store.write(clean, "silver", spec.table, partition)
    else:
        context.log.error(f"{where}: blocked, the published silver is left as it was: {decision.reason()[1]}")
    label = batch or _batch_label(delivered)
    outcome = outcomes.record(
        store,
        spec.table,
        label,
        delivered,
        quarantine,
        result,
        decision,
        for_province(spec.rules, code),  # as `spec.gate` judged them inside `gating(code)`
        context.run_id,
        per_file=not partition or partition == provinces.lake_partition(code),
        province=provinces.lake_partition(code),
    )
    checks = gate.batch_checks(spec.silver_key, result, decision, outcome.links())
    if not decision.published:
        outcomes.alert_blocked(store, outcome, context.run_id, context.job_name, webhook)
    return Gated(clean, quarantine, checks, decision, outcome)


def _batch_label(delivered: pl.DataFrame) -> str:
    """A snapshot batch is named by its newest snapshot date (several carriers' files may differ)."""
    return str(delivered.get_column(SNAPSHOT).max()) if SNAPSHOT in delivered.columns else "batch"


def gate_and_write(
    context: dg.AssetExecutionContext,
    store: Lake,
    spec: GatedTable,
    delivered: pl.DataFrame,
    webhook: str | None = None,
    province: str | None = None,
) -> Iterator[dg.MaterializeResult]:
    """Gate one snapshot of former province `province` (default: the first configured) into its silver and
    quarantine partition, and yield both materializations with the batch check results (the decision, its
    numbers and the feedback workbooks in the metadata)."""
    code = province or provinces.codes()[0]
    partition = provinces.lake_partition(code)
    label = f"{_batch_label(delivered)}_{code}" if partition else None
    gated = gate_batch(context, store, spec, delivered, partition, label, webhook, code)
    yield dg.MaterializeResult(
        asset_key=spec.silver_key,
        metadata=table_metadata(
            gated.clean,
            doc=spec.doc,
            delivered=True,
            published=gated.published,
            delivered_rows=gated.delivered,
            quarantined_rows=gated.quarantine.height,
            **gated.outcome.metadata(),
            **(spec.describe(delivered) if spec.describe else {}),
        ),
        check_results=gated.checks,
    )
    yield dg.MaterializeResult(asset_key=spec.quarantine_key, metadata=quarantine_metadata(gated.quarantine))


def province_of_rows() -> pl.Expr:
    """The former province of each bronze row: the landing folder its file came from (provinces.of_path; a
    row of the dossier gateway, or of the legacy layout, is the first listed province's)."""
    head = pl.col(SOURCE_FILE).str.split("/").list.first()
    return pl.when(head.is_in(list(provinces.codes()))).then(head).otherwise(pl.lit(provinces.codes()[0]))


def quarantine_metadata(quarantine: pl.DataFrame) -> dict[str, Any]:
    shown = [c for c in ("source_file", "source_row", "rule", "reason", "reason_vi") if c in quarantine.columns]
    return table_metadata(
        quarantine.select(shown),
        doc=QUARANTINE_DOC,
        rows_by_rule=dict(quarantine.group_by("rule").len().iter_rows()) if quarantine.height else {},
    )


def gated_specs(spec: GatedTable, group: str, description: str, deps: list[dg.AssetKey]) -> dict[str, Any]:
    """The `multi_asset` arguments of a gated silver table and its quarantine."""
    return {
        "name": f"silver_{spec.table}",
        "specs": [
            dg.AssetSpec(
                spec.silver_key,
                deps=[*deps, versions.POLICY_KEY],
                group_name=group,
                owners=OWNERS,
                description=description,
                kinds={"great_expectations", "polars", "parquet"},
            ),
            dg.AssetSpec(
                spec.quarantine_key,
                deps=[*deps, versions.POLICY_KEY],
                group_name=group,
                owners=OWNERS,
                description=f"Rows of the {spec.table} delivery refused by the gate, whole, with the rules they broke "
                "and the reason in Vietnamese and English.",
                kinds={"great_expectations", "parquet"},
            ),
        ],
        "check_specs": gate.batch_check_specs(spec.silver_key),
        "pool": pool_for("silver", spec.table),  # silver and quarantine of the table, written together
    }


QUARANTINE_DOC = TableDoc(
    "Dòng bị loại khi kiểm tra chất lượng, nguyên văn như đã gửi, kèm lý do",
    "Rows refused by the quality gate, whole as delivered, with the rules they broke",
    {
        "source_file": ("Tệp nguồn", "delivered file"),
        "source_row": ("Dòng trong tệp nguồn", "row in the delivered file"),
        "rule": ("Quy tắc đầu tiên bị vi phạm", "first rule broken"),
        "rules": ("Mọi quy tắc bị vi phạm", "every rule broken"),
        "reason": ("Lý do (tiếng Anh)", "reason, in English"),
        "reason_vi": ("Lý do (tiếng Việt)", "reason, in Vietnamese"),
    },
)


# The columns bronze adds to a delivery (and quarantine keeps), documented once.
DELIVERY_DOCS = {
    SNAPSHOT: ("Ngày chốt ghi trong tên tệp", "snapshot date, from the file name"),
    FILE_HASH: ("Mã băm SHA-256 của tệp", "SHA-256 of the delivered file"),
    LOAD_ID: ("Mã lần nạp dlt", "dlt load id"),
    "_file_carrier": ("Nhà mạng, theo tên tệp", "carrier, from the file name"),
    "_updated_at": ("NgayCapNhat đã đọc", "NgayCapNhat parsed: the version order"),
    "_month": ("Tháng tiếp nhận (YYYY-MM)", "month of receipt (YYYY-MM): the silver partition"),
    "_parse_error": ("Lỗi khi đọc dòng", "why the line could not be read"),
    "versions_delivered": ("Số phiên bản đã nhận", "versions of the record delivered so far"),
    "month": ("Tháng (phân vùng)", "month partition"),
}
EXTRA_COLUMN = ("Cột ngoài hợp đồng, nguyên văn như đã gửi", "a column outside the contract, as delivered")


def delivered_doc(feed: Feed, silver: TableDoc | None, vi: str, en: str) -> TableDoc:
    """The doc of a table that holds the feed's rows as delivered (bronze, quarantine): each contract column
    named by its delivered header, described like its silver column, as text; a header outside the
    contract is documented as such."""
    headers: dict[str, str] = {}
    for header, column in feed.columns.items():
        headers.setdefault(column, header)
    columns = {}
    for column, header in headers.items():
        vi_text, en_text = silver.columns.get(column, (header, column)) if silver else (header, column)
        columns[column] = (f"{vi_text} (cột {header}, nguyên văn)", f"{en_text} (header {header}, as delivered)")
    return TableDoc(vi, en, {**columns, **DELIVERY_DOCS, **LINEAGE_DOCS, **QUARANTINE_DOC.columns}, EXTRA_COLUMN)


def lineage_columns() -> list[pl.Expr]:
    """Where each silver row comes from: the snapshot date, the delivered file and its row."""
    return [
        pl.col(SNAPSHOT).str.to_date().alias("snapshot_date"),
        pl.col(SOURCE_FILE).alias("source_file"),
        pl.col(SOURCE_ROW).alias("source_row"),
    ]


def feed_columns(frame: pl.DataFrame, feed: Feed) -> pl.DataFrame:
    """Bronze holds only the columns some delivered file had: add the feed's other columns as nulls."""
    missing = [c for c in dict.fromkeys(feed.columns.values()) if c not in frame.columns]
    return frame.with_columns([pl.lit(None, pl.String).alias(c) for c in missing])


def not_delivered_message(feed: Feed) -> str:
    return (
        f"feed {feed.table} has not been delivered yet (no file matching {', '.join(feed.patterns)} "
        "in the landing zone): its tables are left unwritten"
    )


def gated_silver(
    spec: GatedTable, group: str, description: str, deps: list[dg.AssetKey] | None = None
) -> dg.AssetsDefinition:
    """The gated silver table (and its quarantine) of a file feed: the batch in force of its bronze, gated, a
    partition per former province (its own silver and quarantine files: a province whose batch is blocked
    keeps its last good silver, the others publish theirs).

    Before the province has delivered rows to bronze, the step succeeds without writing anything (see the
    module docstring), so one missing feed never holds back the publication of the others. `deps`
    defaults to the feed's bronze table."""
    feed = spec.feed

    @dg.multi_asset(
        **gated_specs(spec, group, description, deps or [dg.AssetKey(["bronze", feed.table])]),
        partitions_def=province_partitions(),  # each former province's batch gated by a step of its own
    )
    def _silver(
        context: dg.AssetExecutionContext, lake: LakeResource, alerts: AlertsResource
    ) -> Iterator[dg.MaterializeResult]:
        store = lake.lake()
        code = context.partition_key
        if store.exists("bronze", feed.table):
            rows = store.scan("bronze", feed.table).filter(province_of_rows() == code).collect()
            rows = own_columns(store, rows, feed.table, code)
            if not rows.is_empty():
                delivered = spec.batch(rows).with_row_index(gate.ROW_ID)
                yield from gate_and_write(context, store, spec, delivered, alerts.webhook_url or None, code)
                return
        if provinces.several():
            context.log.warning(f"{spec.table}: former province {code} has delivered nothing yet")
        yield from not_delivered(context, spec)

    return _silver


def own_columns(store: Lake, rows: pl.DataFrame, table: str, code: str) -> pl.DataFrame:
    """A former province's bronze rows with the columns of its own files only, in their order. Bronze is scanned
    as the union of every province's files, so a column only another province delivered (a `STT` of its workbook,
    an optional column its files have and these lack) reads as nulls here, and where the union puts a column
    depends on which files exist: with the province's own columns, its quarantine keeps what it delivered whether
    or not another province loaded first (their steps run side by side on a cluster). One province: as read."""
    if not provinces.several():
        return rows
    prefix = f"{store.root}/bronze/{table}/"
    first = provinces.codes()[0]
    names: dict[str, None] = {}
    for file in store.files("bronze", table):
        folder = file.removeprefix(prefix).rpartition("/")[0].split("/", 1)[0]
        if folder == code or (code == first and folder not in provinces.codes()):  # the first's: the legacy files too
            names.update(dict.fromkeys(pl.read_parquet_schema(f"{store.protocol}{file}")))
    return rows.select([name for name in names if name in rows.columns])


def not_delivered(context: dg.AssetExecutionContext, spec: GatedTable) -> Iterator[dg.MaterializeResult]:
    """The silver step of a feed with no row delivered: succeeds, writes nothing, says so."""
    feed = spec.feed
    context.log.warning(f"{spec.table}: {not_delivered_message(feed)}")
    nothing = {"delivered": False, "dagster/row_count": 0}
    why = f"{feed.table} has not been delivered yet: no row to check, none rejected"
    checks = gate.empty_batch_checks(spec.silver_key, {"delivered": False}, why)
    yield dg.MaterializeResult(
        asset_key=spec.silver_key,
        metadata={**nothing, "published": False, "delivered_rows": 0, "quarantined_rows": 0},
        check_results=checks,
    )
    yield dg.MaterializeResult(asset_key=spec.quarantine_key, metadata=nothing)


SNAPSHOT_KEY = "as_of_date"  # what a gold table of a snapshot feed is dated by


def latest(frame: pl.DataFrame, by: list[str] | None = None) -> pl.DataFrame:
    """The rows of the newest snapshot (per `by`, e.g. per indicator) of a table that keeps every snapshot."""
    newest = pl.col(SNAPSHOT_KEY).max()
    return frame.filter(pl.col(SNAPSHOT_KEY) == (newest.over(by) if by else newest))


def keep_history(previous: pl.DataFrame | None, current: pl.DataFrame) -> pl.DataFrame:
    """Every earlier snapshot of a table and the current one; a snapshot built again replaces its own rows
    (of its own former province and scope: a province whose batch was blocked keeps its older date)."""
    if previous is None or SNAPSHOT_KEY not in previous.columns:
        return current
    legacy = {PROVINCE_COLUMN: provinces.codes()[0], SCOPE_COLUMN: provinces.SCOPE_FORMER}  # rows from before
    previous = previous.with_columns(
        (pl.col(c).fill_null(v) if c in previous.columns else pl.lit(v)).alias(c)
        for c, v in legacy.items()
        if c in current.columns
    )
    keys = [c for c in (PROVINCE_COLUMN, SCOPE_COLUMN) if c in current.columns]
    built = current.select(SNAPSHOT_KEY, *keys).unique()
    kept = previous.join(built, on=[SNAPSHOT_KEY, *keys], how="anti", nulls_equal=True)
    return pl.concat([kept, current], how="diagonal_relaxed").sort(SNAPSHOT_KEY, maintain_order=True)


# Tables of units, not of deliveries: their province_code is a unit's own, never split by scope.
REFERENCE_TABLES = frozenset({"admin_units", "admin_unit_crosswalk"})


Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def rows_of_scope(frame: Frame, scope: provinces.Scope) -> Frame:
    """The rows of a table (with `province_code`) that belong to `scope`: a former province's own rows, or
    every former province's (the merged city); of a gold table (with `province_scope`), its rows of that very
    scope. Rows written before provinces were known are the first listed province's."""
    frame = frame.with_columns(pl.col(PROVINCE_COLUMN).fill_null(provinces.codes()[0]))
    if SCOPE_COLUMN in frame.collect_schema().names():
        return frame.filter((pl.col(SCOPE_COLUMN) == scope.scope) & (pl.col(PROVINCE_COLUMN) == scope.province_code))
    return frame.filter(pl.col(PROVINCE_COLUMN).is_in(list(scope.members)))


def _scoped_input(frame: pl.DataFrame, table: str, scope: provinces.Scope) -> pl.DataFrame:
    """The rows of one input that a scope's table is built from, without the province columns."""
    if table in REFERENCE_TABLES or PROVINCE_COLUMN not in frame.columns:
        return frame
    return rows_of_scope(frame, scope).drop(PROVINCE_COLUMN, SCOPE_COLUMN, strict=False)


def build_by_scope(
    layer: str, reads: list[tuple[str, str]], inputs: list[pl.DataFrame], build: Callable[..., pl.DataFrame]
) -> pl.DataFrame:
    """`build` once per scope (provinces.scopes): a silver table per former province (its rows carry
    `province_code`), a gold table per former province and, with several, for the merged city (rows carry
    `province_code` and `province_scope`). A scope with no row of its own (a province not delivered yet) is left out."""
    wanted = [s for s in provinces.scopes() if layer == "gold" or s.scope == provinces.SCOPE_FORMER]
    parts = []
    for scope in wanted:
        scoped = [_scoped_input(frame, table, scope) for frame, (_, table) in zip(inputs, reads, strict=True)]
        split = [s for s, frame in zip(scoped, inputs, strict=True) if s is not frame]
        if split and all(s.is_empty() for s in split):
            continue
        with provinces.gating(*scope.members):
            built = build(*scoped)
        extra = [pl.lit(scope.province_code).alias(PROVINCE_COLUMN)]
        if layer == "gold":
            extra.append(pl.lit(scope.scope).alias(SCOPE_COLUMN))
        parts.append(built.select(*extra, pl.all()))
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


def derived_asset(
    key: tuple[str, str],
    reads: list[tuple[str, str]],
    build: Callable[..., pl.DataFrame],
    group: str,
    description: str,
    doc: TableDoc | None,
    preview_rows: int = 10,
    report: Callable[..., dict[str, Any]] | None = None,
    history: bool = False,
) -> dg.AssetsDefinition:
    """A table computed from other lake tables (`key` = (layer, table), `reads` likewise): reads its
    inputs, `build(*inputs)`, writes, and reports `table_metadata` plus `report(table, *inputs)`.
    With `history`, the table keeps every snapshot it was built for (by `as_of_date`; `latest` reads the
    newest): the gold tables of snapshot feeds, so trends can be asked.

    When an input was never written (its feed has not been delivered yet), the step succeeds
    without writing, with `delivered: false`: gold of an undelivered feed is absent, not zeros."""
    layer, table = key

    @dg.asset(
        key=[layer, table],
        pool=pool_for(layer, table),
        deps=[dg.AssetKey([*read]) for read in reads],
        group_name=group,
        kinds={"polars", "parquet"},
        owners=OWNERS,
        description=description,
    )
    def _derived(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        store = lake.lake()
        missing = [f"{where}/{name}" for where, name in reads if not store.exists(where, name)]
        if missing:
            context.log.warning(
                f"{layer}/{table}: {', '.join(missing)} not written yet (its feed has not been delivered): "
                "left unwritten"
            )
            return dg.MaterializeResult(
                metadata={"delivered": False, "dagster/row_count": 0, "missing_inputs": missing}
            )
        inputs = [store.read(*read) for read in reads]
        built = build_by_scope(layer, reads, inputs, build)
        extra = report(built, *inputs) if report else {}
        if history:
            kept = keep_history(store.read(layer, table) if store.exists(layer, table) else None, built)
            store.write(kept, layer, table)
            extra["snapshots"] = [str(d) for d in kept.get_column(SNAPSHOT_KEY).unique().sort()]
            extra["rows_all_snapshots"] = kept.height
        else:
            store.write(built, layer, table)
        return dg.MaterializeResult(metadata=table_metadata(built, preview_rows=preview_rows, doc=doc, **extra))

    return _derived


def indicator(
    code: str, name: str, value: SupportsFloat | None, as_of: object, source: str, unit: str = "count"
) -> dict[str, Any]:
    """One scorecard row (`gold/ioc_scorecard`'s schema), as each domain's `indicators()` returns them
    (`value` None: not computable, e.g. a rate over no dossier)."""
    return {
        "indicator_code": code,
        "indicator_name_vi": name,
        "value": float(value) if value is not None else None,
        "unit": unit,
        "as_of_date": as_of,
        "source_asset": source,
    }
