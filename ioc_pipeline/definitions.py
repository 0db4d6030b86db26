"""The one `Definitions` of the code location: assets, checks, jobs, schedules, sensors, resources.

Runs execute in one process by default: on a 2-core machine a process per step costs seconds of
imports each, and only the publish step writes DuckDB, so nothing is gained by forking. A deployment
with more machines sets `IOC_EXECUTOR=dask` and `IOC_DASK_SCHEDULER` (executors.py): every run's steps
go to the Dask cluster, and a backfill of partitioned assets becomes a run per partition.

Jobs (Dagster runs one partitions definition per job): `refresh_provinces` is the former provinces'
partitions (the feeds' bronze, the snapshot feeds' silver) with the unpartitioned assets, a run per
province; `refresh_all` every other asset: a range of the delivered dossier months of every province (the
nightly: those among this and last month; a manual launch asks which), everything else once. `dossier_months`
rebuilds a range of dossier months and what is downstream of them (gold KPIs, the scorecard, the
warehouse): the `dossier_months_changed` sensor registers the months bronze brought and launches it
for months a load changed outside the nightly's range (a new month, a late update of an old dossier).
`python -m ioc_pipeline.cli run` chains the same steps for a first load: each province's partitions (and
what else is upstream), the months that changed, everything downstream.
Schedules, sensors, freshness checks, alerts and per-domain jobs come from automation.py.
"""

from __future__ import annotations

import functools
import os
from typing import cast

import dagster as dg

from ioc_pipeline import automation, executors, progress, provinces, recovery, versions
from ioc_pipeline.assets import layers, ops, publish, report, scorecard
from ioc_pipeline.feeds import DOMAINS
from ioc_pipeline.resources import resources

# The feeds' domains (feeds.DOMAINS), then what every feed shares: the scorecard, the feed status, the
# publish, the report.
ASSET_MODULES = [*(domain.module() for domain in DOMAINS), scorecard, ops, publish, report]


def _settings() -> tuple[tuple[str, ...], str, str | None]:
    """What shapes the assets: the former provinces (partitions) and the engine (backfill policy)."""
    return provinces.codes(), executors.engine(), os.environ.get(executors.PARTITIONS_PER_RUN)


def load_assets() -> list[dg.AssetsDefinition]:
    """Every @asset, each with the package's code version (versions.py: new code makes them stale), the province
    partitions of the environment now (layers.by_province: `IOC_PROVINCES`) and the engine's backfill policy
    (executors.py: under Dask a run per partition)."""
    loaded = cast(list[dg.AssetsDefinition], dg.load_assets_from_modules(ASSET_MODULES))
    return executors.with_backfill_policy(versions.with_code_version(layers.by_province(loaded)))


all_assets = load_assets()
_IMPORTED = _settings()  # what `all_assets` were built with
# What is observed, not materialized: each file feed's landing folder and the quality policy (their data
# versions make bronze and silver stale when a delivery or the policy changed).
sources = [*(layers.landing_source(feed, group) for feed, group in layers.LANDED.values()), layers.quality_policy]

# Feeds whose silver is partitioned by month declare it (`PARTITIONED` in their module): their range jobs and
# changed-partition sensors follow; no entry point names a feed.
PARTITIONED_FEEDS: list[automation.PartitionedFeed] = [
    m.PARTITIONED for m in ASSET_MODULES if hasattr(m, "PARTITIONED")
]
PARTITIONED = dg.AssetSelection.assets(*[k for feed in PARTITIONED_FEEDS for k in feed.assets.resolve(all_assets)])


def build_operations(assets: list[dg.AssetsDefinition]) -> automation.Automation:
    """Jobs, schedules, sensors and freshness checks of `assets` (automation.py). A month range's job may go on
    with what is downstream of the province partitions too: `cli run`'s last run takes everything downstream."""
    provincial = dg.AssetSelection.assets(*automation.province_keys(assets))
    jobs = {feed.job_name: feed.job(also=provincial.downstream() - provincial) for feed in PARTITIONED_FEEDS}
    return automation.build(
        assets,
        extra_jobs=list(jobs.values()),
        changed=[feed.changed_sensor(jobs[feed.job_name]) for feed in PARTITIONED_FEEDS],
    )


@functools.cache
def _operations(settings: tuple[tuple[str, ...], str, str | None]) -> automation.Automation:
    """The assets and what automation.py derives from them, once per `_settings()`."""
    return build_operations(all_assets if settings == _IMPORTED else load_assets())


def build_defs() -> dg.Definitions:
    """The Definitions with resources, and the province partitions, read from the environment now (tests set
    it per test)."""
    operations = _operations(_settings())
    return dg.Definitions(
        assets=[*operations.assets, *sources],
        asset_checks=operations.asset_checks,
        jobs=operations.jobs,
        schedules=operations.schedules,
        sensors=[*operations.sensors, recovery.dead_runs],  # dead runs failed, their pool slots freed
        resources=resources(),
        executor=executors.from_environment(),  # IOC_EXECUTOR: in process unless a deployment says otherwise
        # Dagster's console logger stays the default; the CLI asks for `progress` (one line a step) instead.
        loggers={**dg.default_loggers(), progress.LOGGER: progress.progress_logger},
    )


defs = build_defs()
