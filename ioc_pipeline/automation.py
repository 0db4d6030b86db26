"""Running by itself: the nightly refresh, delivery sensors, freshness, alerts, jobs per domain.

    01:00 Asia/Ho_Chi_Minh ──nightly_refresh──► refresh_all (every asset; monthly partitions: this and last month)
    landing/<feed files>, complete ──<table>_delivery sensor──► refresh_<group> (the feed's group and downstream)
    bronze rows of older months changed ──<name> sensor──► a partitioned job over those months (one run per range)
    gold/* older than 26 h ──freshness checks + gold_freshness sensor──► stale shown in the UI
    a run fails ──run_failure_alert──► alerts.py (lake ops/alerts, log, webhook)

A later feed plugs in with its line in `feeds.DOMAINS`: its delivery sensor (`DELIVERIES`), its job,
its place in the nightly refresh and the freshness checks of its gold assets follow from it and from
the asset graph. A run in which some step failed (a feed's bug, a gateway down) skips what is
downstream of the failure, the publish included: `publish_after_failure` then runs the `publish`
job (scorecard, feed status, warehouse) from every feed's last good lake state, so one feed's
failure never keeps the others unpublished.

A group with monthly-partitioned assets gets partitioned runs: the nightly one covers the current
and previous month in one run (a partition range: its partitioned assets need
`backfill_policy=dg.BackfillPolicy.single_run()` and read `context.partition_keys`), a delivered
`…_YYYYMM` file requests its own month. Months that a delivery or the nightly touched beyond those
(a late update of a dossier received months ago) are caught up by a `changed_partitions_sensor`.
"""

import hashlib
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from ioc_pipeline.alerts import Alert, raise_alert
from ioc_pipeline.feeds import DOMAINS
from ioc_pipeline.resources import AlertsResource, LakeResource, LandingResource
from ioc_pipeline.sources.files import TEMPORARY_NAMES, DeliveryError, Feed, is_temporary, snapshot_of  # noqa: F401

TIMEZONE = "Asia/Ho_Chi_Minh"
NIGHTLY_HOUR = 1
NIGHTLY_CRON = f"0 {NIGHTLY_HOUR} * * *"
FRESHNESS_WINDOW = timedelta(hours=26)  # a nightly refresh plus two hours of slack
DELIVERY_INTERVAL_SECONDS = 60  # a file must look the same on two evaluations this far apart
CHANGED_INTERVAL_SECONDS = 120
FRESHNESS_INTERVAL_SECONDS = 600
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
# The freshness checks and their sensor are built with functions Dagster calls superseded (kept on purpose, see
# `build`): its warning at every start said nothing new (importing Great Expectations used to swallow it).
warnings.filterwarnings("ignore", category=dg.SupersessionWarning, module=r"ioc_pipeline\.automation")


@dataclass(frozen=True)
class Delivery:
    """A landing feed watched by a sensor: a new or changed file runs the feed's asset group and
    everything downstream of it (`refresh_<group>`)."""

    feed: Feed
    group: str

    @property
    def sensor_name(self) -> str:
        return f"{self.feed.table}_delivery"


# One per file feed of the landing-zone contract (the dossiers: the export, when the API is not configured).
DELIVERIES: list[Delivery] = [Delivery(spec.source, domain.group) for domain in DOMAINS for spec in domain.feeds]
PUBLISH_GROUPS = ("scorecard", "ops", "publish", "report")
PUBLISH_KEY = dg.AssetKey(["publish", "warehouse"])


@dataclass
class Automation:
    """What `build` derives from the assets: everything definitions.py adds besides them."""

    assets: list[dg.AssetsDefinition]
    jobs: list[UnresolvedAssetJobDefinition]
    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]
    asset_checks: list[dg.AssetChecksDefinition] = field(default_factory=list)


# --- partitions -------------------------------------------------------------------------------


def time_partitions(assets: Sequence[dg.AssetsDefinition]) -> dg.TimeWindowPartitionsDefinition | None:
    """The one time-window partitioning among `assets` (a Dagster job can have only one)."""
    found = {a.partitions_def for a in assets if a.partitions_def is not None}
    if not found:
        return None
    if len(found) > 1 or not isinstance(next(iter(found)), dg.TimeWindowPartitionsDefinition):
        raise dg.DagsterInvalidDefinitionError(
            f"the refresh jobs support one time-window partitioning, found: {', '.join(map(str, found))}"
        )
    return cast(dg.TimeWindowPartitionsDefinition, next(iter(found)))


def recent_partitions(partitions: dg.TimeWindowPartitionsDefinition, when: datetime) -> list[str]:
    """The partitions (months) that hold `when` and the one before it, as far as they exist at `when`."""
    existing = set(partitions.get_partition_keys(current_time=when))
    current = partitions.get_partition_key_for_timestamp(when.timestamp())
    window = partitions.time_window_for_partition_key(current)
    previous = partitions.get_partition_key_for_timestamp((window.start - timedelta(seconds=1)).timestamp())
    return [key for key in (previous, current) if key in existing]


def range_tags(keys: Sequence[str]) -> dict[str, str]:
    return {RANGE_START: keys[0], RANGE_END: keys[-1]} if keys else {}


def recent_range_tags(job: dg.JobDefinition, when: datetime) -> dict[str, str]:
    """Tags for a manual run of `job` now: the nightly's two months when the job is partitioned
    (a partitioned job refuses to run without them), nothing otherwise."""
    partitions = job.partitions_def
    if not isinstance(partitions, dg.TimeWindowPartitionsDefinition):
        return {}
    return range_tags(recent_partitions(partitions, when))


# --- schedule ---------------------------------------------------------------------------------


def nightly_schedule(job: UnresolvedAssetJobDefinition, partitions: dg.TimeWindowPartitionsDefinition | None):
    @dg.schedule(
        name="nightly_refresh",
        cron_schedule=NIGHTLY_CRON,
        execution_timezone=TIMEZONE,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Every asset at {NIGHTLY_HOUR:02d}:00 {TIMEZONE}; monthly partitions: this and last month.",
    )
    def nightly_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        when = context.scheduled_execution_time
        local = when.astimezone(ZoneInfo(TIMEZONE)) if when else None
        if local is None or (local.hour, local.minute) != (NIGHTLY_HOUR, 0):
            return dg.SkipReason(f"not a nightly tick ({local}): the refresh runs at {NIGHTLY_CRON} {TIMEZONE}")
        tags = {"ioc/trigger": "nightly"}
        if partitions is not None:
            keys = recent_partitions(partitions, when)
            if not keys:
                return dg.SkipReason(f"no partition of {partitions} exists yet at {local}")
            tags |= range_tags(keys)
        return dg.RunRequest(run_key=f"nightly-{local:%Y-%m-%d}", tags=tags)

    return nightly_refresh


# --- delivery sensors -------------------------------------------------------------------------


def delivery_sensor(
    delivery: Delivery, job: UnresolvedAssetJobDefinition, partitions: dg.TimeWindowPartitionsDefinition | None
) -> dg.SensorDefinition:
    """One run request per batch of complete new or changed files; each file version picked once.

    Cursor: `picked` (path → size:mtime already requested) and `pending` (path → size:mtime seen
    on the previous evaluation). A file is complete when it looks the same on two evaluations. On
    its very first evaluation (no cursor: a new instance, e.g. `make dev` after `make run`) a file
    not changed since the feed's last bronze run started counts as picked: that run loaded it.
    """
    feed = delivery.feed

    @dg.sensor(
        name=delivery.sensor_name,
        job=job,
        minimum_interval_seconds=DELIVERY_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New or changed files under {', '.join(feed.patterns)} run {job.name}, once each, when complete.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, landing: LandingResource
    ) -> Iterator[dg.RunRequest | dg.SkipReason]:
        state = json.loads(context.cursor) if context.cursor else {}
        picked: dict[str, str] = state.get("picked", {})
        loaded_before = None if context.cursor else _last_load_started(context.instance, feed)
        previous: dict[str, str] = state.get("pending", {})
        pending: dict[str, str] = {}
        ready: list[str] = []
        for file in landing.landing().matching(feed.patterns):
            if is_temporary(file.path):
                continue
            signature = f"{file.size}:{file.modified}"
            if picked.get(file.path) == signature:
                continue
            if loaded_before is not None and file.modified < loaded_before:
                picked[file.path] = signature
                continue
            if previous.get(file.path) == signature:
                ready.append(file.path)
                picked[file.path] = signature
            else:
                pending[file.path] = signature  # new, or still changing: look again next time
        context.update_cursor(json.dumps({"picked": picked, "pending": pending}, sort_keys=True))
        if not ready:
            waiting = f"; waiting for {len(pending)} file(s) to stop changing" if pending else ""
            yield dg.SkipReason(f"no new complete file{waiting}")
            return
        signatures = "\n".join(f"{path}={picked[path]}" for path in ready)
        yield dg.RunRequest(
            run_key=f"{feed.table}:{hashlib.sha256(signatures.encode()).hexdigest()[:16]}",
            tags={
                "ioc/trigger": "delivery",
                "ioc/feed": feed.table,
                "ioc/files": _files_tag(ready),
                **_partition_range(ready, partitions),
            },
        )

    return _sensor


def _last_load_started(instance: dg.DagsterInstance, feed: Feed) -> float | None:
    """When the run that last materialized the feed's bronze started (None: never loaded)."""
    event = instance.get_latest_materialization_event(dg.AssetKey(["bronze", feed.table]))
    record = instance.get_run_record_by_id(event.run_id) if event else None
    return record.start_time if record and record.start_time else None


def _partition_range(files: list[str], partitions: dg.TimeWindowPartitionsDefinition | None) -> dict[str, str]:
    """The range of partitions from the earliest to the latest snapshot date of `files` (one run:
    the partitioned assets take it as a single-run backfill); none when the job is not partitioned."""
    if partitions is None:
        return {}
    keys = set()
    for path in files:
        try:
            snapshot = datetime.fromisoformat(snapshot_of(path)).replace(tzinfo=ZoneInfo(partitions.timezone))
        except DeliveryError:
            continue  # no date in the name: the run's bronze step refuses it and says why
        keys.add(partitions.get_partition_key_for_timestamp(snapshot.timestamp()))
    if not keys:  # no dated file at all: the latest month, so that the run can start and say why
        keys.add(cast(str, partitions.get_last_partition_key()))
    ordered = sorted(keys, key=partitions.get_partition_keys().index)
    return range_tags([ordered[0], ordered[-1]])


def _files_tag(files: list[str], limit: int = 200) -> str:
    text = ", ".join(files)
    return text if len(text) <= limit else f"{text[: limit - 20]}… ({len(files)} files)"


# --- changed partitions -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangedPartitions:
    """Partitions of `job` that an append-only upstream (`watched`) changed after they were last built.

    `changed(instance)` names them (e.g. from the months each bronze load reports), `ranges` groups
    them into contiguous (first, last) ranges: one single-run backfill each."""

    name: str
    job: UnresolvedAssetJobDefinition
    watched: dg.AssetKey
    changed: Callable[[dg.DagsterInstance], list[str]]
    ranges: Callable[[list[str]], list[tuple[str, str]]]


@dataclass(frozen=True)
class PartitionedFeed:
    """A feed whose silver is partitioned (the dossier months), declared by its asset module as
    `PARTITIONED`: the job that rebuilds a range of its partitions and what is downstream of them, and
    how to find the partitions its loads changed. definitions.py and the CLI read it; neither names the feed."""

    job_name: str
    assets: dg.AssetSelection  # the partitioned assets
    partitions: dg.PartitionsDefinition
    watched: dg.AssetKey  # the append-only upstream whose loads change partitions
    changed: Callable[[dg.DagsterInstance], list[str]]
    ranges: Callable[[list[str]], list[tuple[str, str]]]
    sensor_name: str
    description: str = ""

    def job(self) -> UnresolvedAssetJobDefinition:
        return dg.define_asset_job(
            self.job_name,
            selection=self.assets.downstream(),
            partitions_def=self.partitions,
            description=self.description,
        )

    def changed_sensor(self, job: UnresolvedAssetJobDefinition) -> ChangedPartitions:
        return ChangedPartitions(self.sensor_name, job, self.watched, self.changed, self.ranges)


def changed_partitions_sensor(spec: ChangedPartitions, writers: dict[str, set[dg.AssetKey]]) -> dg.SensorDefinition:
    """Requests a run per range of changed partitions, once per state of `watched`; waits while a
    run that could build them (`writers`: job name → its assets) is still queued or running, so a
    delivery's own run is not duplicated."""
    partitioned = writers[spec.job.name]

    @dg.sensor(
        name=spec.name,
        job=spec.job,
        minimum_interval_seconds=CHANGED_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Partitions whose {spec.watched.to_user_string()} rows changed since they were built "
        f"run {spec.job.name}, one run per range of them.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
        instance = context.instance
        busy = [
            record.dagster_run.run_id
            for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES))
            if (record.dagster_run.asset_selection or writers.get(record.dagster_run.job_name, set())) & partitioned
        ]
        if busy:
            yield dg.SkipReason(f"waiting for run(s) {', '.join(b[:8] for b in busy)} to finish")
            return
        changed = spec.changed(instance)
        if not changed:
            yield dg.SkipReason("every partition is up to date")
            return
        latest = instance.fetch_materializations(spec.watched, limit=1).records
        version = latest[0].storage_id if latest else 0
        for first, last in spec.ranges(changed):
            yield dg.RunRequest(
                run_key=f"{spec.name}:{first}..{last}@{version}",
                tags={**range_tags([first, last]), "ioc/trigger": "changed_partitions"},
            )

    return _sensor


# --- failure alerts ---------------------------------------------------------------------------


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    description="Records every failed run in ops/alerts, logs it, and posts it to IOC_ALERT_WEBHOOK_URL when set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, lake: LakeResource, alerts: AlertsResource) -> None:
    steps = context.get_step_failure_events()
    messages = [f"{event.step_key}: {_error_message(event)}" for event in steps]
    alert = Alert(
        kind="run_failure",
        job_name=context.dagster_run.job_name,
        run_id=context.dagster_run.run_id,
        message="\n".join(messages) or (context.failure_event.message or "the run failed"),
        failed_steps=[event.step_key for event in steps if event.step_key],
    )
    raise_alert(lake.lake(), alert, alerts.webhook_url or None)
    context.log.error(f"{alert.text()} [webhook: {alert.webhook_status}]")


def publish_after_failure_sensor(publish_job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """A failed run that was to publish the warehouse but did not (a step upstream of it failed) is
    followed by a `publish` run: every other feed's new data reaches the warehouse all the same."""

    @dg.run_failure_sensor(
        name="publish_after_failure",
        request_job=publish_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="When a run fails before its publish step, runs the publish job (scorecard, feed status, "
        "warehouse) from every feed's last good data.",
    )
    def _sensor(context: dg.RunFailureSensorContext) -> dg.RunRequest | dg.SkipReason:
        run = context.dagster_run
        if run.job_name == publish_job.name:
            return dg.SkipReason("the publish run itself failed: the alert says why")
        plan = (
            context.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            if run.execution_plan_snapshot_id
            else None
        )
        keys = {key for step in (plan.steps if plan else []) for key in _step_asset_keys(step)}
        if PUBLISH_KEY not in keys:
            return dg.SkipReason(f"run {run.run_id[:8]} was not to publish the warehouse")
        latest = context.instance.get_latest_materialization_event(PUBLISH_KEY)
        if latest is not None and latest.run_id == run.run_id:
            return dg.SkipReason(f"run {run.run_id[:8]} published the warehouse before it failed")
        return dg.RunRequest(run_key=f"publish-after:{run.run_id}", tags={"ioc/trigger": "publish_after_failure"})

    return _sensor


def _step_asset_keys(step: object) -> list[dg.AssetKey]:
    keys = []
    for output in getattr(step, "outputs", []):
        handle = getattr(getattr(output, "properties", None), "asset_key", None)
        if handle is not None:
            keys.append(handle)
    return keys


def _error_message(event: dg.DagsterEvent) -> str:
    error = getattr(event.event_specific_data, "error", None)
    return (error.message if error else event.message or "failed").strip()


# --- building it all --------------------------------------------------------------------------


def gold_keys(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetKey]:
    return sorted({key for a in assets for key in a.keys if key.path[0] == "gold"}, key=lambda k: tuple(k.path))


def groups(assets: Sequence[dg.AssetsDefinition]) -> list[str]:
    return sorted({group for a in assets for group in a.group_names_by_key.values()})


def freshness_policy(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """Gold assets with a 26-hour freshness policy: the UI shows each one's state (the daemon
    evaluates it when dagster.yaml has `freshness: enabled: true`)."""
    policy = dg.FreshnessPolicy.time_window(fail_window=FRESHNESS_WINDOW)
    stamp: Callable[[dg.AssetSpec], dg.AssetSpec] = lambda spec: (  # noqa: E731
        dg.apply_freshness_policy(spec, policy) if spec.key.path[0] == "gold" else spec
    )
    return [a.map_asset_specs(stamp) if any(k.path[0] == "gold" for k in a.keys) else a for a in assets]


def build(
    assets: Sequence[dg.AssetsDefinition],
    deliveries: Sequence[Delivery] = DELIVERIES,
    extra_jobs: Sequence[UnresolvedAssetJobDefinition] = (),
    changed: Sequence[ChangedPartitions] = (),
) -> Automation:
    """Jobs, schedule, sensors and freshness checks for these assets.

    `refresh_all` is every asset (partitioned like the partitioned ones, if any: a run then takes a
    range of them and the other assets once); `extra_jobs` are added as they are, and each of
    `changed` becomes a sensor that catches up partitions changed outside the nightly's range."""
    partitions = time_partitions(assets)
    gold = gold_keys(assets)
    checks = (
        list(dg.build_last_update_freshness_checks(assets=gold, lower_bound_delta=FRESHNESS_WINDOW)) if gold else []
    )
    refresh_all = dg.define_asset_job(
        "refresh_all",
        selection=dg.AssetSelection.all(),
        partitions_def=partitions,
        description="Every asset, with its checks (the nightly refresh)"
        + (": for a range of months of the partitioned ones, the others once." if partitions else "."),
    )
    domain_jobs = {
        group: dg.define_asset_job(
            f"refresh_{group}",
            selection=dg.AssetSelection.groups(group).downstream(),
            description=f"The {group} group and everything downstream of it (scorecard, warehouse).",
        )
        for group in groups(assets)
    }
    publish_job = dg.define_asset_job(
        "publish",
        selection=dg.AssetSelection.groups(*[g for g in PUBLISH_GROUPS if g in groups(assets)]),
        description="The scorecard, the feed status and the warehouse from every feed's last good lake state "
        "(after a run that failed before publishing).",
    )
    jobs = [refresh_all, *extra_jobs, *domain_jobs.values(), publish_job]
    sensors = [run_failure_alert, publish_after_failure_sensor(publish_job)]
    for delivery in deliveries:
        if delivery.group not in domain_jobs:
            raise dg.DagsterInvalidDefinitionError(f"{delivery.sensor_name}: no asset group {delivery.group!r}")
        members = [a for a in assets if delivery.group in a.group_names_by_key.values()]
        sensors.append(delivery_sensor(delivery, domain_jobs[delivery.group], time_partitions(members)))
    if changed:
        writers = {job.name: set(job.selection.resolve(assets)) for job in jobs}
        sensors.extend(changed_partitions_sensor(spec, writers) for spec in changed)
    if checks:
        sensors.append(
            dg.build_sensor_for_freshness_checks(
                freshness_checks=checks,
                name="gold_freshness",
                minimum_interval_seconds=FRESHNESS_INTERVAL_SECONDS,
                default_status=dg.DefaultSensorStatus.RUNNING,
            )
        )
    freshness_jobs = (
        [
            dg.define_asset_job(
                "check_gold_freshness",
                selection=dg.AssetSelection.checks(*checks),
                description=f"Only the freshness checks of the gold assets (stale after {FRESHNESS_WINDOW}).",
            )
        ]
        if checks
        else []
    )
    return Automation(
        assets=freshness_policy(assets),
        jobs=[*jobs, *freshness_jobs],
        schedules=[nightly_schedule(refresh_all, partitions)],
        sensors=sensors,
        asset_checks=checks,
    )
