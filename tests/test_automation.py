"""The pipeline running by itself: the nightly schedule, delivery sensors, freshness, pools.

Sensors read a real temp landing zone; schedules are evaluated the way the daemon evaluates them
(a tick time); freshness is checked against a real instance whose clock is moved forward.
"""

import contextlib
import functools
import json
import os
import re
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.definitions.sensor_definition import SensorExecutionData
from dagster._core.test_utils import create_run_for_test, freeze_time
from dagster._utils.schedules import cron_string_iterator

from ioc_pipeline import automation
from ioc_pipeline.assets import public_service
from ioc_pipeline.automation import Delivery
from ioc_pipeline.definitions import all_assets, defs
from ioc_pipeline.policies import pool_for
from ioc_pipeline.resources import LandingResource
from ioc_pipeline.sources.files import Feed
from tests.conftest import LOCAL_INSTANCE, Pipeline, failure_messages, new_pipeline, succeeded

ICT = ZoneInfo(automation.TIMEZONE)
GOLD = sorted(k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "gold")


# --- schedule ---------------------------------------------------------------------------------


def _tick(schedule: dg.ScheduleDefinition, when: datetime, months: tuple[str, ...] = ()):
    """One tick at `when`, on an instance that knows these delivered dossier months."""
    with dg.instance_for_test() as instance:  # a schedule's context needs an instance with a ref
        if months:
            instance.add_dynamic_partitions(public_service.MONTHS.name, list(months))
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
            return schedule.evaluate_tick(context)


def test_the_nightly_refresh_runs_every_asset_at_one_in_the_morning_vietnam_time() -> None:
    schedule = defs.resolve_schedule_def("nightly_refresh")
    assert schedule.job_name == "refresh_all"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    result = _tick(schedule, datetime(2026, 11, 28, 1, 0, tzinfo=ICT), ("2026-09", "2026-10", "2026-11"))
    assert [(r.run_key, r.tags.get("ioc/trigger")) for r in result.run_requests] == [("nightly-2026-11-28", "nightly")]
    tags = result.run_requests[0].tags
    # the dossier months, of every former province (the default's one, 94)
    assert (tags[automation.RANGE_START], tags[automation.RANGE_END]) == ("2026-10|94", "2026-11|94")
    assert result.run_requests[0].asset_selection is None  # every asset but the province partitions' (their job's)
    # the daemon's ticks: 01:00 in Vietnam, which is 18:00 UTC the day before
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC).timestamp()
    ticks = cron_string_iterator(start, schedule.cron_schedule, schedule.execution_timezone)
    assert [next(ticks).astimezone(UTC) for _ in range(2)] == [
        datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
        datetime(2026, 11, 28, 18, 0, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 11, 28, 13, 0, tzinfo=ICT),
        datetime(2026, 11, 28, 0, 59, tzinfo=ICT),
        datetime(2026, 11, 28, 1, 30, tzinfo=ICT),
        datetime(2026, 11, 28, 1, 0, tzinfo=UTC),  # 08:00 in Vietnam
    ],
)
def test_the_nightly_refresh_requests_nothing_at_other_times(when: datetime) -> None:
    result = _tick(defs.resolve_schedule_def("nightly_refresh"), when)
    assert result.run_requests == [] and "not a nightly tick" in result.skip_message


def test_every_asset_group_has_a_job_with_everything_downstream() -> None:
    jobs = {j.name: j for j in defs.resolve_all_job_defs()}
    procedures = jobs["refresh_procedures"].asset_layer.executable_asset_keys
    gold = {dg.AssetKey(["gold", "procedure_service_levels"]), dg.AssetKey(["gold", "ioc_scorecard"])}
    assert {dg.AssetKey(["bronze", "procedures"]), *gold, dg.AssetKey(["publish", "warehouse"])} <= procedures
    assert dg.AssetKey(["silver", "admin_units"]) not in procedures
    assert {"refresh_all", "refresh_reference", "refresh_scorecard", "refresh_publish"} <= set(jobs)


# --- the month-partition hook (the dossier feed's, tested here on small stand-in assets) --------

MONTHS = dg.DynamicPartitionsDefinition(name="test_months")
SEEN_PARTITIONS: list[list[str]] = []


@dg.asset(group_name="monthly")
def upstream() -> None:
    pass


@dg.asset(group_name="monthly", deps=[upstream], partitions_def=MONTHS, backfill_policy=dg.BackfillPolicy.single_run())
def monthly(context: dg.AssetExecutionContext) -> None:
    SEEN_PARTITIONS.append(list(context.partition_keys))


@dg.asset(key=["gold", "monthly_kpis"], group_name="monthly", deps=[monthly])
def monthly_kpis() -> None:
    pass


MONTHLY_FEED = Feed(table="monthly_events", patterns=("monthly/events_*.ndjson",), columns={})


@functools.cache
def _monthly_defs() -> tuple[dg.Definitions, automation.Automation]:
    built = automation.build([upstream, monthly, monthly_kpis], [Delivery(MONTHLY_FEED, "monthly")])
    definitions = dg.Definitions(
        assets=built.assets,
        asset_checks=built.asset_checks,
        jobs=built.jobs,
        schedules=built.schedules,
        sensors=built.sensors,
        resources={"landing": LandingResource(root="unused")},
    )
    return definitions, built


def _run_monthly(job: str, instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """A run request run as the daemon runs it: its tags and its asset selection."""
    SEEN_PARTITIONS.clear()
    return (
        _monthly_defs()[0]
        .resolve_job_def(job)
        .execute_in_process(instance=instance, tags=request.tags, asset_selection=request.asset_selection)
    )


@pytest.mark.parametrize(
    "when, delivered, months",
    [
        (datetime(2026, 11, 28, 1, 0, tzinfo=ICT), ("2026-09", "2026-10", "2026-11"), ["2026-10", "2026-11"]),
        (datetime(2026, 12, 1, 1, 0, tzinfo=ICT), ("2026-11", "2026-12"), ["2026-11", "2026-12"]),  # Nov. in UTC
        (datetime(2026, 12, 1, 1, 0, tzinfo=ICT), ("2026-10", "2026-11"), ["2026-11"]),  # December: nothing yet
        (datetime(2026, 1, 15, 1, 0, tzinfo=ICT), ("2026-01",), ["2026-01"]),  # no month before the first
        (datetime(2026, 11, 28, 1, 0, tzinfo=ICT), ("2026-02", "2026-03"), ["2026-03"]),  # behind: the newest
    ],
)
def test_the_delivered_months_among_this_and_last_month_are_refreshed_in_one_run(
    when: datetime, delivered: tuple[str, ...], months: list[str]
) -> None:
    definitions, _ = _monthly_defs()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MONTHS.name, list(delivered))
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
            (request,) = definitions.resolve_schedule_def("nightly_refresh").evaluate_tick(context).run_requests
        assert (request.tags[automation.RANGE_START], request.tags[automation.RANGE_END]) == (months[0], months[-1])
        result = _run_monthly("refresh_all", instance, request)
    assert result.success
    assert SEEN_PARTITIONS == [months]  # the months in one run, with the unpartitioned assets once
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"upstream", "monthly", "gold/monthly_kpis"} <= materialized


def test_before_any_delivered_month_the_nightly_runs_the_other_assets() -> None:
    definitions, _ = _monthly_defs()
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 28, 1, 0, tzinfo=ICT)
        ) as c:
            (request,) = definitions.resolve_schedule_def("nightly_refresh").evaluate_tick(c).run_requests
        assert automation.RANGE_START not in request.tags
        assert set(request.asset_selection) == {dg.AssetKey("upstream"), dg.AssetKey(["gold", "monthly_kpis"])}
        result = _run_monthly("refresh_all", instance, request)
    assert result.success and SEEN_PARTITIONS == []


def test_a_manual_run_of_a_partitioned_job_gets_the_same_months() -> None:
    definitions, _ = _monthly_defs()
    when = datetime(2026, 11, 28, 9, 30, tzinfo=ICT)
    job = definitions.resolve_job_def("refresh_all")
    with dg.DagsterInstance.ephemeral() as instance:
        assert automation.recent_run(job, when, instance) == {
            "tags": {},
            "asset_selection": [dg.AssetKey(["gold", "monthly_kpis"]), dg.AssetKey("upstream")],
        }
        instance.add_dynamic_partitions(MONTHS.name, ["2026-10", "2026-11"])
        tags = automation.recent_run(job, when, instance)["tags"]
        assert (tags[automation.RANGE_START], tags[automation.RANGE_END]) == ("2026-10", "2026-11")
        assert automation.recent_run(defs.resolve_job_def("refresh_procedures"), when, instance) == {"tags": {}}


def test_ranges_follow_dagsters_key_order_and_a_month_delivered_late_runs_alone() -> None:
    in_order = ["2022-01", "2022-02", "2022-03", "2022-04"]
    assert automation.partition_ranges(["2022-04", "2022-01", "2022-02"], in_order) == [
        ("2022-01", "2022-02"),
        ("2022-04", "2022-04"),
    ]
    assert automation.partition_ranges([], in_order) == []
    late = ["2022-01", "2022-02", "2022-04", "2022-03"]  # March registered after April
    assert automation.partition_ranges(in_order, late) == [
        ("2022-01", "2022-02"),
        ("2022-03", "2022-03"),
        ("2022-04", "2022-04"),
    ]
    assert automation.partition_ranges(["2022-02", "2022-03"], late) == [("2022-02", "2022-02"), ("2022-03", "2022-03")]
    assert automation.partition_ranges(["2022-05"], late) == []  # not a partition yet: the next evaluation's
    # each range, resolved by Dagster as a run resolves it, is exactly the months it was made of
    with (
        dg.DagsterInstance.ephemeral() as instance,
        dg.partition_loading_context(dynamic_partitions_store=instance),
    ):
        instance.add_dynamic_partitions(MONTHS.name, late)
        for first, last in automation.partition_ranges(in_order, late):
            keys = MONTHS.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
            assert list(keys) == [m for m in in_order if first <= m <= last]
        # what a range across the gap would have built: April too, though only February and March were asked
        across = MONTHS.get_partition_keys_in_range(dg.PartitionKeyRange("2022-02", "2022-03"))
        assert list(across) == ["2022-02", "2022-04", "2022-03"]


def test_monthly_deliveries_request_one_run_over_their_delivered_months(tmp_path: Path) -> None:
    definitions, _ = _monthly_defs()
    sensor = definitions.resolve_sensor_def("monthly_events_delivery")
    _write(tmp_path / "monthly" / "events_202609.ndjson", b'{"a": 1}\n')
    _write(tmp_path / "monthly" / "events_202611.ndjson", b'{"a": 2}\n')
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(MONTHS.name, ["2026-09", "2026-10", "2026-11"])
        _, cursor = _sense(sensor, tmp_path, None, definitions, instance=instance)
        (request,) = _sense(sensor, tmp_path, cursor, definitions, instance=instance)[0]
        assert (request.tags[automation.RANGE_START], request.tags[automation.RANGE_END]) == ("2026-09", "2026-11")
        assert _run_monthly(sensor.job_name, instance, request).success
    assert SEEN_PARTITIONS == [["2026-09", "2026-10", "2026-11"]]  # one run from first to last


def test_a_delivery_of_a_month_never_delivered_runs_without_months(tmp_path: Path) -> None:
    """The month is no partition yet: the run loads it, and the months' sensor registers and runs it."""
    definitions, _ = _monthly_defs()
    sensor = definitions.resolve_sensor_def("monthly_events_delivery")
    _write(tmp_path / "monthly" / "events_202612.ndjson", b'{"a": 1}\n')
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(MONTHS.name, ["2026-11"])
        _, cursor = _sense(sensor, tmp_path, None, definitions, instance=instance)
        (request,) = _sense(sensor, tmp_path, cursor, definitions, instance=instance)[0]
        assert automation.RANGE_START not in request.tags
        assert set(request.asset_selection) == {dg.AssetKey("upstream"), dg.AssetKey(["gold", "monthly_kpis"])}
        assert _run_monthly(sensor.job_name, instance, request).success
    assert SEEN_PARTITIONS == []


# --- delivery sensors ---------------------------------------------------------------------------


def _write(path: Path, content: bytes, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def _sense(
    sensor: dg.SensorDefinition,
    landing: Path,
    cursor: str | None,
    definitions: dg.Definitions = defs,
    pipeline: Pipeline | None = None,
    instance: dg.DagsterInstance | None = None,
) -> tuple[list[dg.RunRequest], str | None]:
    """One evaluation of a delivery sensor, as the daemon makes it: the cursor in, the cursor out
    (on the pipeline's instance, or the one given, else on an empty one)."""
    resources = {"landing": LandingResource(root=str(landing))}
    with (
        pipeline.environment() if pipeline else contextlib.nullcontext(),
        dg.DagsterInstance.get()
        if pipeline
        else contextlib.nullcontext(instance or dg.DagsterInstance.ephemeral()) as used,
        dg.build_sensor_context(cursor=cursor, resources=resources, definitions=definitions, instance=used) as context,
    ):
        data = sensor.evaluate_tick(context)
    return list(data.run_requests or []), data.cursor


def test_a_new_file_is_requested_once_when_complete(tmp_path: Path) -> None:
    sensor = defs.resolve_sensor_def("procedures_delivery")
    assert sensor.job_name == "refresh_procedures" and sensor.default_status == dg.DefaultSensorStatus.RUNNING
    requests, cursor = _sense(sensor, tmp_path, None)
    assert requests == []  # no landing zone yet
    _write(tmp_path / "procedures" / "tthc_20220531.json", b"[]")
    requests, cursor = _sense(sensor, tmp_path, cursor)
    assert requests == []  # seen once: it may still be being written
    requests, cursor = _sense(sensor, tmp_path, cursor)
    assert len(requests) == 1
    assert requests[0].tags["ioc/files"] == "procedures/tthc_20220531.json"
    assert requests[0].tags["ioc/trigger"] == "delivery"
    for _ in range(2):
        again, cursor = _sense(sensor, tmp_path, cursor)
        assert again == []  # the same file is picked once
    # a changed file (the department re-delivers under the same name) is a new delivery
    _write(tmp_path / "procedures" / "tthc_20220531.json", b'[{"MaTTHC": "1.000001"}]')
    first, cursor = _sense(sensor, tmp_path, cursor)
    second, cursor = _sense(sensor, tmp_path, cursor)
    assert first == [] and len(second) == 1 and second[0].run_key != requests[0].run_key


def test_a_growing_file_is_not_requested_until_it_stops_changing(tmp_path: Path) -> None:
    sensor = defs.resolve_sensor_def("procedures_delivery")
    target = tmp_path / "procedures" / "tthc_20220531.json"
    cursor = None
    content = b"["
    for chunk in range(4):
        content += b'{"MaTTHC": "1.00000%d"},' % chunk
        _write(target, content)
        requests, cursor = _sense(sensor, tmp_path, cursor)
        assert requests == [], f"picked while still growing (chunk {chunk})"
    # the same size but a new modification time is still a change
    _write(target, content, mtime=target.stat().st_mtime + 5)
    requests, cursor = _sense(sensor, tmp_path, cursor)
    assert requests == []
    requests, cursor = _sense(sensor, tmp_path, cursor)
    assert [r.tags["ioc/files"] for r in requests] == ["procedures/tthc_20220531.json"]


def test_files_with_temporary_names_are_never_picked(tmp_path: Path) -> None:
    feed = Feed(table="bts", patterns=("telecom/bts/*.csv", "telecom/bts/*.xlsx"), columns={})
    jobs = automation.build(all_assets, []).jobs
    sensor = automation.delivery_sensor(Delivery(feed, "procedures"), jobs[1], None)
    names = ["~$viettel_20220601.xlsx", ".viettel_20220601.csv", "viettel_20220601.csv.part", "x.csv.tmp"]
    for name in names:
        _write(tmp_path / "telecom" / "bts" / name, b"Ma tram\n1\n")
    cursor = None
    for _ in range(3):
        requests, cursor = _sense(sensor, tmp_path, cursor)
        assert requests == []
    # the copy tool renames the finished file: now it is picked
    (tmp_path / "telecom" / "bts" / "viettel_20220601.csv.part").rename(tmp_path / "telecom/bts/viettel_20220601.csv")
    _, cursor = _sense(sensor, tmp_path, cursor)
    requests, cursor = _sense(sensor, tmp_path, cursor)
    assert [r.tags["ioc/files"] for r in requests] == ["telecom/bts/viettel_20220601.csv"]
    assert all(automation.is_temporary(n) for n in names) and not automation.is_temporary("viettel_20220601.csv")


def test_several_complete_files_make_one_run(tmp_path: Path) -> None:
    sensor = defs.resolve_sensor_def("procedures_delivery")
    _write(tmp_path / "procedures" / "tthc_20220531.json", b"[]")
    _write(tmp_path / "procedures" / "tthc_20220630.xlsx", b"PK")
    _, cursor = _sense(sensor, tmp_path, None)
    requests, _ = _sense(sensor, tmp_path, cursor)
    assert [r.tags["ioc/files"] for r in requests] == ["procedures/tthc_20220531.json, procedures/tthc_20220630.xlsx"]


def test_a_delivery_run_loads_the_new_file(published: Pipeline) -> None:
    """The sensor's run request, run as the daemon would: the new snapshot reaches the warehouse."""
    rows = json.loads((published.landing / "procedures" / "tthc_20220430.json").read_text(encoding="utf-8"))
    _write(
        published.landing / "procedures" / "tthc_20220531.json",
        json.dumps(rows[:-100], ensure_ascii=False).encode("utf-8"),
    )
    sensor = defs.resolve_sensor_def("procedures_delivery")
    _, cursor = _sense(sensor, published.landing, None)
    (request,) = _sense(sensor, published.landing, cursor)[0]
    result = published.run(sensor.job_name, tags=request.tags)
    assert result.success, failure_messages(result)
    assert published.query("select max(as_of_date)::varchar from gold.ioc_scorecard") == [("2022-05-31",)]


def test_the_nightly_run_rebuilds_everything_and_the_newest_delivered_month(published: Pipeline) -> None:
    """The nightly's own run request, made and run as the daemon would, on the published sample (dossiers of
    2022): no month of 2026 was delivered, so it takes the newest delivered one, never an empty month."""
    nightly = defs.resolve_schedule_def("nightly_refresh")
    with (
        published.environment(),
        dg.DagsterInstance.get() as instance,
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 28, 1, 0, tzinfo=ICT)
        ) as context,
    ):
        (request,) = nightly.evaluate_tick(context).run_requests
    # the month of every former province (`month|province`; the sample's one, 94)
    assert (request.tags[automation.RANGE_START], request.tags[automation.RANGE_END]) == ("2022-04|94", "2022-04|94")
    result = published.run("refresh_all", tags=request.tags)
    assert result.success, failure_messages(result)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"silver/dossiers", "gold/public_service_kpis_monthly", "publish/warehouse"} <= materialized
    assert "bronze/dossiers" not in materialized  # partitioned by province: the nightly_provinces runs load it
    silver = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["silver", "dossiers"]]
    pages = [e for e in silver if "dagster/row_count" in e.materialization.metadata]  # each month's own figures
    assert [e.partition for e in pages] == ["2022-04|94"] == sorted({e.partition for e in silver})
    april = published.query("select count(*) from silver.dossiers where month = date '2022-04-01'")[0][0]
    assert pages[0].materialization.metadata["dagster/row_count"].value == april > 0


def _export(landing: Path, name: str, updated_at: str, lines: int) -> Path:
    """A dossier export whose versions update dossiers of earlier months (a late status change)."""
    source = (landing / "public_service" / "dossiers_202204.ndjson").read_text(encoding="utf-8").splitlines()
    versions = [json.loads(line) for line in source if line.startswith('{"MaHoSo"')][:lines]
    for version in versions:
        version["NgayCapNhat"] = updated_at
    target = landing / "public_service" / name
    _write(target, "\n".join(json.dumps(v, ensure_ascii=False) for v in versions).encode("utf-8"))
    return target


def _changed_months(pipeline: Pipeline) -> SensorExecutionData:
    """One evaluation of the months' sensor; the months it registers are added as the daemon adds them."""
    sensor = defs.resolve_sensor_def("dossier_months_changed")
    assert sensor.job_name == "dossier_months" and sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with (
        pipeline.environment(),
        dg.DagsterInstance.get() as instance,
        dg.build_sensor_context(instance=instance, definitions=defs) as context,
    ):
        data = sensor.evaluate_tick(context)
        for added in data.dynamic_partitions_requests or []:
            assert isinstance(added, dg.AddDynamicPartitionsRequest)
            instance.add_dynamic_partitions(added.partitions_def_name, added.partition_keys)
    return data


def _months(pipeline: Pipeline) -> list[str]:
    """The dossier month partitions of the pipeline's instance, in Dagster's order."""
    with pipeline.environment(), dg.DagsterInstance.get() as instance:
        return automation.partition_keys(public_service.MONTHS, instance)


def _unbuilt(pipeline: Pipeline) -> set[str]:
    """Partitions of silver/dossiers that Dagster shows as missing."""
    with pipeline.environment(), dg.DagsterInstance.get() as instance:
        built = {key.split("|")[0] for key in instance.get_materialized_partitions(public_service.SILVER_KEY)}
    return set(_months(pipeline)) - built  # `month|province` keys: the sample's one province


def test_a_dossier_export_runs_its_month_and_a_sensor_catches_up_the_older_months(published: Pipeline) -> None:
    assert _changed_months(published).run_requests == []  # the published sample is up to date
    sensor = defs.resolve_sensor_def("dossiers_delivery")
    # a new instance that never loaded them knows no month: the run loads them without months, the
    # months' sensor then registers and runs them
    _, cursor = _sense(sensor, published.landing, None)
    (first,) = _sense(sensor, published.landing, cursor)[0]
    assert automation.RANGE_START not in first.tags and first.partition_key == "94"  # the province's partition
    job = defs.resolve_job_def(sensor.job_name)
    keys = job.asset_layer.executable_asset_keys
    assert public_service.BRONZE_KEY in keys and public_service.SILVER_KEY not in keys  # the months: their sensor's
    # the published instance's last bronze run loaded them: its sensor takes them as picked
    _, cursor = _sense(sensor, published.landing, None, pipeline=published)
    assert _sense(sensor, published.landing, cursor, pipeline=published)[0] == []
    # a corrected April export: April was delivered before, so the run takes it
    april = published.landing / "public_service" / "dossiers_202204.ndjson"
    april.write_bytes(april.read_bytes() + b"\n")
    _, cursor = _sense(sensor, published.landing, cursor, pipeline=published)
    (corrected,) = _sense(sensor, published.landing, cursor, pipeline=published)[0]
    assert corrected.partition_key == "94" and automation.RANGE_START not in corrected.tags
    # May's export only changes dossiers received before May: May is no month with dossiers, not requested
    _export(published.landing, "dossiers_202205.ndjson", "2022-05-20T09:00:00+07:00", lines=40)
    _, cursor = _sense(sensor, published.landing, cursor, pipeline=published)
    (request,) = _sense(sensor, published.landing, cursor, pipeline=published)[0]
    assert sensor.job_name == "refresh_public_service"
    assert automation.RANGE_START not in request.tags and request.partition_key == "94"
    result = published.run(sensor.job_name, tags=request.tags, asset_selection=request.asset_selection)
    assert result.success, failure_messages(result)
    assert _months(published) == ["2022-01", "2022-02", "2022-03", "2022-04"]  # no May: no dossier of May

    # the export updated dossiers received in earlier months: the sensor asks for them, once
    data = _changed_months(published)
    requests = data.run_requests
    assert requests, "no run requested for the months the export changed"
    assert not data.dynamic_partitions_requests  # no new month
    ranges = [(r.tags[automation.RANGE_START], r.tags[automation.RANGE_END]) for r in requests]
    assert all(first.endswith("|94") and last.endswith("|94") for first, last in ranges), ranges  # every province
    ranges = [(first.split("|")[0], last.split("|")[0]) for first, last in ranges]
    assert all(first <= last < "2022-05" for first, last in ranges), ranges
    assert {m for r in ranges for m in r} <= set(public_service.delivered_months(published.lake))  # delivered only
    with published.environment(), dg.DagsterInstance.get() as instance:
        assert public_service.PARTITIONED.ranges(instance) == ranges
        # while a run that builds dossier months is in flight, the sensor waits for it
        running = create_run_for_test(instance, job_name="refresh_all", status=dg.DagsterRunStatus.STARTED)
    waiting = _changed_months(published)
    assert waiting.run_requests == [] and running.run_id[:8] in waiting.skip_message
    with published.environment(), dg.DagsterInstance.get() as instance:
        instance.report_run_canceled(running)
    assert [r.run_key for r in _changed_months(published).run_requests] == [r.run_key for r in requests]

    for request in requests:
        result = published.run("dossier_months", tags=request.tags)
        assert result.success, failure_messages(result)
        assert "publish/warehouse" in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert _changed_months(published).run_requests == []
    finished = published.query(
        "select count(*) from silver.dossiers where updated_at = timestamp '2022-05-20 09:00:00'"  # Vietnam time
    )
    assert finished[0][0] > 0  # the late versions reached the warehouse
    assert _unbuilt(published) == set()


def test_on_a_fresh_dagster_home_the_months_sensor_registers_the_delivered_months(published: Pipeline) -> None:
    """A new instance over a built lake: the months are registered (in calendar order), none is rebuilt."""
    shutil.rmtree(published.home)
    published.home.mkdir()
    shutil.copy(LOCAL_INSTANCE, published.home / "dagster.yaml")
    data = _changed_months(published)
    assert [(r.partitions_def_name, r.partition_keys) for r in data.dynamic_partitions_requests] == [
        ("dossier_months", ["2022-01", "2022-02", "2022-03", "2022-04"])
    ]
    assert data.run_requests == [] and "up to date" in data.skip_message
    assert _months(published) == ["2022-01", "2022-02", "2022-03", "2022-04"]
    assert not _changed_months(published).dynamic_partitions_requests  # once


def _received_month(line: str) -> str | None:
    """The month of receipt (NgayTiepNhan, ISO or dd/mm/yyyy) of an export line, if it reads."""
    try:
        received = str(json.loads(line).get("NgayTiepNhan") or "")
    except ValueError:
        return None
    if found := re.match(r"(\d{4})-(\d{2})", received):
        return f"{found[1]}-{found[2]}"
    if found := re.match(r"\d{1,2}/(\d{1,2})/(\d{4})", received):
        return f"{found[2]}-{int(found[1]):02d}"
    return None


def test_a_month_delivered_late_is_registered_after_newer_ones_and_built_alone(tmp_path: Path) -> None:
    """March arrives after April: its key sits after April's in Dagster's order, and no range spans the gap."""
    pipeline = new_pipeline(tmp_path / "data")
    folder = pipeline.landing / "public_service"
    march = (folder / "dossiers_202203.ndjson").read_text(encoding="utf-8")
    (folder / "dossiers_202203.ndjson").unlink()
    april = (folder / "dossiers_202204.ndjson").read_text(encoding="utf-8").splitlines(keepends=True)
    withheld = [line for line in april if _received_month(line) == "2022-03"]  # April's updates of March
    assert withheld
    kept = [line for line in april if _received_month(line) != "2022-03"]
    (folder / "dossiers_202204.ndjson").write_text("".join(kept), encoding="utf-8")
    assert succeeded(pipeline.refresh())
    assert _months(pipeline) == ["2022-01", "2022-02", "2022-04"] and _unbuilt(pipeline) == set()

    # March is delivered now, whole: the delivery's run loads it and registers it (no range yet: a new month)
    (folder / "dossiers_202203.ndjson").write_text(march + "".join(withheld), encoding="utf-8")
    sensor = defs.resolve_sensor_def("dossiers_delivery")
    _, cursor = _sense(sensor, pipeline.landing, None, pipeline=pipeline)
    (request,) = _sense(sensor, pipeline.landing, cursor, pipeline=pipeline)[0]
    assert automation.RANGE_START not in request.tags
    result = pipeline.run(sensor.job_name, tags=request.tags, asset_selection=request.asset_selection)
    assert result.success, failure_messages(result)
    assert _months(pipeline) == ["2022-01", "2022-02", "2022-04", "2022-03"]  # Dagster's order: as added
    assert _unbuilt(pipeline) == {"2022-03"}

    # the months' sensor asks for the months March's export changed; no range takes a month it did not ask for
    data = _changed_months(pipeline)
    changed = public_service.months_to_refresh(lake=pipeline.lake)
    assert "2022-03" in changed and set(changed) <= set(_months(pipeline))
    keys = _months(pipeline)
    asked = []
    for request in data.run_requests:
        first, last = (request.tags[tag].split("|")[0] for tag in (automation.RANGE_START, automation.RANGE_END))
        asked.extend(keys[keys.index(first) : keys.index(last) + 1])  # what Dagster runs for the range
        assert first <= last
    assert sorted(asked) == changed
    for request in data.run_requests:
        result = pipeline.run("dossier_months", tags=request.tags)
        assert result.success, failure_messages(result)
    assert _unbuilt(pipeline) == set() and public_service.months_to_refresh(lake=pipeline.lake) == []
    months = pipeline.query("select strftime(month, '%Y-%m'), count(*) from silver.dossiers group by 1 order by 1")
    assert [m for m, _ in months] == ["2022-01", "2022-02", "2022-03", "2022-04"] and months[2][1] > 200


# --- freshness -----------------------------------------------------------------------------------


def _last_materialized(pipeline: Pipeline, key: dg.AssetKey) -> float:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(pipeline.home))
        with dg.DagsterInstance.get() as instance:
            return instance.get_latest_materialization_event(key).timestamp


def _freshness(pipeline: Pipeline, at: float) -> dict[str, bool]:
    with freeze_time(at):
        result = pipeline.run("check_gold_freshness")
    assert result.success, failure_messages(result)
    return {e.asset_key.to_user_string(): e.passed for e in result.get_asset_check_evaluations()}


def test_gold_goes_stale_after_26_hours_and_a_refresh_makes_it_fresh(published: Pipeline) -> None:
    refreshed = max(_last_materialized(published, key) for key in GOLD)
    hour = 3600.0
    assert _freshness(published, refreshed + 25 * hour) == {k.to_user_string(): True for k in GOLD}
    assert _freshness(published, refreshed + 27 * hour) == {k.to_user_string(): False for k in GOLD}
    with freeze_time(refreshed + 27 * hour):  # the next night's refresh
        result = published.run()
    assert result.success, failure_messages(result)
    in_run = {e.asset_key: e.passed for e in result.get_asset_check_evaluations() if e.check_name == "freshness_check"}
    assert in_run == {key: True for key in GOLD}  # checked after gold is rebuilt, in the same run
    assert _freshness(published, refreshed + 28 * hour) == {k.to_user_string(): True for k in GOLD}


def test_gold_assets_carry_the_freshness_policy_and_a_sensor_checks_them() -> None:
    graph = defs.resolve_asset_graph()
    policy = dg.FreshnessPolicy.time_window(fail_window=automation.FRESHNESS_WINDOW)
    for key in graph.get_all_asset_keys():
        assert (graph.get(key).freshness_policy == policy) == (key.path[0] == "gold"), key
    checks = {(c.asset_key, c.name) for c in graph.asset_check_keys if c.name == "freshness_check"}
    assert checks == {(key, "freshness_check") for key in GOLD}
    sensor = defs.resolve_sensor_def("gold_freshness")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


# --- concurrency ---------------------------------------------------------------------------------


def test_every_asset_writes_under_its_own_pool() -> None:
    graph = defs.resolve_asset_graph()
    pools: dict[str, set[str]] = {}
    for key in graph.materializable_asset_keys:  # the observed sources (landing, policy) write nothing
        node = graph.get(key)
        assert node.pools, f"{key.to_user_string()} has no concurrency pool"
        for pool in node.pools:
            pools.setdefault(pool, set()).add(key.to_user_string())
    assert pools["warehouse"] == {"publish/warehouse"}
    assert pools[pool_for("silver", "procedures")] == {"silver/procedures", "quarantine/procedures"}
    assert all(len(keys) == 1 for pool, keys in pools.items() if not pool.startswith("silver/")), pools


def test_a_publish_waits_while_another_run_holds_the_warehouse(published: Pipeline) -> None:
    """Another run holds the `warehouse` slot: this run's publish waits for it, then publishes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(published.home))
        with dg.DagsterInstance.get() as instance:
            storage = instance.event_log_storage
            storage.initialize_concurrency_limit_to_default("warehouse")
            assert storage.get_concurrency_info("warehouse").slot_count == 1
            assert storage.claim_concurrency_slot("warehouse", "another-run", "publish__warehouse").is_claimed
            before = published.warehouse.stat().st_mtime_ns
            outcome: list[dg.ExecuteInProcessResult] = []
            runner = threading.Thread(target=lambda: outcome.append(published.run("refresh_publish")))
            runner.start()
            try:
                waiting = False
                for _ in range(600):  # until the step is queued behind the other run (bounded)
                    info = storage.get_concurrency_info("warehouse")
                    if any(step.run_id != "another-run" for step in info.pending_steps):
                        waiting = True
                        break
                    runner.join(0.1)
                assert waiting, "the publish step did not wait for the warehouse pool"
                assert published.warehouse.stat().st_mtime_ns == before  # not published while held
            finally:
                storage.free_concurrency_slot_for_step("another-run", "publish__warehouse")
                runner.join(300)
    assert outcome and outcome[0].success, failure_messages(outcome[0]) if outcome else "no result"
    assert published.warehouse.stat().st_mtime_ns != before
