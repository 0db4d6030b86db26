"""The two steps every feed repeats, written once: landing → bronze, and the gate into silver.

    landing ──bronze_asset()──► bronze/<table>
    bronze ──(domain transform)──► gate_and_write() ──► silver/<table> + quarantine/<table>

`gate_and_write` publishes silver only when the blocking batch checks pass, so a delivery that
collapsed or is mostly rejected leaves the last good silver (and so gold and the warehouse) as
they were; its quarantine is written either way, so the engineer can see why.

A feed never delivered yet (no bronze) is not a failure: its `gated_silver` step succeeds without
writing silver or quarantine (`delivered: false`, checks passed with a description saying so),
and every `derived_asset` downstream succeeds without writing its table. The warehouse then has
no table for that feed and the scorecard no row for its indicators (unknown, not zero), while the
other feeds are published as usual.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, SupportsFloat

import dagster as dg
import polars as pl

from ioc_pipeline import gate
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc, table_metadata
from ioc_pipeline.policies import pool_for
from ioc_pipeline.resources import LakeResource, LandingResource
from ioc_pipeline.sources.files import LOAD_ID, SNAPSHOT, SOURCE_FILE, SOURCE_ROW, Feed, ingest

OWNERS = ["team:ioc-data"]
# The lineage columns every silver table of a file feed ends with (`lineage_columns`), documented once.
LINEAGE_DOCS = {
    "snapshot_date": ("Ngày chốt dữ liệu", "snapshot date"),
    "source_file": ("Tệp nguồn", "delivered file"),
    "source_row": ("Dòng trong tệp nguồn", "row in the delivered file"),
}


def bronze_asset(feed: Feed, group: str, description: str) -> dg.AssetsDefinition:
    """The dlt ingestion of one file feed into bronze (files loaded once, by content hash)."""

    @dg.asset(
        key=["bronze", feed.table],
        group_name=group,
        kinds={"dlt", "parquet"},
        owners=OWNERS,
        description=description,
        pool=pool_for("bronze", feed.table),  # the feed's bronze files and its dlt state
    )
    def _bronze(
        context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource
    ) -> dg.MaterializeResult:
        store = lake.lake()
        report = ingest(feed, landing.landing(), store, lake.dlt_dir)
        for error in report.errors:
            context.log.error(f"delivery refused: {error}")
        if report.errors:
            raise dg.Failure(
                description="; ".join(str(e) for e in report.errors),
                metadata={"refused_files": [e.path for e in report.errors], "loaded_files": report.loaded},
            )
        bronze = store.read("bronze", feed.table) if store.exists("bronze", feed.table) else pl.DataFrame()
        if bronze.is_empty():
            context.log.warning(not_delivered_message(feed))
        return dg.MaterializeResult(
            metadata=table_metadata(bronze.tail(5))
            | {
                "dagster/row_count": bronze.height,
                "delivered": not bronze.is_empty(),
                "files_loaded": report.loaded,
                "files_skipped_already_loaded": report.skipped,
                "rows_loaded": report.rows,
                "dlt_load_ids": report.load_ids,
            }
        )

    return _bronze


def latest_snapshot(bronze: pl.DataFrame, by: list[str] | None = None) -> pl.DataFrame:
    """The rows of the newest snapshot (per `by` group, e.g. per carrier): of the files with the
    newest snapshot date, the one loaded last wins, since a re-delivery supersedes."""
    keys = by or []
    files = (
        bronze.group_by([*keys, SOURCE_FILE])
        .agg(pl.col(SNAPSHOT).first(), pl.col(LOAD_ID).max())
        .sort([SNAPSHOT, LOAD_ID, SOURCE_FILE])
    )
    chosen = files.group_by(keys, maintain_order=True).last() if keys else files.tail(1)
    return bronze.join(chosen.select([*keys, SOURCE_FILE]), on=[*keys, SOURCE_FILE], how="semi")


@dataclass
class Gated:
    """One batch (a snapshot, or a month partition) through the gate."""

    clean: pl.DataFrame
    quarantine: pl.DataFrame
    checks: list[dg.AssetCheckResult]
    published: bool
    delivered: int


def gate_batch(
    context: dg.AssetExecutionContext,
    store: Lake,
    table: str,
    delivered: pl.DataFrame,
    typed: pl.DataFrame,
    rules: list[gate.Rule],
    silver_columns: list[str],
    partition: str | None = None,
    finish: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    max_reject_share: float = gate.MAX_REJECT_SHARE,
) -> Gated:
    """Gate `typed` (one row per `delivered` row, sharing `_row_id`) and write silver (only when the
    blocking batch checks pass) and quarantine (always), the whole table or one partition of it."""
    silver_key = dg.AssetKey(["silver", table])
    where = f"{table} {partition}" if partition else table
    result = gate.split(typed, table, rules)
    checks = gate.batch_checks(
        silver_key, result, store.row_count("silver", table, partition) or None, max_reject_share
    )
    quarantine = gate.quarantine_rows(delivered, result.rejected)
    store.write(quarantine, "quarantine", table, partition)
    if quarantine.height:
        context.log.warning(
            f"{where}: {quarantine.height} of {result.delivered} rows quarantined:\n"
            + gate.quarantine_summary(quarantine)
        )
    published = gate.passed(checks)
    clean = (finish(result.clean) if finish else result.clean).select(silver_columns)
    if published:
        store.write(clean, "silver", table, partition)
    else:
        context.log.error(f"{where}: a blocking batch check failed; the published silver is left as it was")
    return Gated(clean, quarantine, checks, published, result.delivered)


def gate_and_write(
    context: dg.AssetExecutionContext,
    store: Lake,
    table: str,
    delivered: pl.DataFrame,
    typed: pl.DataFrame,
    rules: list[gate.Rule],
    silver_columns: list[str],
    silver_metadata: dict[str, Any] | None = None,
    finish: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    max_reject_share: float = gate.MAX_REJECT_SHARE,
) -> Iterator[dg.MaterializeResult]:
    """Gate one snapshot, write silver and quarantine, and yield both materializations with the
    blocking batch check results.

    `finish` is a last step over the clean rows only (e.g. linking BTS stations into sites, which
    must never see a refused row); `max_reject_share` overrides the gate's default for a table
    whose deliveries are so small that each row is several percent of them."""
    gated = gate_batch(
        context, store, table, delivered, typed, rules, silver_columns, finish=finish, max_reject_share=max_reject_share
    )
    yield dg.MaterializeResult(
        asset_key=dg.AssetKey(["silver", table]),
        metadata=table_metadata(
            gated.clean,
            delivered=True,
            published=gated.published,
            delivered_rows=gated.delivered,
            quarantined_rows=gated.quarantine.height,
            **(silver_metadata or {}),
        ),
        check_results=gated.checks,
    )
    yield dg.MaterializeResult(
        asset_key=dg.AssetKey(["quarantine", table]), metadata=quarantine_metadata(gated.quarantine)
    )


def quarantine_metadata(quarantine: pl.DataFrame) -> dict[str, Any]:
    return table_metadata(
        quarantine.select("source_file", "source_row", "rule", "reason"),
        rows_by_rule=dict(quarantine.group_by("rule").len().iter_rows()) if quarantine.height else {},
    )


def gated_specs(
    table: str,
    group: str,
    description: str,
    deps: list[dg.AssetKey],
    max_reject_share: float = gate.MAX_REJECT_SHARE,
) -> dict[str, Any]:
    """The `multi_asset` arguments of a gated silver table and its quarantine."""
    silver_key = dg.AssetKey(["silver", table])
    return {
        "name": f"silver_{table}",
        "specs": [
            dg.AssetSpec(
                silver_key,
                deps=deps,
                group_name=group,
                owners=OWNERS,
                description=description,
                kinds={"great_expectations", "polars", "parquet"},
            ),
            dg.AssetSpec(
                ["quarantine", table],
                deps=deps,
                group_name=group,
                owners=OWNERS,
                description=f"Rows of the {table} delivery refused by the gate, whole, with the rules they broke.",
                kinds={"great_expectations", "parquet"},
            ),
        ],
        "check_specs": gate.batch_check_specs(silver_key, max_reject_share),
        "pool": pool_for("silver", table),  # silver and quarantine of the table, written together
    }


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


GatedBody = Callable[[dg.AssetExecutionContext, Lake], Iterator[dg.MaterializeResult]]


def gated_silver(
    feed: Feed,
    table: str,
    group: str,
    description: str,
    deps: list[dg.AssetKey] | None = None,
    max_reject_share: float = gate.MAX_REJECT_SHARE,
) -> Callable[[GatedBody], dg.AssetsDefinition]:
    """Decorator: the gated silver table (and its quarantine) of a file feed, from `body(context, lake)`.

    The body runs only once the feed has delivered rows to bronze; before that, the step succeeds
    without writing anything (see the module docstring), so one missing feed never holds back the
    publication of the others. `deps` defaults to the feed's bronze table."""
    silver_key = dg.AssetKey(["silver", table])

    def decorate(body: GatedBody) -> dg.AssetsDefinition:
        @dg.multi_asset(
            **gated_specs(table, group, description, deps or [dg.AssetKey(["bronze", feed.table])], max_reject_share)
        )
        def _silver(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[dg.MaterializeResult]:
            store = lake.lake()
            if store.exists("bronze", feed.table):
                yield from body(context, store)
                return
            context.log.warning(f"{table}: {not_delivered_message(feed)}")
            nothing = {"delivered": False, "dagster/row_count": 0}
            why = f"{feed.table} has not been delivered yet: no row to check, none rejected"
            checks = gate.empty_batch_checks(silver_key, {"delivered": False}, why)
            yield dg.MaterializeResult(
                asset_key=silver_key,
                metadata={**nothing, "published": False, "delivered_rows": 0, "quarantined_rows": 0},
                check_results=checks,
            )
            yield dg.MaterializeResult(asset_key=dg.AssetKey(["quarantine", table]), metadata=nothing)

        return _silver

    return decorate


def derived_asset(
    key: tuple[str, str],
    reads: list[tuple[str, str]],
    build: Callable[..., pl.DataFrame],
    group: str,
    description: str,
    doc: TableDoc | None,
    preview_rows: int = 10,
    report: Callable[..., dict[str, Any]] | None = None,
) -> dg.AssetsDefinition:
    """A table computed from other lake tables (`key` = (layer, table), `reads` likewise): reads its
    inputs, `build(*inputs)`, writes, and reports `table_metadata` plus `report(table, *inputs)`.

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
        built = build(*inputs)
        store.write(built, layer, table)
        extra = report(built, *inputs) if report else {}
        return dg.MaterializeResult(metadata=table_metadata(built, preview_rows=preview_rows, doc=doc, **extra))

    return _derived


def indicator(
    code: str, name: str, value: SupportsFloat, as_of: object, source: str, unit: str = "count"
) -> dict[str, Any]:
    """One scorecard row (`gold/ioc_scorecard`'s schema), as each domain's `indicators()` returns them."""
    return {
        "indicator_code": code,
        "indicator_name_vi": name,
        "value": float(value),
        "unit": unit,
        "as_of_date": as_of,
        "source_asset": source,
    }
