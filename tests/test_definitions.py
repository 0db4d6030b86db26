"""The code location loads, and its asset keys stay what dashboards and jobs select."""

from __future__ import annotations

import dagster as dg

from ioc_pipeline.definitions import defs

EXPECTED_KEYS = {
    "bronze/procedures",
    "silver/procedures",
    "quarantine/procedures",
    "gold/procedure_service_levels",
    "gold/ioc_scorecard",
    "silver/admin_units",
    "silver/admin_unit_crosswalk",
    "publish/warehouse",
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


def test_gated_tables_carry_blocking_checks() -> None:
    graph = defs.resolve_asset_graph()
    checks = {(c.asset_key.to_user_string(), c.name): graph.get_check_spec(c).blocking for c in graph.asset_check_keys}
    assert checks[("silver/procedures", "row_count_not_collapsed")] is True
    assert checks[("silver/procedures", "rejected_share_within_threshold")] is True


def test_the_refresh_job_selects_everything() -> None:
    job = defs.resolve_job_def("refresh_all")
    assert isinstance(job, dg.JobDefinition)
    assert dg.AssetKey(["publish", "warehouse"]) in job.asset_layer.executable_asset_keys


def test_dossier_months_are_partitioned_and_refresh_all_runs_without_a_partition() -> None:
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["silver", "dossiers"])).partitions_def is not None
    months = defs.resolve_job_def("dossier_months")
    assert dg.AssetKey(["silver", "dossiers"]) in months.asset_layer.executable_asset_keys
    refresh = defs.resolve_job_def("refresh_all")
    assert dg.AssetKey(["silver", "dossiers"]) not in refresh.asset_layer.executable_asset_keys
    assert dg.AssetKey(["bronze", "dossiers"]) in refresh.asset_layer.executable_asset_keys
