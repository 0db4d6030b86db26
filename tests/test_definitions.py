"""The code location loads, and what it defines is exactly the committed snapshot.

tests/snapshots/definitions.txt lists every asset key (group, partitions), asset check (blocking or not),
job, schedule and sensor: a rename, a lost check or an asset added by mistake shows as a diff there.
A deliberate change is recorded with `UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_definitions.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ioc_pipeline.definitions import defs
from tests.conftest import LOCAL_INSTANCE
from tests.snapshot import assert_matches_snapshot

REPO = Path(__file__).resolve().parents[1]


def definition_lines(definitions: dg.Definitions) -> list[str]:
    """One line per asset, check, job, schedule and sensor, sorted within each kind."""
    graph = definitions.resolve_asset_graph()
    lines = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = f" partitions={node.partitions_def}" if node.partitions_def else ""
        lines.append(f"asset {key.to_user_string()} group={node.group_name}{partitions}")
    for check in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name)):
        blocking = " blocking" if graph.get_check_spec(check).blocking else ""
        lines.append(f"check {check.asset_key.to_user_string()}:{check.name}{blocking}")
    jobs = sorted(job.name for job in definitions.resolve_all_job_defs() if not job.name.startswith("__"))
    lines += [f"job {name}" for name in jobs]
    for schedule in sorted(definitions.schedules or [], key=lambda s: s.name):
        assert isinstance(schedule, dg.ScheduleDefinition)
        lines.append(
            f"schedule {schedule.name} cron={schedule.cron_schedule} tz={schedule.execution_timezone} "
            f"job={schedule.job_name}"
        )
    for sensor in sorted(definitions.sensors or [], key=lambda s: s.name):
        assert isinstance(sensor, dg.SensorDefinition)
        lines.append(f"sensor {sensor.name} type={sensor.sensor_type.value} every={sensor.minimum_interval_seconds}s")
    return lines


def test_the_definitions_are_the_committed_snapshot() -> None:
    lines = definition_lines(defs)
    assert len(lines) == len(set(lines))
    assert_matches_snapshot("definitions.txt", lines)


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


@pytest.mark.slow  # the `dagster` command in a subprocess (`dg check defs` in `make lint` loads it too)
def test_the_workspace_loads_in_dagster(tmp_path) -> None:
    """What `dagster dev -w workspace.yaml` loads: the code location validates."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(LOCAL_INSTANCE.read_text())
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
    assert silver in refresh.asset_layer.executable_asset_keys
    # bronze is partitioned by former province: a job of its own (one partitions definition per job)
    assert dg.AssetKey(["bronze", "dossiers"]) not in refresh.asset_layer.executable_asset_keys
    provinces = defs.resolve_job_def("refresh_provinces")
    assert provinces.partitions_def == graph.get(dg.AssetKey(["bronze", "dossiers"])).partitions_def
    assert silver not in provinces.asset_layer.executable_asset_keys
    months = defs.resolve_job_def("dossier_months").asset_layer.executable_asset_keys
    assert {silver, dg.AssetKey(["gold", "public_service_kpis_monthly"]), dg.AssetKey(["publish", "warehouse"])} <= (
        months
    )
    assert dg.AssetKey(["bronze", "dossiers"]) not in months


# Imported by the steps that use them, never with the definitions: each costs a second or more at every start
# (the CLI, `make dev`'s code server, every test process), and most processes never run those steps.
HEAVY_MODULES = (
    "great_expectations",  # the gate, inside silver steps
    "dlt",  # the bronze loads
    "requests",  # the dossier gateway client
    "plotly",  # the IOC report
    "openpyxl",  # xlsx deliveries and feedback workbooks
    "pandas",  # what Great Expectations validates
    "ioc_pipeline.sample",  # the sample generator
    "ioc_pipeline.report.ioc",  # the report's renderer
)


def test_loading_the_definitions_imports_no_heavy_package() -> None:
    """A fresh interpreter loads the code location (and builds the Definitions) without importing them."""
    probe = (
        "import sys, json\n"
        "from ioc_pipeline.definitions import build_defs\n"
        "build_defs().resolve_asset_graph()\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY_MODULES)!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", f"imported with the definitions: {done.stdout}"
    assert "Warning" not in done.stderr, done.stderr[-2000:]  # loading the definitions says nothing


def test_every_gate_rule_builds_its_expectation() -> None:
    """The rules name their GE expectation lazily (`gate.E`): each builds, and reads the columns the gate hands it."""
    from great_expectations.expectations import Expectation

    from ioc_pipeline.definitions import ASSET_MODULES

    tables = [table for module in ASSET_MODULES for table in getattr(module, "GATED", [])]
    rules = [rule for table in tables for rule in table.rules]
    assert len(tables) >= 5 and len(rules) > 40
    for rule in rules:
        built = rule.expectation.build(meta={"rule": rule.name})
        assert isinstance(built, Expectation) and built.meta == {"rule": rule.name}, rule.name
        read = [getattr(built, a, None) for a in ("column", "column_A", "column_B")] + list(
            getattr(built, "column_list", None) or []
        )
        assert [c for c in read if c] == rule.expectation.columns, rule.name
