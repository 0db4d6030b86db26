"""The nightly costs what changed: bronze and silver steps run only for a new delivery, a new quality
policy or new code (Dagster's stale status over observed landing folders and code versions), and the
result equals a rebuild of everything."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from ioc_pipeline import versions
from ioc_pipeline.definitions import defs
from tests.conftest import Pipeline, failure_messages, succeeded

FILE_FEEDS = ("bts_stations", "postal_enterprises", "postal_service_points", "procedures")


def _refresh(pipeline: Pipeline, everything: bool = False) -> set[str]:
    """One `cli run` (in process), and the assets it materialized."""
    results = pipeline.refresh(everything)
    assert succeeded(results), failure_messages(results)
    return {e.asset_key.to_user_string() for r in results for e in r.get_asset_materialization_events()}


def _rebuilt(built: set[str], feed: str) -> set[str]:
    return built & {f"bronze/{feed}", f"silver/{feed}", f"quarantine/{feed}"}


def _gold(pipeline: Pipeline) -> dict[str, pl.DataFrame]:
    store = pipeline.lake
    names = sorted(p.name for p in (pipeline.root / "lake" / "gold").iterdir())
    return {name: store.read("gold", name) for name in names}


def test_every_asset_carries_the_code_version_and_sources_feed_bronze_and_silver() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        assert graph.get(key).code_version == versions.code_version(), key
    for feed in FILE_FEEDS:
        assert versions.landing_key(feed) in graph.get(dg.AssetKey(["bronze", feed])).parent_keys
        assert versions.POLICY_KEY in graph.get(dg.AssetKey(["silver", feed])).parent_keys
        assert versions.POLICY_KEY in graph.get(dg.AssetKey(["quarantine", feed])).parent_keys


def test_a_run_with_nothing_new_rebuilds_no_bronze_nor_silver_and_publishes(published: Pipeline) -> None:
    before = _gold(published)
    built = _refresh(published)
    for feed in FILE_FEEDS:
        assert _rebuilt(built, feed) == set(), feed
    assert {"bronze/dossiers", "publish/warehouse", "ops/feed_status", "gold/ioc_scorecard"} <= built
    assert "gold/procedure_service_levels" in built  # gold is rebuilt from the last good silver every run
    after = _gold(published)
    for name, frame in before.items():
        if name != "ioc_scorecard":  # its rows carry the run's as-of time
            assert after[name].equals(frame), name


def test_a_new_delivery_rebuilds_its_feed_only_and_equals_a_full_rebuild(published: Pipeline, tmp_path: Path) -> None:
    published.deliver_catalog()
    full = published.copy(tmp_path / "full")
    built = _refresh(published)
    assert _rebuilt(built, "procedures") == {"bronze/procedures", "silver/procedures", "quarantine/procedures"}
    for feed in set(FILE_FEEDS) - {"procedures"}:
        assert _rebuilt(built, feed) == set(), feed
    assert published.scorecard()["procedures_total"] < 1843  # the new catalog reached the warehouse

    rebuilt_all = _refresh(full, everything=True)
    assert all(_rebuilt(rebuilt_all, feed) for feed in FILE_FEEDS)
    changed, everything = _gold(published), _gold(full)
    assert changed.keys() == everything.keys()
    for name, frame in everything.items():
        if name != "ioc_scorecard":
            assert changed[name].equals(frame), name
    assert published.query("select * from silver.procedures order by 1") == full.query(
        "select * from silver.procedures order by 1"
    )
    assert _refresh(published) & {"bronze/procedures", "silver/procedures"} == set()  # built once


def test_a_new_quality_policy_gates_every_feed_again_without_reading_the_files(
    published: Pipeline, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[default]\nmax_refused_share = 0.5\n", encoding="utf-8")
    published.extra_env["IOC_QUALITY_POLICY"] = str(policy)
    built = _refresh(published)
    for feed in FILE_FEEDS:
        assert _rebuilt(built, feed) == {f"silver/{feed}", f"quarantine/{feed}"}, feed
    assert {f"silver/{feed}" for feed in FILE_FEEDS} & _refresh(published) == set()  # the same policy: nothing


def test_a_file_still_being_written_is_left_out_until_it_settles(published: Pipeline) -> None:
    assert all(time.time() - f.stat().st_mtime > 3600 for f in published.landing.rglob("*"))  # delivered long ago
    published.deliver_catalog()
    published.extra_env["IOC_LANDING_SETTLE_SECONDS"] = "3600"  # every file touched in the last hour waits
    assert _rebuilt(_refresh(published), "procedures") == set()
    published.extra_env["IOC_LANDING_SETTLE_SECONDS"] = "0"
    assert "silver/procedures" in _refresh(published)
    assert published.scorecard()["procedures_total"] < 1843


KPI_TABLES = {"public_service_kpis_monthly": [], "public_service_kpis_by_agency_monthly": ["agency"]}


def test_a_dossier_update_recomputes_the_months_it_changed_and_equals_a_whole_computation(published: Pipeline) -> None:
    """April's export re-delivered with a January dossier's new status: the dossier KPIs are recomputed for the
    months whose silver changed, the other months' rows are kept, and the tables equal a whole computation."""
    from ioc_pipeline.assets import public_service

    export = published.landing / "public_service" / "dossiers_202204.ndjson"
    january = next(
        json.loads(line)
        for line in (published.landing / "public_service" / "dossiers_202201.ndjson").read_text("utf-8").splitlines()
        if line.startswith("{") and '"MaHoSo"' in line and "H60-2201" in line
    )
    update = {**january, "TrangThaiHoSo": 8, "NgayCapNhat": "30/04/2022 23:59:00"}
    export.write_text(export.read_text("utf-8") + json.dumps(update, ensure_ascii=False) + "\n", encoding="utf-8")
    results = published.refresh()
    assert succeeded(results), failure_messages(results)
    for name, by in KPI_TABLES.items():
        events = [e for r in results for e in r.get_asset_materialization_events() if e.asset_key.path[-1] == name]
        recomputed = events[-1].materialization.metadata["recomputed_months"].value
        assert "2022-01" in recomputed and "2022-02" not in recomputed, recomputed  # February: silver untouched
        with published.environment():
            store = published.lake
            whole = public_service._kpi_table(store, by, public_service.extracted_at(store))
            whole = public_service._ordered(public_service._named(whole, store) if by else whole, by)
        # equal, means to the last bits a summation in another order changes (12 significant digits)
        assert_frame_equal(store.read("gold", name), whole, check_exact=False, rel_tol=1e-12)
    assert published.query(  # the dossier's new status is in January's figures
        f"select status_code from silver.dossiers where dossier_code = '{january['MaHoSo']}'"
    ) == [("8",)]
