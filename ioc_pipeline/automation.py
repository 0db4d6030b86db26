"""Running by itself: the nightly refresh, delivery sensors, freshness, alerts, jobs per domain.

    01:00 Asia/Ho_Chi_Minh ──nightly_refresh──► refresh_all (every asset but the provinces' partitions; month
                              partitions: this and last month, of every former province)
                           ──nightly_provinces──► refresh_provinces, a run per former province (and downstream)
    landing/<feed files>, complete ──<table>_delivery sensor──► refresh_<group> (the feed's group and downstream;
                              a run per former province that delivered, its partition)
    bronze months new or changed ──<name> sensor──► registers new months, a partitioned job per range of changed ones
    gold/* older than 26 h ──freshness checks + gold_freshness sensor──► stale shown in the UI
    a run fails ──run_failure_alert──► alerts.py (lake ops/alerts, log, webhook)

A later feed plugs in with its line in `feeds.DOMAINS`: its delivery sensor (`DELIVERIES`), its job,
its place in the nightly refresh and the freshness checks of its gold assets follow from it and from
the asset graph. A run in which some step failed (a feed's bug, a gateway down) skips what is
downstream of the failure, the publish included: `publish_after_failure` then runs the `publish`
job (scorecard, feed status, warehouse) from every feed's last good lake state, so one feed's
failure never keeps the others unpublished.

A group with month-partitioned assets gets partitioned runs. Its partitions are the months it delivered
(a `DynamicPartitionsDefinition` whose keys `YYYY-MM` are registered as months arrive, so a month without
any delivery is never shown as missing): the nightly run covers the delivered ones among the current and
previous month in one run (a partition range: its partitioned assets need
`backfill_policy=dg.BackfillPolicy.single_run()` and read `context.partition_keys`), a delivered
`…_YYYYMM` file requests its own month when that month was delivered before. A month a load brings for
the first time, and months that a delivery or the nightly touched beyond those (a late update of a
dossier received months ago), are registered and caught up by a `changed_partitions_sensor`.

Dagster keeps dynamic keys in the order they were added and resolves a range by that order, so a month
delivered after newer ones sits after them: `partition_ranges` never lets a range span that gap. Months ×
former provinces (the dossiers, `MultiPartitionsDefinition`) run as a rectangle: the range of months, of every
province (`month_range_tags`). The provinces alone (static, the feeds' bronze and the snapshot feeds' silver)
are another job's, `refresh_provinces`: Dagster runs one partitions definition per run.
"""

import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from ioc_pipeline import provinces
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
PROVINCES_JOB = "refresh_provinces"


@dataclass
class Automation:
    """What `build` derives from the assets: everything definitions.py adds besides them."""

    assets: list[dg.AssetsDefinition]
    jobs: list[UnresolvedAssetJobDefinition]
    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]
    asset_checks: list[dg.AssetChecksDefinition] = field(default_factory=list)


# --- partitions -------------------------------------------------------------------------------

# A partitioned feed's partitions are the months it delivered, as dynamic keys `YYYY-MM` registered in the
# Dagster instance (in the order they were first delivered): a month without any delivery is no partition,
# so the UI never shows it as missing work.
MONTH_FORMAT = "%Y-%m"
MONTH_DIMENSION = "month"  # of a partitioning by months × former provinces (provinces.PROVINCE_DIMENSION)


MonthPartitions = dg.DynamicPartitionsDefinition | dg.MultiPartitionsDefinition


def month_partitions(assets: Sequence[dg.AssetsDefinition]) -> MonthPartitions | None:
    """The one month partitioning among `assets` (a Dagster job can have only one): dynamic months, or months ×
    former provinces (the dossiers); the province partitions alone (static) are another job's."""
    found = {a.partitions_def for a in assets if a.partitions_def is not None}
    found -= {p for p in found if isinstance(p, dg.StaticPartitionsDefinition)}
    if not found:
        return None
    if len(found) > 1 or months_of(next(iter(found))) is None:
        raise dg.DagsterInvalidDefinitionError(
            f"the refresh jobs support one partitioning, dynamic months: found {', '.join(map(str, found))}"
        )
    return cast(MonthPartitions, next(iter(found)))


def months_of(partitions: dg.PartitionsDefinition | None) -> dg.DynamicPartitionsDefinition | None:
    """The dynamic months of a job's partitions: themselves, or the month dimension of months × provinces."""
    if isinstance(partitions, dg.MultiPartitionsDefinition):
        if MONTH_DIMENSION not in partitions.partition_dimension_names:
            return None
        partitions = partitions.get_partitions_def_for_dimension(MONTH_DIMENSION)
    return partitions if isinstance(partitions, dg.DynamicPartitionsDefinition) else None


def month_range_tags(partitions: dg.PartitionsDefinition | None, first: str, last: str) -> dict[str, str]:
    """Tags of one run over the months `first` to `last`: of a months × provinces job, every former province of
    them (a rectangle of the two dimensions: `2022-01|92` to `2022-04|94`; the provinces of `IOC_PROVINCES`)."""
    if isinstance(partitions, dg.MultiPartitionsDefinition):
        codes = provinces.codes()
        first = str(dg.MultiPartitionKey({MONTH_DIMENSION: first, provinces.PROVINCE_DIMENSION: codes[0]}))
        last = str(dg.MultiPartitionKey({MONTH_DIMENSION: last, provinces.PROVINCE_DIMENSION: codes[-1]}))
    return {RANGE_START: first, RANGE_END: last}


def province_partitions(assets: Sequence[dg.AssetsDefinition]) -> dg.StaticPartitionsDefinition | None:
    """The former provinces' partitioning among `assets` (layers.province_partitions), if any of them has it."""
    found = {a.partitions_def for a in assets if isinstance(a.partitions_def, dg.StaticPartitionsDefinition)}
    return cast(dg.StaticPartitionsDefinition, next(iter(found))) if found else None


def province_keys(assets: Sequence[dg.AssetsDefinition]) -> set[dg.AssetKey]:
    """The assets partitioned by former province."""
    return {key for a in assets if isinstance(a.partitions_def, dg.StaticPartitionsDefinition) for key in a.keys}


def month_key(when: datetime) -> str:
    """The month partition key of a moment, in Vietnam time."""
    return when.astimezone(ZoneInfo(TIMEZONE)).strftime(MONTH_FORMAT)


def partition_keys(partitions: dg.PartitionsDefinition, instance: dg.DagsterInstance) -> list[str]:
    """The registered months, in Dagster's order: the order they were added (not the calendar's)."""
    months = months_of(partitions)
    return list(months.get_partition_keys(dynamic_partitions_store=instance)) if months else []


def keys_to_add(
    partitions: dg.PartitionsDefinition, instance: dg.DagsterInstance, delivered: Iterable[str]
) -> list[str]:
    """The delivered keys the instance does not know yet, oldest first (the order they are to be added in)."""
    known = set(partition_keys(partitions, instance))
    return sorted(set(delivered) - known)


def register(partitions: dg.PartitionsDefinition, instance: dg.DagsterInstance, delivered: Iterable[str]) -> list[str]:
    """Add the delivered months the instance does not know yet (a fresh instance: all of them); the new ones."""
    new = keys_to_add(partitions, instance, delivered)
    if new:
        instance.add_dynamic_partitions(
            cast(str, cast(dg.DynamicPartitionsDefinition, months_of(partitions)).name), new
        )
    return new


def partition_ranges(wanted: Sequence[str], keys: Sequence[str]) -> list[tuple[str, str]]:
    """`wanted` keys as (first, last) ranges for single-run backfills. A range is a run of keys that are
    neighbours in `keys` (the order Dagster resolves a range in) and go forward in time: a month delivered
    late sits after newer ones in `keys`, so it runs alone and no range takes a month it did not ask for.
    keys [01, 02, 04, 03], wanted [01, 02, 03, 04] -> [(01, 02), (03, 03), (04, 04)]."""
    index = {k: i for i, k in enumerate(keys)}
    ranges: list[tuple[str, str]] = []
    for key in sorted(k for k in wanted if k in index):  # a key not registered yet: the next evaluation's
        if ranges and index[ranges[-1][1]] + 1 == index[key]:
            ranges[-1] = (ranges[-1][0], key)
        else:
            ranges.append((key, key))
    return ranges


def range_tags(keys: Sequence[str]) -> dict[str, str]:
    return {RANGE_START: keys[0], RANGE_END: keys[-1]} if keys else {}


def span_tags(
    chosen: Sequence[str], keys: Sequence[str], partitions: dg.PartitionsDefinition | None = None
) -> dict[str, str]:
    """Tags of one run over `chosen` months: from the first to the last of them in Dagster's order (the months
    between are rebuilt too, idempotently), of every former province when `partitions` has them."""
    ordered = sorted(set(chosen), key=list(keys).index)
    return month_range_tags(partitions, ordered[0], ordered[-1]) if ordered else {}


def recent_months(partitions: dg.PartitionsDefinition, when: datetime, instance: dg.DagsterInstance) -> list[str]:
    """The delivered months among the one that holds `when` and the one before; if neither was delivered,
    the newest delivered month (a feed that is behind); none before the first delivery."""
    keys = partition_keys(partitions, instance)
    local = when.astimezone(ZoneInfo(TIMEZONE))
    previous = month_key(local.replace(day=1) - timedelta(days=1))
    recent = [key for key in (previous, month_key(local)) if key in keys]
    return recent or ([max(keys)] if keys else [])


def recent_range_tags(
    partitions: dg.PartitionsDefinition | None, when: datetime, instance: dg.DagsterInstance
) -> dict[str, str]:
    """Tags for a run now (the nightly, a manual run): `recent_months` as one range; nothing when the job
    is not partitioned or no month was delivered yet (the run then leaves the months out)."""
    if partitions is None:
        return {}
    return span_tags(recent_months(partitions, when, instance), partition_keys(partitions, instance), partitions)


def unpartitioned_keys(job: dg.JobDefinition) -> list[dg.AssetKey]:
    """The assets of `job` that are not partitioned: what a run takes before any month was delivered."""
    graph = job.asset_layer.asset_graph
    return sorted(k for k in job.asset_layer.executable_asset_keys if graph.get(k).partitions_def is None)


def recent_run(job: dg.JobDefinition, when: datetime, instance: dg.DagsterInstance) -> dict[str, Any]:
    """`execute_in_process` arguments for a manual run of `job` now: the recent months when it is partitioned
    (a partitioned job refuses to run without them), or its other assets when no month was delivered yet."""
    partitions = job.partitions_def
    if months_of(partitions) is None:
        return {"tags": {}}
    tags = recent_range_tags(partitions, when, instance)
    return {"tags": tags} if tags else {"tags": {}, "asset_selection": unpartitioned_keys(job)}


# --- schedule ---------------------------------------------------------------------------------


# Both nightly schedules tick at the same moment (`_nightly_moment` judges it), running from the start.
NIGHTLY: dict[str, Any] = {
    "cron_schedule": NIGHTLY_CRON,
    "execution_timezone": TIMEZONE,
    "default_status": dg.DefaultScheduleStatus.RUNNING,
}


def _nightly_moment(context: dg.ScheduleEvaluationContext) -> datetime | dg.SkipReason:
    """The tick's local (Vietnam) time, or why it is no nightly tick (a tick evaluated by hand at another hour)."""
    when = context.scheduled_execution_time
    local = when.astimezone(ZoneInfo(TIMEZONE)) if when else None
    if local is None or (local.hour, local.minute) != (NIGHTLY_HOUR, 0):
        return dg.SkipReason(f"not a nightly tick ({local}): the refresh runs at {NIGHTLY_CRON} {TIMEZONE}")
    return local


def nightly_schedule(
    job: UnresolvedAssetJobDefinition,
    partitions: MonthPartitions | None,
    unpartitioned: Sequence[dg.AssetKey] = (),
):
    """`unpartitioned`: the job's other assets, what the nightly runs before any month was delivered."""

    @dg.schedule(
        name="nightly_refresh",
        job=job,
        **NIGHTLY,
        description=f"Every asset at {NIGHTLY_HOUR:02d}:00 {TIMEZONE}; the months delivered: this and last "
        "month (else the newest delivered).",
    )
    def nightly_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        when, local = context.scheduled_execution_time, _nightly_moment(context)
        if isinstance(local, dg.SkipReason):
            return local
        tags = {"ioc/trigger": "nightly"}
        months = recent_range_tags(partitions, when, context.instance)
        if partitions is not None and not months:  # no month delivered yet: the months' sensor takes the first
            return dg.RunRequest(run_key=f"nightly-{local:%Y-%m-%d}", tags=tags, asset_selection=list(unpartitioned))
        return dg.RunRequest(run_key=f"nightly-{local:%Y-%m-%d}", tags=tags | months)

    return nightly_refresh


def nightly_provinces_schedule(
    job: UnresolvedAssetJobDefinition,
    partitions: dg.StaticPartitionsDefinition | None,
    selection: Sequence[dg.AssetKey],
) -> dg.ScheduleDefinition:
    """At the nightly hour, one run per former province of the province job: a province whose delivery is bad
    or whose load fails fails its own run; the others, and their gold and publish, go on."""
    codes = list(partitions.get_partition_keys()) if partitions else []

    @dg.schedule(
        name="nightly_provinces",
        job=job,
        **NIGHTLY,
        description=f"Each former province's snapshot feeds at {NIGHTLY_HOUR:02d}:00 {TIMEZONE}, a run per "
        "province partition, each going on downstream (gold, the scorecard, the warehouse).",
    )
    def nightly_provinces(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        local = _nightly_moment(context)
        if isinstance(local, dg.SkipReason):
            return local
        return [
            dg.RunRequest(
                run_key=f"nightly-{local:%Y-%m-%d}-{code}",
                partition_key=code,
                tags={"ioc/trigger": "nightly"},
                asset_selection=list(selection),
            )
            for code in codes
        ]

    return nightly_provinces


# --- delivery sensors -------------------------------------------------------------------------


def delivery_sensor(
    delivery: Delivery,
    job: UnresolvedAssetJobDefinition,
    partitions: MonthPartitions | None,
    unpartitioned: Sequence[dg.AssetKey] = (),
    by_province: bool = False,
) -> dg.SensorDefinition:
    """One run request per batch of complete new or changed files; each file version picked once.

    A group partitioned by former province (`by_province`) gets one run per province that delivered, its
    partition: one province's bad delivery fails that run only, and each run goes on downstream.

    A partitioned group's run takes the months the files name that are delivered already (a corrected
    month); a month never delivered before is no partition yet, so the run then takes `unpartitioned`
    (the job's other assets) and the feed's changed-partitions sensor registers and runs the months the
    load brought.

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
        where = landing.landing()
        delivered = [f for _, one, _ in provinces.deliveries(feed, where) for f in where.matching(one.patterns)]
        for file in delivered:
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
        if by_province:
            for code, files in _by_province(ready):
                signatures = "\n".join(f"{path}={picked[path]}" for path in files)
                yield dg.RunRequest(
                    run_key=f"{feed.table}:{code}:{hashlib.sha256(signatures.encode()).hexdigest()[:16]}",
                    partition_key=code,
                    tags={"ioc/trigger": "delivery", "ioc/feed": feed.table, "ioc/files": _files_tag(files)},
                )
            return
        signatures = "\n".join(f"{path}={picked[path]}" for path in ready)
        months = _partition_range(ready, partitions, context.instance)
        yield dg.RunRequest(
            run_key=f"{feed.table}:{hashlib.sha256(signatures.encode()).hexdigest()[:16]}",
            tags={"ioc/trigger": "delivery", "ioc/feed": feed.table, "ioc/files": _files_tag(ready), **months},
            asset_selection=list(unpartitioned) if partitions is not None and not months else None,
        )

    return _sensor


def _last_load_started(instance: dg.DagsterInstance, feed: Feed) -> float | None:
    """When the run that last materialized the feed's bronze started (None: never loaded)."""
    event = instance.get_latest_materialization_event(dg.AssetKey(["bronze", feed.table]))
    record = instance.get_run_record_by_id(event.run_id) if event else None
    return record.start_time if record and record.start_time else None


def _partition_range(
    files: list[str], partitions: MonthPartitions | None, instance: dg.DagsterInstance
) -> dict[str, str]:
    """One range over the delivered months that `files` name (their snapshot dates); none when the job is
    not partitioned or no file names a month delivered before."""
    if partitions is None:
        return {}
    keys = partition_keys(partitions, instance)
    months = set()
    for path in files:
        try:
            months.add(month_key(datetime.fromisoformat(snapshot_of(path)).replace(tzinfo=ZoneInfo(TIMEZONE))))
        except DeliveryError:
            continue  # no date in the name: the run's bronze step refuses it and says why
    return span_tags([m for m in months if m in keys], keys, partitions)


def _by_province(files: list[str]) -> list[tuple[str, list[str]]]:
    """The files grouped by the former province whose landing folder they are in (provinces.of_path)."""
    grouped: dict[str, list[str]] = {}
    for path in files:
        grouped.setdefault(provinces.of_path(path), []).append(path)
    return sorted(grouped.items())


def _files_tag(files: list[str], limit: int = 200) -> str:
    text = ", ".join(files)
    return text if len(text) <= limit else f"{text[: limit - 20]}… ({len(files)} files)"


# --- changed partitions -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangedPartitions:
    """Partitions of `job` that an append-only upstream (`watched`) changed after they were last built.

    `delivered()` names every partition the upstream holds rows for (each becomes a key of `partitions`),
    `changed(instance)` those to rebuild (e.g. from the loads each one was built from)."""

    name: str
    job: UnresolvedAssetJobDefinition
    watched: dg.AssetKey
    partitions: MonthPartitions
    delivered: Callable[[], list[str]]
    changed: Callable[[dg.DagsterInstance], list[str]]


@dataclass(frozen=True)
class PartitionedFeed:
    """A feed whose silver is partitioned by the months it delivered (the dossier months), declared by its
    asset module as `PARTITIONED`: the job that rebuilds a range of its months and what is downstream of
    them, which months it delivered and which its loads changed. definitions.py and the CLI read it;
    neither names the feed."""

    job_name: str
    assets: dg.AssetSelection  # the partitioned assets
    partitions: MonthPartitions  # months, or months × former provinces (the provinces: of the environment now)
    watched: dg.AssetKey  # the append-only upstream whose loads change partitions
    delivered: Callable[[], list[str]]  # every month with rows upstream (configured lake)
    changed: Callable[[dg.DagsterInstance], list[str]]
    sensor_name: str
    description: str = ""

    def job(self, also: dg.AssetSelection | None = None) -> UnresolvedAssetJobDefinition:
        """`also`: other assets the job may run (`cli run`'s last range goes on with every unpartitioned asset
        downstream of the province partitions too)."""
        return dg.define_asset_job(  # partitioned like its assets (their province partitions: layers.by_province)
            self.job_name,
            selection=self.assets.downstream() | also if also is not None else self.assets.downstream(),
            description=self.description,
        )

    def changed_sensor(self, job: UnresolvedAssetJobDefinition) -> ChangedPartitions:
        return ChangedPartitions(self.sensor_name, job, self.watched, self.partitions, self.delivered, self.changed)

    def register(self, instance: dg.DagsterInstance) -> list[str]:
        """Register the delivered months the instance does not know (before a run targets them)."""
        return register(self.partitions, instance, self.delivered())

    def ranges(self, instance: dg.DagsterInstance) -> list[tuple[str, str]]:
        """The changed months as ranges, one single run each (after `register`)."""
        return partition_ranges(self.changed(instance), partition_keys(self.partitions, instance))


def changed_partitions_sensor(spec: ChangedPartitions, writers: dict[str, set[dg.AssetKey]]) -> dg.SensorDefinition:
    """Registers the delivered partitions the instance does not know yet, then requests a run per range of
    changed partitions, once per state of `watched`; waits while a run that could build them (`writers`:
    job name → its assets) is still queued or running, so a delivery's own run is not duplicated."""
    partitioned = writers[spec.job.name]

    @dg.sensor(
        name=spec.name,
        job=spec.job,
        minimum_interval_seconds=CHANGED_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Partitions whose {spec.watched.to_user_string()} rows changed since they were built "
        f"run {spec.job.name}, one run per range of them (new months are registered first).",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        instance = context.instance
        busy = [
            record.dagster_run.run_id
            for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES))
            if (record.dagster_run.asset_selection or writers.get(record.dagster_run.job_name, set())) & partitioned
        ]
        if busy:
            return dg.SensorResult(skip_reason=f"waiting for run(s) {', '.join(b[:8] for b in busy)} to finish")
        new = keys_to_add(spec.partitions, instance, spec.delivered())
        # the daemon adds them, in this order, before it launches the runs below
        months = cast(dg.DynamicPartitionsDefinition, months_of(spec.partitions))
        added = [months.build_add_request(new)] if new else []
        keys = [*partition_keys(spec.partitions, instance), *new]
        changed = spec.changed(instance)
        if not changed:
            return dg.SensorResult(skip_reason="every partition is up to date", dynamic_partitions_requests=added)
        latest = instance.fetch_materializations(spec.watched, limit=1).records
        version = latest[0].storage_id if latest else 0
        requests = [
            dg.RunRequest(
                run_key=f"{spec.name}:{first}..{last}@{version}",
                tags={**month_range_tags(spec.partitions, first, last), "ioc/trigger": "changed_partitions"},
            )
            for first, last in partition_ranges(changed, keys)
        ]
        return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=added)

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
    partitions = month_partitions(assets)
    by_province = province_keys(assets)
    partitioned = {key for a in assets if a.partitions_def is not None for key in a.keys}
    gold = gold_keys(assets)
    checks = (
        list(dg.build_last_update_freshness_checks(assets=gold, lower_bound_delta=FRESHNESS_WINDOW)) if gold else []
    )
    refresh_all = dg.define_asset_job(
        "refresh_all",
        selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*by_province),
        partitions_def=partitions,
        description="Every asset but the former provinces' partitions (`refresh_provinces`), with its checks (the "
        "nightly refresh)"
        + (": for a range of months of the partitioned ones, the others once." if partitions else "."),
    )
    # a province's run at night: its feeds and what is downstream of them (not the dossier months: another job's)
    provincial_downstream = sorted(
        dg.AssetSelection.assets(*by_province).downstream().resolve(assets) - (partitioned - by_province)
    )
    province_jobs = (
        [
            dg.define_asset_job(
                PROVINCES_JOB,
                selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*(partitioned - by_province)),
                partitions_def=province_partitions(assets),
                description="One former province's snapshot feeds (bronze, silver, quarantine: its partition) with "
                "the unpartitioned assets (the nightly's runs: the feeds and everything downstream of them, gold, "
                "the scorecard, the warehouse; `cli run`: with what is upstream of the dossier months).",
            )
        ]
        if by_province
        else []
    )
    monthly = dg.AssetSelection.assets(*(partitioned - by_province))

    def domain_selection(group: str) -> dg.AssetSelection:
        """The group and what is downstream of it; a group whose bronze is partitioned by province (the dossiers)
        leaves its month partitions to their own job (one partitions definition per job)."""
        selection = dg.AssetSelection.groups(group).downstream()
        keys = selection.resolve(assets)
        return selection - monthly if keys & by_province and keys & (partitioned - by_province) else selection

    domain_jobs = {
        group: dg.define_asset_job(
            f"refresh_{group}",
            selection=domain_selection(group),
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
    jobs = [refresh_all, *province_jobs, *extra_jobs, *domain_jobs.values(), publish_job]
    sensors = [run_failure_alert, publish_after_failure_sensor(publish_job)]
    for delivery in deliveries:
        if delivery.group not in domain_jobs:
            raise dg.DagsterInvalidDefinitionError(f"{delivery.sensor_name}: no asset group {delivery.group!r}")
        members = [a for a in assets if delivery.group in a.group_names_by_key.values()]
        job = domain_jobs[delivery.group]
        others = sorted(set(job.selection.resolve(assets)) - partitioned)
        provincial = province_partitions(members) is not None
        sensors.append(delivery_sensor(delivery, job, month_partitions(members), others, provincial))
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
        schedules=[
            nightly_schedule(refresh_all, partitions, sorted(set(refresh_all.selection.resolve(assets)) - partitioned)),
            *(
                nightly_provinces_schedule(job, province_partitions(assets), provincial_downstream)
                for job in province_jobs
            ),
        ],
        sensors=sensors,
        asset_checks=checks,
    )
