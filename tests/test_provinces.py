"""Several former provinces in one deployment (issue 15, item 1): Cần Thơ city = old Cần Thơ (92), Hậu Giang
(93) and Sóc Trăng (94). Three provinces' deliveries under `<landing>/<code>/`, one run, gold and the
scorecard per former province and for the merged city; Sóc Trăng's figures are the legacy run's; a broken
delivery of one province holds back none of the others. (The legacy layout is the rest of the suite.)"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import pytest
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from ioc_pipeline import automation, cli, provinces, units
from ioc_pipeline.cli import PARTITION_TAG
from ioc_pipeline.definitions import build_defs
from ioc_pipeline.resources import LandingResource
from ioc_pipeline.sample import province as sample
from ioc_pipeline.sample.__main__ import SEED
from ioc_pipeline.sample.__main__ import main as write_sample
from tests.conftest import LOCAL_INSTANCE, Pipeline, failure_messages, succeeded

CODES = ("92", "93", "94")


def three_provinces(root: Path) -> Pipeline:
    pipeline = Pipeline(root, {"IOC_PROVINCES": ",".join(CODES)})
    pipeline.home.mkdir(parents=True)
    shutil.copy(LOCAL_INSTANCE, pipeline.home / "dagster.yaml")
    write_sample(["--province", ",".join(CODES), "--out", str(pipeline.landing)])
    return pipeline


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    pipeline = three_provinces(tmp_path_factory.mktemp("provinces") / "data")
    results = pipeline.refresh()
    assert succeeded(results), failure_messages(results)
    return pipeline


def scorecard(pipeline: Pipeline, code: str, scope: str = provinces.SCOPE_FORMER) -> dict[str, float]:
    """One scope's newest figures (`code`, `scope` are this file's constants, never user input)."""
    where = f"province_code = '{code}' and province_scope = '{scope}'"
    return dict(pipeline.query(f"select indicator_code, value from gold.ioc_scorecard_latest where {where}"))


def test_the_province_list_comes_from_the_unit_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOC_PROVINCES", raising=False)
    assert provinces.codes() == ("94",) and not provinces.partitioned()
    monkeypatch.setenv("IOC_PROVINCES", "93, 92,93")
    assert provinces.codes() == ("93", "92")
    assert [p.name for p in provinces.configured()] == ["Tỉnh Hậu Giang", "Thành phố Cần Thơ"]
    assert sorted(units.merged_into("92")) == list(CODES)
    monkeypatch.setenv("IOC_PROVINCES", "92,95")
    with pytest.raises(ValueError, match="95"):
        provinces.codes()


@pytest.mark.parametrize("code", ["92", "93"])
def test_units_resolve_against_the_rows_former_province(code: str) -> None:
    """Each province's own commune names resolve there, to Cần Thơ city's new units (92)."""
    place = sample.places(code)[0]
    resolved = units.UnitResolver(code).resolve(place.commune, place.district)
    assert resolved.error is None and resolved.unit_name == place.commune
    new = units.admin_units(CODES).filter(era="post_2025")
    assert resolved.new_unit_code in set(new["unit_code"]) and set(new["province_code"]) == {"92"}
    assert units.UnitResolver("94").resolve(place.commune, place.district).error is not None


def test_each_province_lands_in_its_own_paths(merged: Pipeline) -> None:
    lake = merged.root / "lake"
    for code in CODES:
        assert list((lake / "bronze" / "procedures" / code).glob("*.parquet")), code
        assert (lake / "silver" / "bts_stations" / code / "data.parquet").exists(), code
        assert (merged.root / "dlt" / f"ioc_procedures_{code}").is_dir(), code
    assert not list((lake / "bronze" / "procedures").glob("*.parquet"))  # nothing at the table's root
    silver = dict(merged.query("select province_code, count(*) from silver.procedures group by 1"))
    assert silver == {"92": sample.PROCEDURES, "93": sample.PROCEDURES, "94": 1843}
    for code in CODES:  # dossiers: a month partition holds each former province's own file
        assert (lake / "silver" / "dossiers" / "month=2022-04" / code / "data.parquet").exists(), code
        assert list((lake / "bronze" / "dossiers" / code).glob("*.parquet")), code
    dossiers = dict(merged.query("select province_code, count(*) from silver.dossiers group by 1"))
    assert dossiers["92"] == dossiers["93"] == sample.DOSSIERS  # each province's names resolved against its own
    assert merged.query("select count(*) from quarantine.dossiers where province_code in ('92', '93')") == [(0,)]


def test_gold_and_scorecard_per_former_province_and_for_the_merged_city(merged: Pipeline, sample_run: Pipeline) -> None:
    legacy = sample_run.scorecard()
    assert scorecard(merged, "94") == pytest.approx(legacy)  # Sóc Trăng's figures, as in the legacy layout
    per_province = {code: scorecard(merged, code) for code in CODES}
    for code in ("92", "93"):
        for indicator, value in sample.figures(code, SEED).items():
            assert per_province[code][indicator] == value, (code, indicator)
    city = scorecard(merged, "92", provinces.SCOPE_MERGED)
    summed = ("procedures_total", "bts_sites", "bts_sites_4g", "postal_enterprises", "postal_service_points")
    for indicator in (*summed, "dossiers_received"):
        assert city[indicator] == sum(per_province[c][indicator] for c in CODES), indicator
    # gold: the merged city's units are Cần Thơ city's new units, each province's old communes its own
    by_unit = merged.query(
        "select province_scope, province_code, count(distinct new_unit_code), sum(sites) "
        "from gold.telecom_coverage_by_new_unit_latest group by 1, 2 order by 1, 2"
    )
    sites = {(scope, code): total for scope, code, _, total in by_unit}
    assert sites[(provinces.SCOPE_MERGED, "92")] == sum(sites[(provinces.SCOPE_FORMER, c)] for c in CODES)
    communes = dict(
        merged.query("select province_code, count(*) from gold.telecom_coverage_by_commune_latest "
                     "where province_scope = 'former_province' group by 1")
    )  # fmt: skip
    for code in CODES:
        expected = units.admin_units((code,)).filter(era="pre_2025", level="commune", province_code=code).height
        assert communes[code] == expected, code


def test_the_province_columns_are_documented(merged: Pipeline) -> None:
    missing = merged.query(
        "select table_name, column_name from duckdb_columns() where column_name in ('province_code', "
        "'province_scope') and (comment is null or comment = '')"
    )
    assert missing == []


def test_a_broken_delivery_of_one_province_holds_back_none_of_the_others(merged: Pipeline, tmp_path: Path) -> None:
    pipeline = merged.copy(tmp_path / "data")
    newer = "tthc_20220531.json"
    catalog_92 = json.loads((pipeline.landing / "92" / "procedures" / "tthc_20220430.json").read_text("utf-8"))
    (pipeline.landing / "92" / "procedures" / newer).write_text(json.dumps(catalog_92[1:]), encoding="utf-8")
    broken = [{**row, "MaTTHC": f"X{i}"} for i, row in enumerate(catalog_92)]  # every code breaks the pattern
    (pipeline.landing / "93" / "procedures" / newer).write_text(json.dumps(broken), encoding="utf-8")
    (pipeline.landing / "93" / "telecom" / "bts" / "viettel_20220531.csv").write_text('not;a\n"register', "utf-8")

    results = pipeline.refresh()
    assert succeeded(results), failure_messages(results)

    latest = dict(pipeline.query("select province_code, max(snapshot_date)::varchar from silver.procedures group by 1"))
    assert latest == {"92": "2022-05-31", "93": "2022-04-30", "94": "2022-04-30"}  # 93 keeps its last good
    assert scorecard(pipeline, "92")["procedures_total"] == sample.PROCEDURES - 1
    assert scorecard(pipeline, "93")["procedures_total"] == sample.PROCEDURES
    assert scorecard(pipeline, "94") == scorecard(merged, "94")
    decisions = pipeline.query("select batch, decision from ops.gate_results where feed = 'procedures' order by 1")
    assert ("2022-05-31_93", "blocked") in decisions and ("2022-05-31_92", "published") in decisions
    quarantined = pipeline.query("select distinct province_code, rule from quarantine.procedures")
    assert ("93", "procedure_code_pattern") in quarantined
    refused = pipeline.query("select path from ops.refused_files")
    assert ("93/telecom/bts/viettel_20220531.csv",) in refused
    states = {
        (code, feed): state
        for code, feed, state in pipeline.query(
            "select province_code, feed || coalesce('/' || carrier, ''), state from ops.feed_status"
        )
    }
    assert states[("93", "procedures")] == "blocked" and states[("92", "procedures")] != "blocked"
    assert states[("93", "bts_stations/viettel")] == "file_refused"
    assert states[("92", "bts_stations/viettel")] != "file_refused"
    bts = dict(pipeline.query("select province_code, count(*) from silver.bts_stations group by 1"))
    assert bts == dict(merged.query("select province_code, count(*) from silver.bts_stations group by 1"))


def test_validate_judges_a_file_by_its_own_province(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cli validate --province 93`: Hậu Giang's register is publishable there, refused rows as Sóc Trăng's."""
    from ioc_pipeline.validate import EXIT_BLOCKED, EXIT_PUBLISHABLE, validate

    monkeypatch.delenv("IOC_PROVINCES", raising=False)
    write_sample(["--province", "93", "--out", str(tmp_path / "landing")])
    register = str(tmp_path / "landing" / "telecom" / "bts" / "viettel_20220430.csv")
    with provinces.gating("93"):
        assert validate([register], str(tmp_path / "feedback")) == EXIT_PUBLISHABLE
    assert validate([register], str(tmp_path / "feedback")) == EXIT_BLOCKED  # judged as Sóc Trăng's (94)


def test_a_province_whose_load_fails_outright_holds_back_none_of_the_others(
    merged: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a bad file but a broken load (93's dlt state unreadable): logged, alerted, 93's partition fails (its
    run), and the other provinces' new deliveries are loaded, gated and published in their own runs."""
    pipeline = merged.copy(tmp_path / "data")
    (pipeline.root / "dlt" / "ioc_procedures_93" / "state.json").write_text('{"broken', encoding="utf-8")
    for code in ("92", "93"):
        folder = pipeline.landing / code / "procedures"
        catalog = json.loads((folder / "tthc_20220430.json").read_text("utf-8"))
        (folder / "tthc_20220531.json").write_text(json.dumps(catalog[1:]), encoding="utf-8")

    results = pipeline.refresh()
    failed = [r for r in results if not r.success]
    assert [(r.job_def.name, r.dagster_run.tags.get(PARTITION_TAG)) for r in failed] == [("refresh_provinces", "93")]
    assert "former province 93 failed" in failure_messages(failed)
    assert cli.published_in(results[-1])

    latest = dict(pipeline.query("select province_code, max(snapshot_date)::varchar from silver.procedures group by 1"))
    assert latest == {"92": "2022-05-31", "93": "2022-04-30", "94": "2022-04-30"}
    alerts = pipeline.query("select alert_id from ops.alerts where kind = 'province_load_failed'")
    assert alerts == [("province_load_failed:procedures/93",)]
    with pipeline.environment(), dg.DagsterInstance.get() as instance:
        bronze = dg.AssetKey(["bronze", "procedures"])
        status = instance.get_status_by_partition(
            bronze, list(CODES), build_defs().resolve_asset_graph().get(bronze).partitions_def
        )
    assert status == {
        "92": AssetPartitionStatus.MATERIALIZED,
        "93": AssetPartitionStatus.FAILED,
        "94": AssetPartitionStatus.MATERIALIZED,
    }

    with pipeline.environment():  # `cli run --all` meets the broken state again: published, and says so (exit 3)
        assert cli.run(everything=True) == cli.EXIT_PARTIAL
    assert "failed: refresh_provinces" in capsys.readouterr().out


PROVINCE_PARTITIONED = [
    *(
        f"{layer}/{table}"
        for table in ("procedures", "bts_stations", "postal_enterprises", "postal_service_points")
        for layer in ("bronze", "silver", "quarantine")
    ),
    "bronze/dossiers",
]


def test_the_snapshot_feeds_and_dossiers_are_partitioned_by_province_in_dagster(merged: Pipeline) -> None:
    """A partition per former province, each materialized by a run of its own carrying that province's figures;
    the dossiers' silver by month × province, each partition with its own figures."""
    with merged.environment():
        graph = build_defs().resolve_asset_graph()
        with dg.DagsterInstance.get() as instance:
            for name in PROVINCE_PARTITIONED:
                key = dg.AssetKey(name.split("/"))
                assert graph.get(key).partitions_def.get_partition_keys() == list(CODES), name
                assert instance.get_materialized_partitions(key) == set(CODES), name
            silver = {}
            for code in CODES:
                (record,) = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(["silver", "procedures"]), asset_partitions=[code]),
                    limit=1,
                ).records
                run = instance.get_run_by_id(record.run_id)
                assert run.job_name == "refresh_provinces" and run.tags[PARTITION_TAG] == code
                silver[code] = record.asset_materialization.metadata["delivered_rows"].value
            dossiers = dg.AssetKey(["silver", "dossiers"])
            partitions = graph.get(dossiers).partitions_def
            assert partitions.partition_dimension_names == ["month", "province"]
            materialized = instance.get_materialized_partitions(dossiers)
            months = {code: sorted(k.split("|")[0] for k in materialized if k.endswith(f"|{code}")) for code in CODES}
            # the runs take the delivered months of every province (a rectangle): 92 and 93 delivered April only, their
            # other months are built empty, and say so
            assert months == {code: ["2022-01", "2022-02", "2022-03", "2022-04"] for code in CODES}
            (january,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dossiers, asset_partitions=["2022-01|92"]), limit=1
            ).records
            assert january.asset_materialization.metadata["delivered"].value is False
            april = {}
            for code in CODES:
                (record,) = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dossiers, asset_partitions=[f"2022-04|{code}"]), limit=1
                ).records
                april[code] = record.asset_materialization.metadata["dagster/row_count"].value
    expected = dict(merged.query(
        "select province_code, count(*) from (select province_code from silver.procedures union all "
        "select province_code from quarantine.procedures) group by 1"
    ))  # fmt: skip
    assert silver == expected
    per_province = merged.query(
        "select province_code, count(*) from silver.dossiers where received_month = '2022-04-01' group by 1"
    )
    assert april == dict(per_province)


def test_deliveries_and_the_nightly_request_a_run_per_province_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files delivered by 92 and 93 make one run each, of their partition; the nightly runs every province."""
    monkeypatch.setenv("IOC_PROVINCES", ",".join(CODES))
    definitions = build_defs()
    sensor = definitions.resolve_sensor_def("procedures_delivery")
    for code in ("93", "92"):
        (tmp_path / code / "procedures").mkdir(parents=True)
        (tmp_path / code / "procedures" / "tthc_20220531.json").write_bytes(b"[]")
    cursor = None
    with dg.instance_for_test() as instance:
        for _ in range(2):  # a file is complete when it looks the same on two evaluations
            resources = {"landing": LandingResource(root=str(tmp_path))}
            with dg.build_sensor_context(
                cursor=cursor, resources=resources, definitions=definitions, instance=instance
            ) as context:
                data = sensor.evaluate_tick(context)
            cursor = data.cursor
        requested = {r.partition_key: r.tags["ioc/files"] for r in data.run_requests or []}
        assert requested == {"92": "92/procedures/tthc_20220531.json", "93": "93/procedures/tthc_20220531.json"}
        assert definitions.resolve_job_def(sensor.job_name).partitions_def.get_partition_keys() == list(CODES)

        schedule = definitions.resolve_schedule_def("nightly_provinces")
        when = datetime(2026, 11, 28, 1, 0, tzinfo=ZoneInfo(automation.TIMEZONE))
        repository = definitions.get_repository_def()
        with dg.build_schedule_context(instance, when, repository_def=repository) as context:
            requests = schedule.evaluate_tick(context).run_requests
    assert [(r.partition_key, r.run_key) for r in requests] == [(c, f"nightly-2026-11-28-{c}") for c in CODES]
    job = definitions.resolve_job_def(schedule.job_name)
    assert job.name == "refresh_provinces"
    selected = set(requests[0].asset_selection or [])
    assert dg.AssetKey(["bronze", "procedures"]) in selected and dg.AssetKey(["publish", "warehouse"]) in selected
    assert dg.AssetKey(["silver", "dossiers"]) not in selected  # the dossier months are another job's


def test_a_scaled_delivery_of_each_province_has_its_own_codes_catalog_and_units(tmp_path: Path) -> None:
    """`sample --province 92,93 --scale S --months 2` (the scale-out benchmark's delivery): each province's
    dossiers at that scale, numbered by its own one-stop shop, for its own catalog's procedures and units."""
    write_sample(["--province", "92,93", "--scale", "0.01", "--months", "2", "--out", str(tmp_path)])
    for code in ("92", "93"):
        folder = tmp_path / code
        exports = sorted(p.name for p in (folder / "public_service").iterdir())
        assert exports == ["dossiers_202201.ndjson", "dossiers_202202.ndjson"]
        catalog = {row["MaTTHC"] for row in json.loads(next((folder / "procedures").glob("*.json")).read_text())}
        lines = [
            line for export in exports for line in (folder / "public_service" / export).read_text("utf-8").splitlines()
        ]
        records = [record for line in lines if isinstance(record := _parsed(line), dict)]
        assert len(lines) - len(records) < 10  # the export's few deliberately broken lines
        expected = 0.01 * 1_000_000 / 12 * 2  # about S million versions a year, two months of it
        assert 0.7 * expected < len(records) < 1.3 * expected, len(records)
        assert all(r["MaHoSo"].startswith(f"H{code}-") for r in records if r.get("MaHoSo"))  # one blank on purpose
        assert sum(r.get("MaTTHC") in catalog for r in records) > 0.9 * len(records)  # a few unknown on purpose
        resolver = units.UnitResolver(code)
        places = {r.get("DonViHanhChinh") for r in records}
        resolved = {p for p in places if isinstance(p, str) and resolver.resolve(p, allow_district=True).unit_code}
        assert len(resolved) > 0.9 * len(places), places - resolved


def _parsed(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def test_a_provinces_batch_has_its_own_files_columns_whatever_the_other_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bronze is read as the union of every province's files: 93's rows take only the columns of 93's own files
    (not 94's workbook's extra `stt`, nor an optional column only 94 delivered), in their own order, whether or
    not 94 loaded first (side by side on a cluster, either may)."""
    from ioc_pipeline.assets.layers import own_columns, province_of_rows
    from ioc_pipeline.lake import Lake

    monkeypatch.setenv("IOC_PROVINCES", "93,94")
    lake = Lake(str(tmp_path / "lake"))
    folder = tmp_path / "lake" / "bronze" / "bts"
    ours = pl.DataFrame({"_source_file": ["93/a.csv"], "station_code": ["A"], "commune": ["X"]})
    theirs = pl.DataFrame({"_source_file": ["94/b.xlsx"], "stt": ["1"], "address": ["Y"], "station_code": ["B"]})
    (folder / "93").mkdir(parents=True)
    ours.write_parquet(folder / "93" / "1.parquet")

    def batch(code: str) -> pl.DataFrame:
        rows = lake.scan("bronze", "bts").filter(province_of_rows() == code).collect()
        return own_columns(lake, rows, "bts", code)

    alone = batch("93")
    (folder / "94").mkdir()
    theirs.write_parquet(folder / "94" / "1.parquet")
    assert lake.scan("bronze", "bts").collect().columns == ["_source_file", "station_code", "commune", "stt", "address"]
    assert batch("93").equals(alone) and alone.columns == ours.columns
    assert batch("94").columns == theirs.columns and batch("94").height == 1
    monkeypatch.setenv("IOC_PROVINCES", "94")  # one province: as read
    assert own_columns(lake, lake.scan("bronze", "bts").collect(), "bts", "94").width == 5
