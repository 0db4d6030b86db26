"""`publish/warehouse`: the one DuckDB file the IOC and analysts read, rebuilt from the lake.

    silver/*, gold/*, quarantine/*, ops/* (Parquet) ──► data/warehouse/ioc.duckdb (one schema per layer)

Every published table has a `TableDoc` in its domain module's `DOCS`; that list is what this
asset waits for, and the comments it writes (Vietnamese / English) come from the same place.
`ops.alerts` (written by the failure sensor, not by an asset) is published as it stands.
"""

import dagster as dg

from ioc_pipeline import alerts
from ioc_pipeline.assets import postal, procedures, public_service, reference, scorecard, telecom
from ioc_pipeline.assets.layers import OWNERS
from ioc_pipeline.metadata import TableDoc
from ioc_pipeline.policies import WAREHOUSE_POOL
from ioc_pipeline.resources import LakeResource, WarehouseResource

DOCS: dict[str, TableDoc] = {
    **reference.DOCS,
    **procedures.DOCS,
    **telecom.DOCS,
    **postal.DOCS,
    **public_service.DOCS,
    **scorecard.DOCS,
}


@dg.asset(
    key=["publish", "warehouse"],
    deps=[dg.AssetKey(name.split(".")) for name in DOCS],
    group_name="publish",
    kinds={"duckdb"},
    owners=OWNERS,
    pool=WAREHOUSE_POOL,
    description="Builds the analysts' DuckDB warehouse from the lake as a new file and swaps it in atomically.",
)
def publish_warehouse(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    counts = warehouse.publish(lake.lake(), {**DOCS, **alerts.DOCS})
    context.log.info(f"published {len(counts)} tables to {warehouse.path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(warehouse.path),
            "tables": dg.MetadataValue.json(counts),
            "dagster/row_count": sum(counts.values()),
        }
    )
