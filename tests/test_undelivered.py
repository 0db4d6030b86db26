"""A file feed never delivered yet holds back nothing: its steps succeed without writing, the other
feeds are published, and the scorecard has no row (unknown, not zero) for its indicators."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ioc_pipeline.assets import postal, procedures, telecom
from ioc_pipeline.gate import REJECT_SHARE_CHECK, ROW_COUNT_CHECK
from ioc_pipeline.sample.__main__ import FEEDS, SEED
from tests.conftest import Pipeline, failure_messages, new_pipeline, succeeded

# Every table a file feed publishes (lake and warehouse, as layer.table): none may exist before it is delivered.
TABLES = {"procedures": list(procedures.DOCS), "telecom": list(telecom.DOCS), "postal": list(postal.DOCS)}
GATED = {
    "procedures": ["procedures"],
    "telecom": ["bts_stations"],
    "postal": ["postal_enterprises", "postal_service_points"],
}
INDICATORS = {"procedures": ("procedures_",), "telecom": ("bts_", "communes_without_4g"), "postal": ("postal_",)}
EXPECTED = {"procedures_total": 1843, "bts_sites": 1268, "postal_service_points": 186}


def _warehouse_tables(pipeline: Pipeline) -> set[str]:
    return {f"{s}.{t}" for s, t in pipeline.query("select table_schema, table_name from information_schema.tables")}


def _logs(pipeline: Pipeline, results: list[dg.ExecuteInProcessResult]) -> str:
    with pipeline.environment(), dg.DagsterInstance.get() as instance:
        return "\n".join(e.user_message for r in results for e in instance.all_logs(r.run_id))


@pytest.mark.parametrize("missing", [tuple(TABLES)])  # every file feed at once: two refreshes, not six
def test_an_undelivered_feed_holds_back_nothing_and_is_picked_up_when_it_arrives(
    tmp_path: Path, missing: tuple[str, ...]
) -> None:
    delivered = tuple(f for f in FEEDS if f not in missing)
    assert delivered, "the dossier export must still be delivered: the run has something to publish"
    pipeline = new_pipeline(tmp_path / "data", feeds=delivered)

    results = pipeline.refresh()
    assert succeeded(results), failure_messages(results)
    assert pipeline.warehouse.exists()
    published = _warehouse_tables(pipeline)
    assert "gold.public_service_kpis_monthly" in published  # the delivered feed is published
    lake = pipeline.lake
    for name in [n for feed in missing for n in TABLES[feed]]:
        assert name not in published, name
        assert not lake.exists(*name.split(".")), name
    scorecard = pipeline.scorecard()
    prefixes = tuple(p for feed in missing for p in INDICATORS[feed])
    assert not [code for code in scorecard if code.startswith(prefixes)], scorecard

    events = [e for r in results for e in r.get_asset_materialization_events()]
    checks = [e for r in results for e in r.get_asset_check_evaluations()]
    logs = _logs(pipeline, results)
    for table in [t for feed in missing for t in GATED[feed]]:
        silver = dg.AssetKey(["silver", table])
        metadata = [e.materialization.metadata for e in events if e.asset_key == silver]
        assert metadata and metadata[0]["delivered"].value is False and metadata[0]["dagster/row_count"].value == 0
        evaluations = {e.check_name: e for e in checks if e.asset_key == silver}
        assert set(evaluations) == {REJECT_SHARE_CHECK, ROW_COUNT_CHECK}
        assert all(e.passed and "not been delivered" in (e.description or "") for e in evaluations.values())
        assert f"feed {table} has not been delivered yet" in logs
    for name in [n for feed in missing for n in TABLES[feed]]:  # gold (and bts_sites) ran, wrote nothing, say so
        if name.startswith("gold.") or name == "silver.bts_sites":
            metadata = [e.materialization.metadata for e in events if e.asset_key == dg.AssetKey(name.split("."))]
            assert metadata and metadata[0]["delivered"].value is False, name

    for feed in missing:  # the departments deliver at last
        FEEDS[feed](pipeline.landing, SEED)
    results = pipeline.refresh()
    assert succeeded(results), failure_messages(results)
    assert {n for feed in missing for n in TABLES[feed]} <= _warehouse_tables(pipeline)
    scorecard = pipeline.scorecard()
    for code, value in EXPECTED.items():
        assert scorecard[code] == value, code
