"""Which engine runs the steps of a run: a setting (`IOC_EXECUTOR`), not a code change.

    IOC_EXECUTOR unset, `in_process`   every step in the run's own process (`make run`, the tests: as always)
    IOC_EXECUTOR=multiprocess          a process per step, on the machine of the run
    IOC_EXECUTOR=dask                  each step a task of the Dask cluster at IOC_DASK_SCHEDULER (tcp://host:8786);
                                       a backfill of partitioned assets: a run per IOC_DASK_PARTITIONS_PER_RUN
                                       partitions (default 1), so partitions run side by side on the workers

    run (daemon, UI, backfill) ──DaskExecutor──► a task per step ──► a worker: `run_step`
                                                                      claims the step's pool slot in the
                                                                      Dagster instance, runs the step, frees it

dagster-dask 0.29.27's own executor fails with distributed 2026.8 on a run whose ops have pools (every run here:
Dask looks into the named tuples it is passed, and the run's `RunOpConcurrency` record refuses, see `StepTask`),
and it runs each step with `execute_plan` on a worker, which claims no pool slot:
the one-writer-per-table rule (policies.py) and the single publish of the warehouse would not hold. Here
each task claims its step's pool in the instance (the same slots every other run claims) before it runs.
A partitioned asset's step claims one slot per partition of the run instead (`<pool>[<partition key>]`,
in key order, so two runs of overlapping ranges cannot deadlock): two runs of different partitions write the table
side by side (their lake paths differ), two runs of one partition never. The steps that need the
warehouse file (policies.WAREHOUSE_HOST: the publish, the report) run only on the worker started with
`--resources warehouse=1`, the machine whose disk holds the warehouse. A step runs once its upstream
steps are done, and is left out or retried as in one process (Dagster's own plan bookkeeping decides in the run's
process); dagster-dask's executor would run it after a failed upstream step and never retry it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import create_execution_plan, execute_plan
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.plan.state import KnownExecutionState
from dagster._core.execution.plan.step import ExecutionStep
from dagster._core.execution.retries import RetryMode
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster._serdes import deserialize_value, serialize_value
from dagster._utils.error import serializable_error_info_from_exc_info

from ioc_pipeline.policies import DASK_RESOURCES_TAG

EXECUTOR = "IOC_EXECUTOR"
SCHEDULER = "IOC_DASK_SCHEDULER"
PARTITIONS_PER_RUN = "IOC_DASK_PARTITIONS_PER_RUN"
ENGINES = ("in_process", "multiprocess", "dask")
CLAIM_POLL_SECONDS = 1.0  # a step waiting for a pool slot asks again this often
RETRY_MODE = RetryMode.ENABLED  # a step's RetryRequested (a gateway that kept failing) retries it
POLL_SECONDS = 0.2  # how often the run looks for finished steps


def engine() -> str:
    """The configured engine (`IOC_EXECUTOR`), `in_process` when unset."""
    name = os.environ.get(EXECUTOR, "").strip().lower() or "in_process"
    if name not in ENGINES:
        raise dg.DagsterInvalidDefinitionError(f"{EXECUTOR}={name!r}: expected one of {', '.join(ENGINES)}")
    return name


def from_environment() -> dg.ExecutorDefinition:
    """The executor of every job, from `IOC_EXECUTOR` (and `IOC_DASK_SCHEDULER` for Dask)."""
    name = engine()
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return dg.multiprocess_executor
    address = os.environ.get(SCHEDULER, "").strip()
    if not address:
        raise dg.DagsterInvalidDefinitionError(f"{EXECUTOR}=dask needs {SCHEDULER} (tcp://host:8786)")
    return dask_executor.configured({"address": address}, name="dask")


def backfill_policy() -> dg.BackfillPolicy | None:
    """The backfill policy of the partitioned assets under this engine: None keeps their own (one run for a
    range); under Dask a run per `IOC_DASK_PARTITIONS_PER_RUN` partitions, which the cluster runs side by side."""
    if engine() != "dask":
        return None
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=int(os.environ.get(PARTITIONS_PER_RUN) or 1))


def with_backfill_policy(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """`assets` with the engine's backfill policy on the partitioned ones (unchanged in process)."""
    policy = backfill_policy()
    if policy is None:
        return assets
    return [a.with_attributes(backfill_policy=policy) if a.partitions_def is not None else a for a in assets]


def chunks(
    partitions: dg.PartitionsDefinition | None, start: str, end: str, instance: dg.DagsterInstance
) -> list[list[str]]:
    """The keys of a range, cut in runs of `IOC_DASK_PARTITIONS_PER_RUN` (the backfill policy's size)."""
    policy = backfill_policy()
    size = (policy.max_partitions_per_run if policy else None) or 0
    keys = keys_in_range(partitions, start, end, instance) if partitions else []
    if not keys or not size:
        return [[start, end]]
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def execute(job_name: str, instance: dg.DagsterInstance, **kwargs: Any) -> dg.JobExecutionResult:
    """One run of a job of the code location with the job's own executor (the configured engine): this process
    orchestrates, the steps run where the executor sends them (`dg.execute_job`)."""
    return dg.execute_job(_reconstructable(job_name), instance, raise_on_error=False, **kwargs)


def execute_side_by_side(
    runs: Sequence[tuple[dg.JobDefinition, dict[str, Any]]], instance: dg.DagsterInstance
) -> list[dg.JobExecutionResult]:
    """Several runs at once (`execute` arguments each), each orchestrated by a process of its own (Dagster's run
    set-up configures Python's logging, which deadlocks when two threads of one process do it at the same time);
    as many at a time as the cluster has worker threads, at least two (one starts while another's step runs)."""
    at_once = min(len(runs), max(2, cluster_threads()))
    with ProcessPoolExecutor(at_once, mp_context=multiprocessing.get_context("spawn")) as processes:
        run_ids = list(processes.map(_execute_run, [job.name for job, _ in runs], [kwargs for _, kwargs in runs]))
    results = []
    for (job, _), run_id in zip(runs, run_ids, strict=True):
        run = instance.get_run_by_id(run_id)
        events = [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event is not None]
        results.append(dg.JobExecutionResult(job, nullcontext(), events, run))  # type: ignore[arg-type]
    return results


def cluster_threads() -> int:
    """The worker threads of the Dask cluster at `IOC_DASK_SCHEDULER` now."""
    from dask.distributed import Client

    with Client(os.environ[SCHEDULER], timeout=60) as client:
        return sum(client.nthreads().values())


def _execute_run(job_name: str, kwargs: dict[str, Any]) -> str:
    with dg.DagsterInstance.get() as instance:
        return execute(job_name, instance, **kwargs).run_id


def _reconstructable(job_name: str) -> ReconstructableJob:
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repository = ReconstructableRepository.for_module("ioc_pipeline.definitions", "defs", working_directory=os.getcwd())
    return repository.get_reconstructable_job(job_name)


# --- the executor -------------------------------------------------------------------------------


@dg.executor(
    name="dask",
    config_schema={"address": dg.Field(dg.StringSource, description="the Dask scheduler, tcp://host:8786")},
    requirements=dg.multiple_process_executor_requirements(),
)
def dask_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Each step a task of an existing Dask cluster, with the step's pool claimed on the worker."""
    return DaskExecutor(str(init_context.executor_config["address"]))


class DaskExecutor(dg.Executor):
    """Dagster's own bookkeeping of a plan (`ActiveExecution`: which step is ready, skipped after a failed or
    blocked upstream step, up for retry) in the run's process; each ready step a task of the cluster."""

    def __init__(self, address: str) -> None:
        self.address = address

    @property
    def retries(self) -> RetryMode:
        return RETRY_MODE

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        import dask.distributed

        job_def = plan_context.job.get_definition()
        run, instance = plan_context.dagster_run, plan_context.instance
        with (
            dask.distributed.Client(self.address) as client,
            ActiveExecution(execution_plan, retry_mode=self.retries) as active,
        ):
            yield DagsterEvent.engine_event(
                plan_context, f"Executing steps on the Dask cluster at {self.address}", EngineEventData()
            )
            running: dict[str, Any] = {}  # step key -> future
            while not active.is_complete or running:
                if active.check_for_interrupts():
                    for future in running.values():
                        future.cancel()
                    active.mark_interrupted()
                    raise DagsterExecutionInterruptedError()
                for step in active.get_steps_to_execute():
                    task = StepTask(
                        plan_context.reconstructable_job,
                        serialize_value(run),
                        dict(plan_context.run_config),
                        step.key,
                        slots(step, job_def, run, instance),
                        serialize_value(instance.get_ref()),
                        serialize_value(active.get_known_state()),
                    )
                    running[step.key] = client.submit(
                        run_step,
                        task,
                        key=f"{run.run_id}.{step.key}.{uuid.uuid4().hex[:8]}",
                        resources=json.loads(step.tags.get(DASK_RESOURCES_TAG, "{}")),
                        pure=False,
                    )
                done = [key for key, future in running.items() if future.done()]
                if not done:
                    yield from active.plan_events_iterator(plan_context)
                    if running or not active.is_complete:
                        time.sleep(POLL_SECONDS)
                    continue
                for key in done:
                    yield from self._events(plan_context, active, key, running.pop(key))
                yield from active.plan_events_iterator(plan_context)

    def _events(
        self, plan_context: PlanOrchestrationContext, active: ActiveExecution, key: str, future: Any
    ) -> Iterator[DagsterEvent]:
        """The step's events from the worker; a task that raised (a worker lost) fails the step."""
        try:
            events = deserialize_value(future.result(), list)
        except Exception:
            error = serializable_error_info_from_exc_info(sys.exc_info())
            step_context = plan_context.for_step(active.get_step_by_key(key))
            events = [self.log_failure_or_retry_event_after_error(step_context, error, active.get_known_state())]
        for event in events:
            yield event
            active.handle_event(event)
        active.verify_complete(plan_context, key)


def run_partition_keys(partitions: dg.PartitionsDefinition, run: DagsterRun, instance: dg.DagsterInstance) -> list[str]:
    """The partition keys a run targets: its partition, or its range resolved by the partitions definition."""
    if PARTITION_NAME_TAG in run.tags:
        return [run.tags[PARTITION_NAME_TAG]]
    start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start is None or end is None:
        return []
    return keys_in_range(partitions, start, end, instance)


def keys_in_range(partitions: dg.PartitionsDefinition, start: str, end: str, instance: dg.DagsterInstance) -> list[str]:
    """The keys from `start` to `end` in the definition's order (dynamic ones: as the instance registered them)."""
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return list(partitions.get_partition_keys_in_range(dg.PartitionKeyRange(start, end)))


def slots(step: ExecutionStep, job_def: dg.JobDefinition, run: DagsterRun, instance: dg.DagsterInstance) -> list[str]:
    """The pool slots the step claims: its pool; for a partitioned asset, one per partition the run targets."""
    pool = step.pool
    if not pool:
        return []
    assets = job_def.asset_layer.get_assets_def_for_node(step.node_handle)
    partitions = assets.partitions_def if assets is not None else None
    keys = run_partition_keys(partitions, run, instance) if partitions is not None else []
    return [f"{pool}[{key}]" for key in sorted(keys)] or [pool]


# --- on the worker ------------------------------------------------------------------------------


@contextmanager
def claimed(instance: dg.DagsterInstance, run: DagsterRun, step_key: str, pools: Sequence[str]) -> Iterator[None]:
    """Hold a slot of each pool (in the given order) in the Dagster instance while the step runs."""
    with InstanceConcurrencyContext(instance, run) as context:
        holders = []
        try:
            for pool in pools:
                holder = f"{step_key}[{pool}]" if len(pools) > 1 else step_key
                while not context.claim(pool, holder):
                    time.sleep(CLAIM_POLL_SECONDS)
                holders.append(holder)
            yield
        finally:
            for holder in holders:
                context.free_step(holder)


@dataclass(frozen=True)
class StepTask:
    """What a worker needs to run one step. One object, Dagster's records serialized: Dask looks into the tuples
    among a task's arguments for other tasks' keys, and a DagsterRun (a named tuple) with pools holds a
    `RunOpConcurrency` record that refuses to be iterated (dagster-dask's executor fails on it)."""

    recon_job: ReconstructableJob
    run: str
    run_config: dict[str, Any]
    step_key: str
    pools: list[str]
    instance_ref: str
    known_state: str


def run_step(task: StepTask) -> str:
    """One step on a Dask worker, its pool slots held while it runs; its events (serialized) go back to the run."""
    run = deserialize_value(task.run, DagsterRun)
    known_state = deserialize_value(task.known_state, KnownExecutionState)
    with dg.DagsterInstance.from_ref(deserialize_value(task.instance_ref, InstanceRef)) as instance:
        job = task.recon_job.get_subset(
            op_selection=run.resolved_op_selection,
            asset_selection=run.asset_selection,
            asset_check_selection=run.asset_check_selection,
        )
        plan = create_execution_plan(
            job, run_config=task.run_config, step_keys_to_execute=[task.step_key], known_state=known_state
        )
        with claimed(instance, run, task.step_key, task.pools):
            # deferred: a RetryRequested ends the task with STEP_UP_FOR_RETRY and the run's process schedules the retry
            # (as Dagster's multiprocess executor does); retried inside the task, the run's bookkeeping would see
            # the success of a step it had already put up for retry
            events = execute_plan(
                plan, job, instance, run, run_config=task.run_config, retry_mode=RETRY_MODE.for_inner_plan()
            )
            return serialize_value(list(events))
