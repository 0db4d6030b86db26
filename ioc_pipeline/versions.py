"""What changed since the last run, in Dagster's own terms (code versions, data versions, stale status).

    landing/<table>      (observable source: a fingerprint of the feed's settled files)
    ops/quality_policy   (observable source: a hash of the effective policy file)
            │ data versions
            ▼
    bronze ──► silver ──► gold ──► …   every asset carries CODE_VERSION (a hash of this package)

Each asset's data version is derived by Dagster from its code version and its inputs' data versions,
so Dagster's stale status names what a new delivery, a policy edit or new code affects. The nightly
`cli run` materializes only those assets (and what is missing); the UI's "Materialize changed and
missing" does the same. An asset left alone is observed instead (its data version, "unchanged"), so
the gold freshness checks see that it was confirmed current by the night's run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import dagster as dg
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView  # no public API for stale status
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.data_version import DATA_VERSION_TAG, CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.temporal_context import TemporalContext
from dagster._time import get_current_datetime

from ioc_pipeline import provinces
from ioc_pipeline.checks import policy
from ioc_pipeline.lake import Landing
from ioc_pipeline.sources.files import Feed, owned_files

POLICY_KEY = dg.AssetKey(["ops", "quality_policy"])
PACKAGE = Path(__file__).resolve().parent


def landing_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["landing", table])


@cache
def code_version() -> str:
    """A hash of every Python source of the package: any code change makes every asset stale (a
    coarse but safe granularity: a rebuild of the sample costs seconds)."""
    digest = hashlib.sha256()
    for source in sorted(PACKAGE.rglob("*.py")):
        digest.update(source.relative_to(PACKAGE).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def with_code_version(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    return list(dg.map_asset_specs(lambda spec: spec.replace_attributes(code_version=code_version()), list(assets)))


def landing_version(feed: Feed, landing: Landing, settle_seconds: float, now: float | None = None) -> str:
    """The feed's delivered files (path, size, modification time), leaving out files modified less than
    `settle_seconds` ago: those are deferred by bronze, and change the fingerprint once settled."""
    now = time.time() if now is None else now
    digest = hashlib.sha256()
    for _, delivered, _ in provinces.deliveries(feed, landing):  # every former province's folders
        for folder in delivered.folders:
            for file in owned_files(delivered, landing, folder):
                if now - file.modified >= settle_seconds:
                    digest.update(f"{file.path}\0{file.size}\0{file.modified}\n".encode())
    return digest.hexdigest()[:16]


def policy_version() -> str:
    where = policy.path()
    try:
        return hashlib.sha256(where.read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"  # the silver steps fail naming the file (policy.PolicyError)


# The layers a run rebuilds only when Dagster calls them stale or missing: reading deliveries, gating
# and writing silver are where a run spends its time. Gold, the scorecard, the feed status, the
# warehouse and the report are rebuilt by every run from the last good silver (cheap, and it keeps
# their freshness and their as-of dates true).
CHANGE_DRIVEN = frozenset({"bronze", "silver", "quarantine"})


def observe(instance: dg.DagsterInstance, landing: Landing, settle_seconds: float) -> dict[dg.AssetKey, str]:
    """Record the data version of every observable source (a runless observation, only when it
    differs from the last one): what `Observe sources` in the UI records too."""
    from ioc_pipeline.assets.layers import LANDED

    found = {landing_key(t): landing_version(feed, landing, settle_seconds) for t, (feed, _) in LANDED.items()}
    found[POLICY_KEY] = policy_version()
    for key, version in found.items():
        last = instance.fetch_observations(key, limit=1).records
        if not last or last[0].asset_observation.tags.get(DATA_VERSION_TAG) != version:  # type: ignore[union-attr]
            instance.report_runless_asset_event(dg.AssetObservation(key, tags={DATA_VERSION_TAG: version}))
    return found


def _asks_its_source(graph: BaseAssetGraph, key: dg.AssetKey) -> bool:
    """A bronze step with no observed landing (the dossier API): only asking tells what is new."""
    return key.path[0] == "bronze" and not any(p.path[0] == "landing" for p in graph.get(key).parent_keys)


def outdated(
    graph: BaseAssetGraph, instance: dg.DagsterInstance, keys: set[dg.AssetKey], partition: str | None = None
) -> set[dg.AssetKey]:
    """Of `keys`, what a run must materialize: every asset outside the change-driven layers, and the
    change-driven ones Dagster calls stale or missing, with what is downstream of them and the other
    assets of their steps (a silver table is written with its quarantine). `partition`: the former province
    whose partition of the province-partitioned `keys` is judged (layers.province_partitions)."""
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)
    driven = {k for k in keys if k.path[0] in CHANGE_DRIVEN and not _asks_its_source(graph, k)}

    def status(key: dg.AssetKey) -> StaleStatus:
        return resolver.get_status(key, partition if graph.get(key).partitions_def is not None else None)

    stale = {k for k in driven if status(k) != StaleStatus.FRESH}
    below = dg.AssetSelection.assets(*stale).downstream().resolve(graph) if stale else set()
    wanted = (keys - driven) | stale | (below & driven)
    for key in list(wanted):
        wanted |= set(graph.get(key).execution_set_asset_keys) & keys
    return wanted
