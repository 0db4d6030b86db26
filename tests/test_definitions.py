"""The code location loads, and its asset keys stay what dashboards and jobs select."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ioc_pipeline.definitions import defs

REPO = Path(__file__).resolve().parents[1]

EXPECTED_KEYS = {
    "bronze/procedures",
    "silver/procedures",
    "quarantine/procedures",
    "gold/procedure_service_levels",
    "gold/ioc_scorecard",
    "silver/admin_units",
    "silver/admin_unit_crosswalk",
    "publish/warehouse",
    "bronze/bts_stations",
    "silver/bts_stations",
    "quarantine/bts_stations",
    "silver/bts_sites",
    "gold/telecom_coverage_by_commune",
    "gold/telecom_coverage_by_new_unit",
    "gold/telecom_coverage_gaps",
    "bronze/postal_enterprises",
    "bronze/postal_service_points",
    "silver/postal_enterprises",
    "silver/postal_service_points",
    "quarantine/postal_enterprises",
    "quarantine/postal_service_points",
    "gold/postal_network_by_commune",
    "gold/postal_network_by_new_unit",
    "bronze/dossiers",
    "silver/dossiers",
    "quarantine/dossiers",
    "gold/public_service_kpis_monthly",
    "gold/public_service_kpis_by_agency_monthly",
}


def test_asset_keys_are_stable() -> None:
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert EXPECTED_KEYS <= keys


def test_every_asset_has_group_kind_owner_and_description() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name and node.group_name != "default", key
        assert node.description, key
        assert node.owners, key
        assert node.kinds, key


def test_gated_tables_carry_non_blocking_batch_checks() -> None:
    """A blocked batch must not skip the publish of the other feeds: the batch checks never block."""
    graph = defs.resolve_asset_graph()
    checks = {(c.asset_key.to_user_string(), c.name): graph.get_check_spec(c).blocking for c in graph.asset_check_keys}
    for table in ("procedures", "bts_stations", "postal_enterprises", "postal_service_points", "dossiers"):
        assert checks[(f"silver/{table}", "row_count_not_collapsed")] is False
        assert checks[(f"silver/{table}", "rejected_share_within_threshold")] is False


def test_the_refresh_job_selects_everything() -> None:
    job = defs.resolve_job_def("refresh_all")
    assert isinstance(job, dg.JobDefinition)
    assert dg.AssetKey(["publish", "warehouse"]) in job.asset_layer.executable_asset_keys


def test_the_workspace_loads_in_dagster(tmp_path) -> None:
    """What `dagster dev -w workspace.yaml` loads: the code location validates."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Validation successful for code location ioc_pipeline" in done.stderr + done.stdout


def test_refresh_all_takes_a_range_of_dossier_months_and_dossier_months_rebuilds_what_follows() -> None:
    graph = defs.resolve_asset_graph()
    silver = dg.AssetKey(["silver", "dossiers"])
    assert graph.get(silver).partitions_def is not None
    refresh = defs.resolve_job_def("refresh_all")
    assert refresh.partitions_def == graph.get(silver).partitions_def
    assert {silver, dg.AssetKey(["bronze", "dossiers"])} <= refresh.asset_layer.executable_asset_keys
    months = defs.resolve_job_def("dossier_months").asset_layer.executable_asset_keys
    assert {silver, dg.AssetKey(["gold", "public_service_kpis_monthly"]), dg.AssetKey(["publish", "warehouse"])} <= (
        months
    )
    assert dg.AssetKey(["bronze", "dossiers"]) not in months
