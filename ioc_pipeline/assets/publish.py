"""`publish/warehouse`: the one DuckDB file the IOC and analysts read, rebuilt from the lake.

    silver/*, gold/*, quarantine/*, ops/* (Parquet) ──► data/warehouse/ioc.duckdb (one schema per layer)

Every published table has a `TableDoc` in its domain module's `DOCS` (the domains of
`feeds.DOMAINS`); that list is what this asset waits for, and the comments it writes (Vietnamese /
English) come from the same place. The ops tables written by steps rather than assets (alerts, gate
results, file fates) are published as they stand. The lake holds only what passed the gate, so
the warehouse always has every feed's last good version: a blocked feed never holds back the others.
"""

import dagster as dg

from ioc_pipeline import alerts as alerting
from ioc_pipeline.assets import ops, scorecard
from ioc_pipeline.assets.layers import OWNERS
from ioc_pipeline.checks import outcomes
from ioc_pipeline.feeds import DOMAINS
from ioc_pipeline.metadata import TableDoc
from ioc_pipeline.policies import WAREHOUSE_HOST, WAREHOUSE_POOL
from ioc_pipeline.resources import AlertsResource, LakeResource, WarehouseResource
from ioc_pipeline.sources import fates

DOCS: dict[str, TableDoc] = {
    **{name: doc for domain in DOMAINS for name, doc in domain.module().DOCS.items()},
    **scorecard.DOCS,
    **ops.DOCS,
}
# Written by steps and sensors, not by assets of their own: published, documented, not waited for.
STEP_DOCS: dict[str, TableDoc] = {**alerting.DOCS, **outcomes.DOCS, **fates.DOCS}
ORPHAN_ALERT = "warehouse_orphaned"


@dg.asset(
    key=["publish", "warehouse"],
    deps=[dg.AssetKey(name.split(".")) for name in DOCS],
    group_name="publish",
    kinds={"duckdb"},
    owners=OWNERS,
    pool=WAREHOUSE_POOL,
    op_tags=WAREHOUSE_HOST,
    description="Builds the analysts' DuckDB warehouse from the lake as a new file and swaps it in atomically.",
)
def publish_warehouse(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource, alerts: AlertsResource
) -> dg.MaterializeResult:
    store = lake.lake()
    kept: list[str] = []

    def orphaned(folder: str) -> None:
        """A client had written to (or held in write mode) the published file: say where its work is."""
        kept.append(folder)
        message = (
            f"a client had the warehouse open in write mode or left a WAL: the old file and its WAL, with "
            f"whatever it wrote, are kept in {folder}; the new warehouse is published. Analysts' own tables "
            "belong in a scratch database (`make sql`)."
        )
        context.log.warning(message)
        alert = alerting.Alert(ORPHAN_ALERT, context.job_name, context.run_id, message, subject=folder)
        alerting.raise_alert(store, alert, alerts.webhook_url or None)

    published = warehouse.publish(store, {**DOCS, **STEP_DOCS}, orphaned)
    counts = published.counts
    context.log.info(
        f"published {len(counts)} tables to {warehouse.path} ({len(published.carried)} carried over unchanged)"
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(warehouse.path),
            "tables": dg.MetadataValue.json(counts),
            "dagster/row_count": sum(counts.values()),
            "rebuilt_tables": len(counts) - len(published.carried),
            "carried_over_tables": published.carried,  # their lake files, docs and code unchanged
            "orphaned": kept,
        }
    )
