"""Crash safety: a real `python -m ioc_pipeline.cli run` is killed (SIGKILL) at each fault point, and the
next run, under a time limit, must succeed and publish exactly what an uninterrupted run publishes,
leaving no temp file, no pending dlt package, no run in progress and no pool slot held. Also: SIGTERM and
SIGINT stop a run that waits for a pool slot, dead runs are told from live ones, a full disk during the
dlt copy fails clearly and leaves nothing half-written. Slow: about a dozen pipeline runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from dagster._core.test_utils import create_run_for_test

from ioc_pipeline import faults, recovery
from ioc_pipeline.assets import public_service
from ioc_pipeline.policies import WAREHOUSE_POOL
from ioc_pipeline.sources.files import pipeline as dlt_pipeline
from ioc_pipeline.sources.files import stray_extracts, unfinished_files
from tests.cli_process import CliProcess
from tests.conftest import ENV_KEYS, Pipeline, failure_messages
from tests.support import wait_for

RUN_LIMIT_SECONDS = 120
STOP_LIMIT_SECONDS = 5.0
NEW_VERSION_AT = "2022-05-20T09:00:00+07:00"
FEEDS = ("bts_stations", "dossiers", "postal_enterprises", "postal_service_points", "procedures")


def _deliver(landing: Path) -> int:
    """A new dossier export: later versions (returned) of dossiers received in February and April, so that
    bronze, two silver months, gold and the warehouse all have work. Returns the versions delivered."""
    folder = landing / "public_service"
    versions = []
    for name, count in (("dossiers_202202.ndjson", 30), ("dossiers_202204.ndjson", 40)):
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        for line in [x for x in lines if x.startswith('{"MaHoSo"')][:count]:
            version = json.loads(line)
            version.update(NgayCapNhat=NEW_VERSION_AT, TrangThaiHoSo="10")
            versions.append(json.dumps(version, ensure_ascii=False))
    (folder / "dossiers_202205.ndjson").write_text("\n".join(versions) + "\n", encoding="utf-8")
    return len(versions)


def _start(pipeline: Pipeline, fault: str | None = None) -> CliProcess:
    """`python -m ioc_pipeline.cli run` over the pipeline's data dir, as `make run` starts it (a process of its
    own, forked from one that imported the packages: tests/cli_process.py)."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS and k != faults.ENV}
    env |= pipeline.env() | ({faults.ENV: fault} if fault else {})
    return CliProcess(["run"], env, pipeline.root, pipeline.root / f"cli-{fault or 'run'}.log")


def _cli_run(pipeline: Pipeline, fault: str | None = None) -> int:
    process = _start(pipeline, fault)
    try:
        return process.wait(timeout=RUN_LIMIT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"cli run did not finish within {RUN_LIMIT_SECONDS} s:\n{_log(pipeline, fault)}")


def _log(pipeline: Pipeline, fault: str | None = None) -> str:
    return (pipeline.root / f"cli-{fault or 'run'}.log").read_text(errors="replace")[-4000:]


# What a run records about itself (when, which run, its own file paths, the files' fates as that run saw
# them), not what it published: left out of the comparison with the uninterrupted run.
VOLATILE = {
    "checked_at",
    "seen_at",
    "run_id",
    "raised_at",
    "refused_at",
    "last_file_received_at",
    "modified_at",
    "load_id",
    "feedback_files",
    "quality_page",
    "built_at",
}
RUN_RECORDS = {"ops.alerts", "ops.landing_files", "ops.refused_files", "ops.warehouse_build"}
# "late" reasons count the days since the newest data up to the run's local (Vietnam) date, which changes
# at 17:00 UTC: a reference run before it and a recovered run after it differ by one day, not by data.
DAYS_SINCE = re.compile(r"(?<=đã )\d+(?= ngày không)|\d+(?= days without)")


def _timeless(value: object) -> object:
    return DAYS_SINCE.sub("N", value) if isinstance(value, str) else value


def _warehouse(pipeline: Pipeline) -> dict[str, list[tuple]]:
    """Every published table of the warehouse (silver, gold, quarantine, the feed status and gate results
    without their timestamps and run ids), rows sorted."""
    with duckdb.connect(str(pipeline.warehouse), read_only=True) as con:
        names = [r[0] for r in con.execute("select schema_name || '.' || table_name from duckdb_tables()").fetchall()]
        tables = {}
        for name in sorted(set(names) - RUN_RECORDS):
            columns = [c for (c,) in con.execute(f"select column_name from (describe {name})").fetchall()]
            kept = ", ".join(f'"{c}"' for c in columns if c not in VOLATILE)
            rows = con.execute(f"select {kept} from {name} order by all").fetchall()
            tables[name] = [tuple(_timeless(v) for v in row) for row in rows]
        return tables


def _gold(pipeline: Pipeline) -> dict[str, pl.DataFrame]:
    lake = pipeline.lake
    return {table: lake.read("gold", table).sort(pl.all()) for table in lake.tables("gold")}


def _leftovers(pipeline: Pipeline) -> list[str]:
    """Temp files, dlt packages not loaded, bronze files of loads that never completed."""
    guard = Path(f"{pipeline.warehouse}.wal")  # warehouse.guard's link, there by design
    found = [
        str(p)
        for p in pipeline.warehouse.parent.iterdir()
        if p.name != pipeline.warehouse.name and not (p == guard and p.is_symlink())
    ]
    found += [str(p) for p in (pipeline.root / "lake").rglob(".*.tmp")]
    for feed in FEEDS:
        p = dlt_pipeline(pipeline.lake, str(pipeline.root / "dlt"), feed)
        found += [f"pending dlt package {feed}/{load_id}" for load_id in p.list_normalized_load_packages()]
        found += [f"pending dlt package {feed}/{load_id}" for load_id in p.list_extracted_load_packages()]
        found += unfinished_files(pipeline.lake, p, feed)
        found += [str(folder) for folder in stray_extracts(p)]
    return found


def _instance_state(pipeline: Pipeline) -> tuple[list[str], set[str]]:
    """Runs not finished, and runs holding (or waiting for) a pool slot."""
    with pipeline.environment(), dg.DagsterInstance.get() as instance:
        running = [r.dagster_run.run_id for r in instance.get_run_records(dg.RunsFilter(statuses=recovery.JUDGED))]
        return running, recovery.slot_holders(instance)


@pytest.fixture(scope="module")
def reference(sample_run: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The published sample plus the new delivery, refreshed by one uninterrupted `cli run`."""
    pipeline = sample_run.copy(tmp_path_factory.mktemp("reference") / "data")
    _deliver(pipeline.landing)
    assert _cli_run(pipeline) == 0, _log(pipeline)
    return pipeline


@pytest.mark.slow  # fault injection: real `cli run` processes killed and run again
class TestFaultInjection:
    """A class so that pytest-xdist (--dist loadscope) can give these long tests a worker of their own."""

    @pytest.mark.parametrize("point", faults.POINTS)
    def test_a_run_killed_at_any_point_is_recovered_by_the_next_one(
        self, point: str, published: Pipeline, reference: Pipeline
    ) -> None:
        _deliver(published.landing)
        killed = _cli_run(published, point)
        assert killed == -signal.SIGKILL, f"the fault point {point} was not reached:\n{_log(published, point)}"

        assert _cli_run(published) == 0, _log(published)
        assert _gold(published).keys() == _gold(reference).keys()
        for table, frame in _gold(reference).items():
            assert _gold(published)[table].equals(frame), f"gold/{table} differs from the uninterrupted run"
        recovered, expected = _warehouse(published), _warehouse(reference)
        assert recovered.keys() == expected.keys()
        for table, rows in expected.items():
            assert recovered[table] == rows, f"warehouse {table} differs from the uninterrupted run"
        assert _leftovers(published) == []
        assert _instance_state(published) == ([], set())
        assert public_service.months_to_refresh(lake=published.lake) == []

    def test_bronze_rows_dagster_never_recorded_still_reach_silver(
        self, published: Pipeline, reference: Pipeline
    ) -> None:
        """11.2: killed after dlt loaded, before the bronze materialization: the months come from the data."""
        delivered = _deliver(published.landing)
        with published.environment(), dg.DagsterInstance.get() as instance:
            recorded = len(instance.fetch_materializations(public_service.BRONZE_KEY, limit=100).records)
        assert _cli_run(published, "dlt_recorded") == -signal.SIGKILL
        with published.environment(), dg.DagsterInstance.get() as instance:
            assert len(instance.fetch_materializations(public_service.BRONZE_KEY, limit=100).records) == recorded
            new = published.lake.scan("bronze", "dossiers").filter(pl.col("updated_at") == NEW_VERSION_AT).collect()
            assert new.height == delivered  # in bronze, unknown to Dagster
            assert public_service.months_to_refresh(instance) == sorted(set(new.get_column("_month")))
        assert published.query(_NEW_IN_SILVER) == [(0,)]
        assert _cli_run(published) == 0, _log(published)
        assert published.query(_NEW_IN_SILVER) == reference.query(_NEW_IN_SILVER) != [(0,)]


_NEW_IN_SILVER = (  # the warehouse shows Vietnam time
    "select count(*) from silver.dossiers "
    f"where updated_at = timezone('Asia/Ho_Chi_Minh', timestamptz '{NEW_VERSION_AT}')"
)


def _waiting_for(pipeline: Pipeline, pool: str, holder: str) -> list[str]:
    with pipeline.environment(), dg.DagsterInstance.get() as instance:
        info = instance.event_log_storage.get_concurrency_info(pool)
        return [step.run_id for step in info.pending_steps if step.run_id != holder]


@pytest.mark.slow  # `cli run` processes stopped by real signals while waiting for a pool slot
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_cli_run_within_seconds_while_a_step_waits_for_a_pool_slot(
    sig: signal.Signals, published: Pipeline
) -> None:
    with published.environment(), dg.DagsterInstance.get() as instance:
        # a live run of another process (this one) holds the warehouse: the publish step must wait
        holder = create_run_for_test(
            instance, job_name="refresh_all", status=dg.DagsterRunStatus.STARTED, tags=recovery.run_tags()
        ).run_id
        assert instance.event_log_storage.claim_concurrency_slot(
            WAREHOUSE_POOL, holder, "publish__warehouse"
        ).is_claimed
    process = _start(published)
    try:
        waiting = wait_for(
            lambda: _waiting_for(published, WAREHOUSE_POOL, holder) if process.poll() is None else ["exited"],
            "the publish step to wait for the warehouse slot",
            attempts=240,
        )
        assert waiting != ["exited"], _log(published)
        asked = time.monotonic()
        process.send_signal(sig)
        code = process.wait(timeout=30)
        took = time.monotonic() - asked
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert code == 128 + sig and took < STOP_LIMIT_SECONDS, (code, took, _log(published))
    assert f"stopped by {sig.name}" in _log(published)
    running, holders = _instance_state(published)
    assert running == [holder] and holders == {holder}  # the stopped run let go of everything
    with published.environment(), dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(waiting[0]).status == dg.DagsterRunStatus.CANCELED
        instance.event_log_storage.free_concurrency_slots_for_run(holder)
        instance.report_run_canceled(instance.get_run_by_id(holder))


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_runs_of_dead_processes_are_failed_and_their_slots_freed_live_ones_kept(published: Pipeline) -> None:
    own = recovery.run_tags()
    recycled_tags = {**own, recovery.STARTED_TAG: f"{float(own[recovery.STARTED_TAG]) - 3600:.2f}"}
    with published.environment(), dg.DagsterInstance.get() as instance:
        started = dg.DagsterRunStatus.STARTED
        dead = create_run_for_test(instance, status=started, tags={**own, recovery.PID_TAG: str(_dead_pid())})
        recycled = create_run_for_test(instance, status=started, tags=recycled_tags)  # our pid, not our process
        live = create_run_for_test(instance, status=started, tags=own)
        foreign = create_run_for_test(instance, status=started, tags={**own, recovery.HOST_TAG: "elsewhere"})
        finished = create_run_for_test(instance, status=dg.DagsterRunStatus.FAILURE)
        storage = instance.event_log_storage
        for pool, run in (
            ("bronze/dossiers", dead),
            ("silver/dossiers", recycled),
            (WAREHOUSE_POOL, live),
            ("gold/ioc_scorecard", finished),
        ):
            assert storage.claim_concurrency_slot(pool, run.run_id, "step").is_claimed
        done = recovery.release_dead_runs(instance)
        assert sorted(done.failed_runs) == sorted([dead.run_id, recycled.run_id])
        assert sorted(done.freed_runs) == sorted([dead.run_id, recycled.run_id, finished.run_id])
        status = {run.run_id: instance.get_run_by_id(run.run_id).status for run in (dead, recycled, live, foreign)}
        assert status == {
            dead.run_id: dg.DagsterRunStatus.FAILURE,
            recycled.run_id: dg.DagsterRunStatus.FAILURE,
            live.run_id: started,
            foreign.run_id: started,  # another machine's run is not judged here
        }
        assert recovery.slot_holders(instance) == {live.run_id}
        storage.free_concurrency_slots_for_run(live.run_id)


@pytest.fixture
def full_bronze(published: Pipeline) -> Iterator[Path]:
    """bronze/dossiers on a small tmpfs holding its files and a filler that leaves a few kilobytes: the
    next dlt copy into it runs out of space. Needs root (mount), as CI has."""
    folder = published.root / "lake" / "bronze" / "dossiers"
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    saved = published.root / "bronze-dossiers-saved"
    shutil.move(folder, saved)
    folder.mkdir()
    size = sum(f.stat().st_size for f in saved.iterdir()) // 1024 + 1024  # KiB: the files and 1 MiB more
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        folder.rmdir()
        shutil.move(saved, folder)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        for file in saved.iterdir():
            shutil.copy2(file, folder / file.name)
        filler = folder / ".filler"
        handle = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(handle, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(handle)
        os.truncate(filler, max(filler.stat().st_size - 2048, 0))
        yield filler
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow  # fault injection: a full disk (tmpfs), and the uninterrupted reference run
def test_a_full_disk_during_the_dlt_copy_fails_clearly_and_leaves_nothing_half_written(
    published: Pipeline, full_bronze: Path, reference: Pipeline
) -> None:
    _deliver(published.landing)
    result = published.run("refresh_public_service")
    assert not result.success
    assert "disk full while loading dossiers" in failure_messages(result)
    assert _leftovers(published) == []  # no half-copied Parquet, no pending package
    full_bronze.unlink()  # space again: the discarded load is taken again, whole
    results = published.refresh()
    assert all(r.success for r in results), failure_messages(results)
    assert published.query(_NEW_IN_SILVER) == reference.query(_NEW_IN_SILVER) != [(0,)]


def test_the_dead_runs_sensor_releases_a_dead_run_under_the_daemon(published: Pipeline) -> None:
    with published.environment(), dg.DagsterInstance.get() as instance:
        tags = {**recovery.run_tags(), recovery.PID_TAG: str(_dead_pid())}
        dead = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED, tags=tags)
        assert instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, dead.run_id, "step").is_claimed
        with dg.build_sensor_context(instance=instance) as context:
            answer = recovery.dead_runs(context)
        assert dead.run_id in answer.skip_message
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert recovery.slot_holders(instance) == set()


def test_only_temp_files_older_than_every_live_run_are_removed(tmp_path: Path) -> None:
    lake, warehouse = tmp_path / "lake", tmp_path / "warehouse" / "ioc.duckdb"
    (lake / "silver" / "procedures").mkdir(parents=True)
    warehouse.parent.mkdir()
    old = [lake / "silver" / "procedures" / ".data.parquet.1a.tmp", Path(f"{warehouse}.2b.building")]
    old.append(Path(f"{old[1]}.wal"))
    kept = [lake / "silver" / "procedures" / "data.parquet", warehouse]
    for path in [*old, *kept]:
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    with dg.DagsterInstance.ephemeral() as instance:
        live = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED, tags=recovery.run_tags())
        recent = Path(f"{warehouse}.3c.building")  # a publish of the live run, building now
        recent.write_bytes(b"x")
        done = recovery.recover(instance, str(lake), str(warehouse))
        assert sorted(done.removed_files) == sorted(map(str, old))
        assert all(p.exists() for p in [*kept, recent]) and not any(p.exists() for p in old)
        assert done.failed_runs == [] and instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
