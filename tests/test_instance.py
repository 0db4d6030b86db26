"""The Dagster instances: the embedded default (SQLite) and production (PostgreSQL, queued runs).

The production test starts a real PostgreSQL server (Debian's package) on loopback, points a
DAGSTER_HOME holding deploy/dagster.prod.yaml at it, and materializes every asset.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.conftest import LOCAL_INSTANCE, REPO, failure_messages, new_pipeline
from tests.support import postgres_server

PROD = REPO / "deploy" / "dagster.prod.yaml"


def _instance(home: Path, env: dict[str, str] | None = None) -> dg.DagsterInstance:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        return dg.DagsterInstance.get()


def test_the_embedded_instance_is_sqlite_under_its_home_with_queued_runs_and_pools(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(LOCAL_INSTANCE, home / "dagster.yaml")
    with _instance(home) as instance:
        assert type(instance.run_storage).__name__.startswith("Sqlite")
        assert type(instance.event_log_storage).__name__.startswith(("Sqlite", "ConsolidatedSqlite"))
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.get_concurrency_config().pool_config.pool_granularity.value == "op"
        assert instance.freshness_enabled
        assert not instance.get_settings("telemetry")["enabled"]
        assert instance.event_log_storage.supports_global_concurrency_limits
    assert (home / "history").is_dir()  # the run history lives under DAGSTER_HOME (data/dagster_home)


def test_the_production_config_keeps_the_same_settings_but_storage() -> None:
    embedded = yaml.safe_load(LOCAL_INSTANCE.read_text())
    prod = yaml.safe_load(PROD.read_text())
    assert set(prod["storage"]) == {"postgres"}
    for section in ("telemetry", "run_coordinator", "concurrency", "run_monitoring", "freshness"):
        assert prod[section] == embedded[section], section
    assert "password" not in PROD.read_text().split("password:", 1)[1].split("\n", 2)[1]  # from the environment


@pytest.mark.slow  # a PostgreSQL server: `make test` only, not `make test-fast`
def test_a_materialization_on_the_postgresql_instance(tmp_path: Path) -> None:
    """One feed's job (the catalog: bronze to gold, its checks and pools) on the production instance config."""
    pipeline = new_pipeline(tmp_path / "data", feeds=("procedures",))
    shutil.copy(PROD, pipeline.home / "dagster.yaml")
    with postgres_server() as server, pytest.MonkeyPatch.context() as patch:
        for key, value in server.env().items():
            patch.setenv(key, value)
        result = pipeline.run("refresh_procedures")
        assert result.success, failure_messages(result)
        with _instance(pipeline.home) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            materialized = instance.get_latest_materialization_event(dg.AssetKey(["gold", "procedure_service_levels"]))
            assert materialized is not None and materialized.run_id == result.run_id
        # the records are in PostgreSQL itself, not in files under DAGSTER_HOME
        assert server.query("select status from runs where run_id = %s", result.run_id) == [("SUCCESS",)]
        events = server.query(
            "select count(*) from event_logs where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'",
            result.run_id,
        )[0][0]
        assert events == len(result.get_asset_materialization_events()) >= 4
        pools = dict(server.query('select concurrency_key, "limit" from concurrency_limits'))
        assert pools.get("silver/procedures") == 1  # the pools are enforced through PostgreSQL too
    assert not (pipeline.home / "history" / "runs.db").exists()
    assert pipeline.lake.row_count("silver", "procedures") == 1843
