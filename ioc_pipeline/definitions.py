"""The one `Definitions` of the code location: assets, checks, jobs, schedules, sensors, resources.

Runs execute in one process by default: on a 2-core machine a process per step costs seconds of
imports each, and only the publish step writes DuckDB, so nothing is gained by forking.

Jobs: `refresh_all` materializes every unpartitioned asset (every feed's ingestion, gold, the
scorecard, the warehouse); `dossier_months` materializes month partitions of the dossiers (silver
and quarantine), as one run per range of months (a single-run backfill). A run cannot mix
partitioned and unpartitioned assets without a partition key, so `python -m ioc_pipeline.cli run`
chains them: the upstream part of `refresh_all`, the months that changed, then the rest.
Schedules, sensors, freshness checks, alerts and per-domain jobs come from automation.py.
"""

from __future__ import annotations

import dagster as dg

from ioc_pipeline import automation
from ioc_pipeline.assets import postal, procedures, public_service, publish, reference, scorecard, telecom
from ioc_pipeline.resources import resources

ASSET_MODULES = [reference, procedures, telecom, postal, public_service, scorecard, publish]

all_assets = dg.load_assets_from_modules(ASSET_MODULES)

PARTITIONED = dg.AssetSelection.assets(public_service.silver_dossiers)

refresh_all = dg.define_asset_job(
    "refresh_all",
    selection=dg.AssetSelection.all() - PARTITIONED,
    description="Every unpartitioned asset: ingest every feed, rebuild gold, the scorecard and the warehouse. "
    "Dossier months are rebuilt by `dossier_months`; `python -m ioc_pipeline.cli run` chains both.",
)
dossier_months = dg.define_asset_job(
    "dossier_months",
    selection=PARTITIONED,
    partitions_def=public_service.MONTHS,
    description="Dossier month partitions (silver and quarantine): launch with a range for a single-run backfill.",
)

operations = automation.build(all_assets, refresh_all=refresh_all, extra_jobs=[dossier_months])


def build_defs() -> dg.Definitions:
    """The Definitions with resources read from the environment now (tests set it per test)."""
    return dg.Definitions(
        assets=operations.assets,
        asset_checks=operations.asset_checks,
        jobs=operations.jobs,
        schedules=operations.schedules,
        sensors=operations.sensors,
        resources=resources(),
        executor=dg.in_process_executor,
    )


defs = build_defs()
