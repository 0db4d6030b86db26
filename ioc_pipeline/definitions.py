"""The one `Definitions` of the code location: assets, checks, jobs, resources.

Runs execute in one process by default: on a 2-core machine a process per step costs seconds of
imports each, and only the publish step writes DuckDB, so nothing is gained by forking.
"""

from __future__ import annotations

import dagster as dg

from ioc_pipeline.assets import postal, procedures, publish, reference, scorecard, telecom
from ioc_pipeline.resources import resources

ASSET_MODULES = [reference, procedures, telecom, postal, scorecard, publish]

all_assets = dg.load_assets_from_modules(ASSET_MODULES)

refresh_all = dg.define_asset_job("refresh_all", selection=dg.AssetSelection.all(), description="Every asset.")


def build_defs() -> dg.Definitions:
    """The Definitions with resources read from the environment now (tests set it per test)."""
    return dg.Definitions(
        assets=all_assets,
        jobs=[refresh_all],
        resources=resources(),
        executor=dg.in_process_executor,
    )


defs = build_defs()
