"""The one `Definitions` of the code location: assets, checks, jobs, schedules, sensors, resources.

Runs execute in one process by default: on a 2-core machine a process per step costs seconds of
imports each, and only the publish step writes DuckDB, so nothing is gained by forking.

Jobs: `refresh_all` materializes every asset: the dossier months of a range (the nightly: this and
last month; a manual launch asks which), everything else once. `dossier_months` rebuilds a range
of dossier months and what is downstream of them (gold KPIs, the scorecard, the warehouse): the
`dossier_months_changed` sensor launches it for months a load changed outside the nightly's range
(a late update of an old dossier). `python -m ioc_pipeline.cli run` chains the same steps for a
first load: everything upstream, the months that changed, everything downstream.
Schedules, sensors, freshness checks, alerts and per-domain jobs come from automation.py.
"""

from __future__ import annotations

from typing import cast

import dagster as dg

from ioc_pipeline import automation
from ioc_pipeline.assets import postal, procedures, public_service, publish, reference, scorecard, telecom
from ioc_pipeline.resources import resources

ASSET_MODULES = [reference, procedures, telecom, postal, public_service, scorecard, publish]

all_assets = cast(list[dg.AssetsDefinition], dg.load_assets_from_modules(ASSET_MODULES))  # @asset only

PARTITIONED = dg.AssetSelection.assets(public_service.silver_dossiers)

dossier_months = dg.define_asset_job(
    "dossier_months",
    selection=PARTITIONED.downstream(),
    partitions_def=public_service.MONTHS,
    description="A range of dossier months (silver and quarantine, one single run) and everything downstream "
    "of them: gold KPIs, the scorecard, the warehouse.",
)

operations = automation.build(
    all_assets,
    extra_jobs=[dossier_months],
    changed=[
        automation.ChangedPartitions(
            name="dossier_months_changed",
            job=dossier_months,
            watched=public_service.BRONZE_KEY,
            changed=public_service.months_to_refresh,
            ranges=public_service.month_ranges,
        )
    ],
)


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
