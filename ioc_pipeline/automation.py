"""Running by itself: the nightly refresh, delivery sensors, freshness, alerts, jobs per domain.

    01:00 Asia/Ho_Chi_Minh ──nightly_refresh──► refresh_all (every asset; monthly partitions: this and last month)
    landing/<feed files>, complete ──<table>_delivery sensor──► refresh_<group> (the feed's group and downstream)
    gold/* older than 26 h ──freshness checks + gold_freshness sensor──► stale shown in the UI
    a run fails ──run_failure_alert──► alerts.py (lake ops/alerts, log, webhook)

A later feed plugs in with one line in `DELIVERIES` (its `Feed` and asset group); its job, its
place in the nightly refresh and the freshness checks of its gold assets follow from the asset
graph. A group with monthly-partitioned assets gets partitioned runs: the nightly one covers the
current and previous month in one run (a partition range: its partitioned assets need
`backfill_policy=dg.BackfillPolicy.single_run()` and read `context.partition_keys`), a delivered
`…_YYYYMM` file requests its own month.
"""

import hashlib
import json
import posixpath
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatch
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ioc_pipeline.alerts import Alert, raise_alert
from ioc_pipeline.resources import AlertsResource, LakeResource, LandingResource
from ioc_pipeline.sources import postal as postal_source
from ioc_pipeline.sources import procedures as procedures_source
from ioc_pipeline.sources import telecom as telecom_source
from ioc_pipeline.sources.files import DeliveryError, Feed, snapshot_of

TIMEZONE = "Asia/Ho_Chi_Minh"
NIGHTLY_HOUR = 1
NIGHTLY_CRON = f"0 {NIGHTLY_HOUR} * * *"
FRESHNESS_WINDOW = timedelta(hours=26)  # a nightly refresh plus two hours of slack
DELIVERY_INTERVAL_SECONDS = 60  # a file must look the same on two evaluations this far apart
FRESHNESS_INTERVAL_SECONDS = 600
# Names that editors, copy tools and browsers give a file while it is still being written.
TEMPORARY_NAMES = ("*.tmp", "*.temp", "*.part", "*.partial", "*.crdownload", "*.filepart", "*.swp", "~$*", ".*")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class Delivery:
    """A landing feed watched by a sensor: a new or changed file runs the feed's asset group and
    everything downstream of it (`refresh_<group>`)."""

    feed: Feed
    group: str

    @property
    def sensor_name(self) -> str:
        return f"{self.feed.table}_delivery"


# One line per file feed of the landing-zone contract.
DELIVERIES: list[Delivery] = [
    Delivery(procedures_source.FEED, "procedures"),
    Delivery(telecom_source.FEED, "telecom"),
    Delivery(postal_source.ENTERPRISES, "postal"),
    Delivery(postal_source.SERVICE_POINTS, "postal"),
]


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
    return next(iter(found))


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


def is_temporary(path: str) -> bool:
    """A name that a file still being written carries (`x.csv.part`, `~$x.xlsx`, `.x.csv.a1b2`)."""
    name = posixpath.basename(path)
    return any(fnmatch(name, pattern) for pattern in TEMPORARY_NAMES)


def delivery_sensor(
    delivery: Delivery, job: UnresolvedAssetJobDefinition, partitions: dg.TimeWindowPartitionsDefinition | None
) -> dg.SensorDefinition:
    """One run request per batch of complete new or changed files; each file version picked once.

    Cursor: `picked` (path → size:mtime already requested) and `pending` (path → size:mtime seen
    on the previous evaluation). A file is complete when it looks the same on two evaluations.
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
        previous: dict[str, str] = state.get("pending", {})
        pending: dict[str, str] = {}
        ready: list[str] = []
        for file in landing.landing().matching(feed.patterns):
            if is_temporary(file.path):
                continue
            signature = f"{file.size}:{file.modified}"
            if picked.get(file.path) == signature:
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
        for partition, files in _by_partition(ready, partitions).items():
            signatures = "\n".join(f"{path}={picked[path]}" for path in files)
            yield dg.RunRequest(
                run_key=f"{feed.table}:{hashlib.sha256(signatures.encode()).hexdigest()[:16]}",
                partition_key=partition,
                tags={"ioc/trigger": "delivery", "ioc/feed": feed.table, "ioc/files": _files_tag(files)},
            )

    return _sensor


def _by_partition(
    files: list[str], partitions: dg.TimeWindowPartitionsDefinition | None
) -> dict[str | None, list[str]]:
    """Files grouped by the partition their snapshot date falls in (None: the job is not partitioned)."""
    grouped: dict[str | None, list[str]] = {}
    for path in files:
        key = None
        if partitions is not None:
            try:
                snapshot = datetime.fromisoformat(snapshot_of(path)).replace(tzinfo=ZoneInfo(partitions.timezone))
                key = partitions.get_partition_key_for_timestamp(snapshot.timestamp())
            except DeliveryError:
                key = None  # no date in the name: the run's bronze step refuses it and says why
        grouped.setdefault(key, []).append(path)
    return grouped


def _files_tag(files: list[str], limit: int = 200) -> str:
    text = ", ".join(files)
    return text if len(text) <= limit else f"{text[: limit - 20]}… ({len(files)} files)"


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


def _error_message(event: dg.DagsterEvent) -> str:
    error = getattr(event.event_specific_data, "error", None)
    return (error.message if error else event.message or "failed").strip()


# --- building it all --------------------------------------------------------------------------


def gold_keys(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetKey]:
    return sorted({key for a in assets for key in a.keys if key.path[0] == "gold"}, key=lambda k: k.path)


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
    refresh_all: UnresolvedAssetJobDefinition | None = None,
    extra_jobs: Sequence[UnresolvedAssetJobDefinition] = (),
) -> Automation:
    """Jobs, schedule, sensors and freshness checks for these assets.

    `refresh_all` replaces the default every-asset job (the dossier feed's is every unpartitioned
    asset; its months run through `extra_jobs`), and the nightly schedule then runs it unpartitioned."""
    nightly_partitions = time_partitions(assets) if refresh_all is None else None
    gold = gold_keys(assets)
    checks = (
        list(dg.build_last_update_freshness_checks(assets=gold, lower_bound_delta=FRESHNESS_WINDOW)) if gold else []
    )
    refresh_all = refresh_all or dg.define_asset_job(
        "refresh_all",
        selection=dg.AssetSelection.all(),
        description="Every asset, with its checks (the nightly refresh).",
    )
    domain_jobs = {
        group: dg.define_asset_job(
            f"refresh_{group}",
            selection=dg.AssetSelection.groups(group).downstream(),
            description=f"The {group} group and everything downstream of it (scorecard, warehouse).",
        )
        for group in groups(assets)
    }
    sensors = [run_failure_alert]
    for delivery in deliveries:
        if delivery.group not in domain_jobs:
            raise dg.DagsterInvalidDefinitionError(f"{delivery.sensor_name}: no asset group {delivery.group!r}")
        members = [a for a in assets if delivery.group in a.group_names_by_key.values()]
        sensors.append(delivery_sensor(delivery, domain_jobs[delivery.group], time_partitions(members)))
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
        jobs=[refresh_all, *extra_jobs, *domain_jobs.values(), *freshness_jobs],
        schedules=[nightly_schedule(refresh_all, nightly_partitions)],
        sensors=sensors,
        asset_checks=checks,
    )
