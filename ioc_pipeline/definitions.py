"""The one `Definitions` of the code location: assets, checks, jobs, schedules, sensors, resources.

Runs execute in one process by default: on a 2-core machine a process per step costs seconds of
imports each, and only the publish step writes DuckDB, so nothing is gained by forking. Jobs,
the nightly schedule, the delivery sensors, freshness checks and alerts come from automation.py.
"""

from __future__ import annotations

import dagster as dg

from ioc_pipeline import automation
from ioc_pipeline.assets import procedures, publish, reference, scorecard
from ioc_pipeline.resources import resources

ASSET_MODULES = [reference, procedures, scorecard, publish]

all_assets = dg.load_assets_from_modules(ASSET_MODULES)

operations = automation.build(all_assets)


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
