"""The Dask executor (`IOC_EXECUTOR=dask`, ioc_pipeline/executors.py) on a real cluster: a scheduler and two
worker processes started here on 127.0.0.1 (`python -m dask scheduler|worker`), the lake in a bucket of the local
S3 server, a real DAGSTER_HOME. The delivery is two former provinces' (`IOC_PROVINCES=93,94`: Hậu Giang's small
one, Sóc Trăng's sample as of April 2022 only, its older snapshots and dossier months left out to keep the runs
few). `python -m ioc_pipeline.cli run` (what `make run` runs) with only the engine's settings added runs a run per
province partition and a run per dossier month × province, side by side on both workers, and publishes the same
warehouse as a run in one process of the same delivery. Which process ran a step is Dagster's own record: every
event carries the pid of the process that wrote it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import RunFailureReason

from ioc_pipeline import executors
from ioc_pipeline.assets.public_service import MONTHS
from ioc_pipeline.cli import PARTITION_TAG, PROVINCES_JOB
from ioc_pipeline.definitions import build_defs
from ioc_pipeline.policies import WAREHOUSE_POOL
from ioc_pipeline.sample.__main__ import main as write_sample
from ioc_pipeline.sample.cluster import WAREHOUSE_WORKER, Cluster, local_cluster
from ioc_pipeline.sample.s3 import bucket_client
from ioc_pipeline.warehouse import BUILD_TABLE
from tests.conftest import (
    DELIVERED_AGO,
    LOCAL_INSTANCE,
    NETWORK_ATTEMPTS,
    REPO,
    Pipeline,
    failure_messages,
    succeeded,
)

BUCKET = "ioc-dask"
PARTITION_JOB = "dossier_months"
PARTITION_STEP = "silver_dossiers"  # the op of silver/dossiers and quarantine/dossiers (partitioned)
PUBLISH_STEP = "publish__warehouse"
# Compared between the two runs: the published tables of these schemas (ops says when and by which run)
COMPARED_SCHEMAS = ("silver", "gold", "quarantine")
LOAD_ID = "_dlt_load_id"  # when bronze was loaded (quarantined rows keep it): differs between any two loads
CODES = ("93", "94")  # the former provinces delivered: Hậu Giang (small), Sóc Trăng (the sample)
KEPT_MONTH = "202204"  # the delivery of April 2022 only (Sóc Trăng's older snapshots and months left out: fewer runs)
PROVINCIAL_STEPS = ("bronze__", "silver_")  # the steps of the province-partitioned assets


def _lake_env(pipeline: Pipeline, aws: dict[str, str], prefix: str) -> None:
    pipeline.extra_env.update(
        aws,
        IOC_LAKE_DIR=f"s3://{BUCKET}/{prefix}",
        IOC_PROVINCES=",".join(CODES),
        RUNTIME__DLTHUB_TELEMETRY="false",
    )


def _two_provinces(root: Path) -> Pipeline:
    """Each former province's delivery under `<landing>/<code>/`, settled (delivered long ago)."""
    pipeline = Pipeline(root)
    pipeline.home.mkdir(parents=True)
    shutil.copy(LOCAL_INSTANCE, pipeline.home / "dagster.yaml")
    write_sample(["--province", ",".join(CODES), "--out", str(pipeline.landing)])
    for delivered in [p for p in pipeline.landing.rglob("*_*.*") if KEPT_MONTH not in p.name]:
        delivered.unlink()
    delivered = time.time() - DELIVERED_AGO
    for path in pipeline.landing.rglob("*"):
        os.utime(path, (delivered, delivered))
    return pipeline


def _published(pipeline: Pipeline) -> dict[str, list[tuple]]:
    """Every published table of `COMPARED_SCHEMAS`, sorted rows, without the load ids."""
    tables = pipeline.query(
        "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
    )
    return {
        name: sorted(pipeline.query(f"select columns(lambda c: c != '{LOAD_ID}') from {name}"), key=repr)
        for name in (f"{schema}.{table}" for schema, table in tables if schema in COMPARED_SCHEMAS)
        if name != BUILD_TABLE
    }


@dataclass
class StepRun:
    run_id: str
    job: str
    partition: str | None  # the former province of a province job's run
    step: str
    pid: int
    started: float
    ended: float


def _overlap(steps: list[StepRun], apart: str = "run_id") -> bool:
    """Two of `steps`, of different runs (or `apart`: different province partitions), ran at the same time in
    different processes."""
    return any(
        getattr(a, apart) != getattr(b, apart) and a.pid != b.pid and a.started < b.ended and b.started < a.ended
        for a in steps
        for b in steps
    )


def _steps(home: Path) -> list[StepRun]:
    """Every step of every run of the instance: the pid that started it, when it started and ended."""
    found = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:
            for run in instance.get_runs():
                starts, ends = {}, {}
                for entry in instance.all_logs(run.run_id):
                    event = entry.dagster_event
                    if event is None or event.step_key is None:
                        continue
                    if event.event_type_value == "STEP_START":
                        starts[event.step_key] = (event.pid, entry.timestamp)
                    elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                        ends[event.step_key] = entry.timestamp
                partition = run.tags.get(PARTITION_TAG)
                for step, (pid, started) in starts.items():
                    ended = ends.get(step, started)
                    found.append(StepRun(run.run_id, run.job_name, partition, step, pid, started, ended))
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The two provinces' delivery run in one process (the default executor), the lake a local folder (tests/test_s3.py
    runs one process against the bucket; a local lake here spares the S3 server half the test's requests)."""
    pipeline = _two_provinces(tmp_path_factory.mktemp("reference") / "data")
    pipeline.extra_env.update(IOC_PROVINCES=",".join(CODES))
    results = pipeline.refresh()
    assert succeeded(results), failure_messages(results)
    return pipeline


@pytest.fixture(scope="module")
def distributed(
    reference: Pipeline, s3_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Pipeline, Cluster, subprocess.CompletedProcess]:
    """The same delivery (the files copied with their times) run by `cli run` on a two-worker Dask cluster, the lake
    in the bucket."""
    bucket_client(s3_server).mkdir(BUCKET)
    root = tmp_path_factory.mktemp("distributed") / "data"
    pipeline = Pipeline(root)
    pipeline.home.mkdir(parents=True)
    shutil.copy(reference.home / "dagster.yaml", pipeline.home / "dagster.yaml")
    shutil.copytree(reference.landing, pipeline.landing)  # copy2: the same modification times (the extraction)
    _lake_env(pipeline, s3_server, "distributed")
    logs = tmp_path_factory.mktemp("dask-logs")
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(root)), **pipeline.env()}
    with local_cluster(base, logs, cwd=root) as cluster:
        environment = {**base, "IOC_EXECUTOR": "dask", "IOC_DASK_SCHEDULER": cluster.address}
        attempts = len(NETWORK_ATTEMPTS)
        done = subprocess.run(
            [sys.executable, "-m", "ioc_pipeline.cli", "run"],
            env=environment,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert NETWORK_ATTEMPTS[attempts:] == []
        assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:] + cluster.log_text()
    return pipeline, cluster, done


@pytest.mark.slow  # a Dask cluster, an S3 server and two whole pipeline runs
def test_partitions_run_side_by_side_on_two_worker_processes(distributed) -> None:
    pipeline, cluster, done = distributed
    steps = _steps(pipeline.home)
    workers = set(cluster.workers.values())
    assert steps and {s.pid for s in steps} <= workers, done.stdout[-3000:]  # no step ran in the run's process
    # the province partitions: a run of the province job per former province, side by side on both workers
    provincial = [s for s in steps if s.job == PROVINCES_JOB and s.step.startswith(PROVINCIAL_STEPS)]
    assert {s.partition for s in provincial} == set(CODES)
    assert len({(s.run_id, s.partition) for s in provincial}) == len(CODES)  # one run per province
    assert {s.pid for s in provincial} == workers  # the province partitions' steps went to both workers
    assert _overlap(provincial, apart="partition")  # two provinces' steps at the same time, on different workers
    dossiers = {s.partition: s.pid for s in provincial if s.step == "bronze__dossiers"}
    assert sorted(dossiers) == sorted(CODES)  # each province's dossiers loaded by its own partition's step
    # the month partitions (a month of a former province each): a run per partition, side by side on both workers
    months = [s for s in steps if s.job == PARTITION_JOB and s.step == PARTITION_STEP]
    assert len(months) >= 2 and len({s.run_id for s in months}) == len(months)  # a run per month × province
    assert {s.pid for s in months} == workers  # the months went to both workers
    assert _overlap(months)  # two of them ran at the same time on different workers
    # the feeds' dlt loads went to both workers too, one IOC_DLT_DIR between them (a pipeline folder per feed and
    # province)
    assert {s.pid for s in steps if s.step.startswith("bronze__")} == workers
    # the warehouse is written on the worker with the warehouse resource only
    publishes = [s for s in steps if s.step == PUBLISH_STEP]
    assert publishes and {s.pid for s in publishes} == {cluster.workers[WAREHOUSE_WORKER]}
    # the workers claimed the pools in the instance: one per partition for the partitioned step, the warehouse's
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(pipeline.home))
        with dg.DagsterInstance.get() as instance:
            pools = instance.event_log_storage.get_concurrency_keys()
            months = instance.get_dynamic_partitions(MONTHS.name)
    # (a partition is a month of a former province: `2022-04|94`; a province partition `bronze/dossiers[93]`)
    partitions = {f"silver/dossiers[{m}|{code}]" for m in months for code in CODES}
    assert len(months) >= 2 and partitions | {f"bronze/dossiers[{code}]" for code in CODES} | {WAREHOUSE_POOL} <= pools
    # each month of each province in its own lake partition of the bucket
    silver = bucket_client(pipeline.extra_env).glob(f"{BUCKET}/distributed/silver/dossiers/*/*/*.parquet")
    found = {tuple(p.split("/")[-3:-1]) for p in silver}
    assert {code for _, code in found} == set(CODES) and {m for m, _ in found} == {f"month={m}" for m in months}
    bronze = bucket_client(pipeline.extra_env).glob(f"{BUCKET}/distributed/bronze/dossiers/*/*.parquet")
    assert {p.split("/")[-2] for p in bronze} == set(CODES)  # each province's dlt loads in its own folder
    # and its own dlt state in the bucket: files named by the pipeline (`ioc_dossiers_93__<load id>__<hash>`)
    states = bucket_client(pipeline.extra_env).ls(f"{BUCKET}/distributed/bronze/_dlt_pipeline_state")
    assert {f"ioc_dossiers_{code}" for code in CODES} <= {p.rsplit("/", 1)[-1].split("__")[0] for p in states}


@pytest.mark.slow  # a Dask cluster, an S3 server and two whole pipeline runs
def test_the_distributed_run_publishes_what_one_process_publishes(reference: Pipeline, distributed) -> None:
    pipeline, _, _ = distributed
    assert pipeline.scorecard() == reference.scorecard()
    scopes = {
        (code, scope) for code, scope in pipeline.query("select province_code, province_scope from gold.ioc_scorecard")
    }
    assert scopes == {("93", "former_province"), ("94", "former_province"), ("92", "merged_city")}
    ours, theirs = _published(pipeline), _published(reference)
    assert sorted(ours) == sorted(theirs)
    for table in theirs:
        assert ours[table] == theirs[table], table


def test_the_engine_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset: in process, the partitioned assets keep their one-run backfills (`make run` as always); `dask` needs
    the scheduler's address and backfills a run per partition; anything else is refused by name."""
    for key in (executors.EXECUTOR, executors.SCHEDULER, executors.PARTITIONS_PER_RUN):
        monkeypatch.delenv(key, raising=False)
    assert executors.from_environment() is dg.in_process_executor
    assert executors.backfill_policy() is None
    assert build_defs().executor is dg.in_process_executor
    monkeypatch.setenv(executors.EXECUTOR, "dask")
    with pytest.raises(dg.DagsterInvalidDefinitionError, match=executors.SCHEDULER):
        executors.from_environment()
    monkeypatch.setenv(executors.SCHEDULER, "tcp://127.0.0.1:8786")
    assert executors.from_environment().name == "dask"
    assert executors.backfill_policy() == dg.BackfillPolicy.multi_run(1)
    monkeypatch.setenv(executors.PARTITIONS_PER_RUN, "3")
    assert executors.backfill_policy() == dg.BackfillPolicy.multi_run(3)
    monkeypatch.setenv(executors.EXECUTOR, "celery")
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="celery"):
        executors.engine()


# --- the executor's own promises, on a job of three ops -------------------------------------------------------


@dg.op
def fails() -> int:
    raise RuntimeError("this step fails on purpose")


@dg.op
def after_the_failure(value: int) -> int:
    return value


@dg.op
def retried_once(context) -> int:  # noqa: ANN001 - Dagster refuses a postponed (text) annotation of `context`
    if context.retry_number == 0:
        raise dg.RetryRequested(max_retries=1, seconds_to_wait=0.1)  # as retry_network_failure does
    return os.getpid()


@dg.job(executor_def=executors.dask_executor)
def promises() -> None:
    after_the_failure(fails())
    retried_once()


@pytest.mark.slow  # a Dask cluster
def test_a_step_after_a_failed_one_never_starts_and_a_retry_is_honoured(tmp_path: Path) -> None:
    """dagster-dask's executor runs a step whose upstream step failed and never retries; ours keeps Dagster's
    plan bookkeeping in the run's process: the step after the failure never starts, the retried one is retried."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.local.yaml", home / "dagster.yaml")
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), "DAGSTER_HOME": str(home)}
    with (
        local_cluster(env, tmp_path / "logs", cwd=REPO) as cluster,  # from the repository: `tests` importable
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:
            result = dg.execute_job(
                dg.reconstructable(promises),
                instance,
                run_config={"execution": {"config": {"address": cluster.address}}},
            )
            events = [e for e in result.all_events if e.step_key]
    kinds = {(e.step_key, e.event_type_value) for e in events}
    assert ("fails", "STEP_FAILURE") in kinds
    assert not [kind for step, kind in kinds if step == "after_the_failure"]  # abandoned: never started
    assert ("retried_once", "STEP_UP_FOR_RETRY") in kinds and ("retried_once", "STEP_SUCCESS") in kinds
    assert {e.pid for e in events if e.event_type_value == "STEP_START"} <= set(cluster.workers.values())
    # the run fails for its failed step, not for an engine error: a retry done inside the task would show the run
    # the success of a step it had put up for retry (the race CI met when `retried_once` finished first)
    retried = [
        e.event_type_value for e in events if e.step_key == "retried_once" and "RESOURCE" not in e.event_type_value
    ]
    assert retried[:2] == ["STEP_START", "STEP_UP_FOR_RETRY"] and retried[-1] == "STEP_SUCCESS"
    assert not result.success
    failure = result.get_run_failure_event().event_specific_data
    assert failure.failure_reason == RunFailureReason.STEP_FAILURE, failure.error  # the failed step, not the engine
