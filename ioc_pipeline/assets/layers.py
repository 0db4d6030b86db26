"""The two steps every feed repeats, written once: landing → bronze, and the gate into silver.

    landing ──bronze_asset()──► bronze/<table>
    bronze ──(domain transform)──► gate_and_write() ──► silver/<table> + quarantine/<table>

`gate_and_write` publishes silver only when the blocking batch checks pass, so a delivery that
collapsed or is mostly rejected leaves the last good silver (and so gold and the warehouse) as
they were; its quarantine is written either way, so the engineer can see why.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl

from ioc_pipeline import gate
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import table_metadata
from ioc_pipeline.policies import pool_for
from ioc_pipeline.resources import LakeResource, LandingResource
from ioc_pipeline.sources.files import LOAD_ID, SNAPSHOT, SOURCE_FILE, Feed, ingest

OWNERS = ["team:ioc-data"]


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
        return dg.MaterializeResult(
            metadata=table_metadata(
                bronze.tail(5),
                **{
                    "dagster/row_count": bronze.height,
                    "files_loaded": report.loaded,
                    "files_skipped_already_loaded": report.skipped,
                    "rows_loaded": report.rows,
                    "dlt_load_ids": report.load_ids,
                },
            )
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


def gate_and_write(
    context: dg.AssetExecutionContext,
    store: Lake,
    table: str,
    delivered: pl.DataFrame,
    typed: pl.DataFrame,
    rules: list[gate.Rule],
    silver_columns: list[str],
    silver_metadata: dict[str, Any] | None = None,
) -> Iterator[dg.MaterializeResult]:
    """Gate `typed` (one row per `delivered` row, sharing `_row_id`), write silver and quarantine,
    and yield both materializations with the blocking batch check results."""
    silver_key = dg.AssetKey(["silver", table])
    result = gate.split(typed, table, rules)
    checks = gate.batch_checks(silver_key, result, store.row_count("silver", table) or None)
    quarantine = gate.quarantine_rows(delivered, result.rejected)
    store.write(quarantine, "quarantine", table)
    if quarantine.height:
        context.log.warning(
            f"{table}: {quarantine.height} of {result.delivered} rows quarantined:\n"
            + gate.quarantine_summary(quarantine)
        )
    published = gate.passed(checks)
    clean = result.clean.select(silver_columns)
    if published:
        store.write(clean, "silver", table)
    else:
        context.log.error(f"{table}: a blocking batch check failed; the published silver is left as it was")
    yield dg.MaterializeResult(
        asset_key=silver_key,
        metadata=table_metadata(
            clean,
            published=published,
            delivered_rows=result.delivered,
            quarantined_rows=quarantine.height,
            **(silver_metadata or {}),
        ),
        check_results=checks,
    )
    yield dg.MaterializeResult(
        asset_key=dg.AssetKey(["quarantine", table]),
        metadata=table_metadata(
            quarantine.select("source_file", "source_row", "rule", "reason"),
            rows_by_rule=dict(quarantine.group_by("rule").len().iter_rows()) if quarantine.height else {},
        ),
    )


def gated_specs(table: str, group: str, description: str, deps: list[dg.AssetKey]) -> dict[str, Any]:
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
        "check_specs": gate.batch_check_specs(silver_key),
        "pool": pool_for("silver", table),  # silver and quarantine of the table, written together
    }
