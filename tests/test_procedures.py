"""The procedure catalog end to end: the founding report's figures, quarantine, bad files,
re-runs, blocking batch checks, and an analyst reading the warehouse during a refresh."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from ioc_pipeline.sample import procedures as sample
from ioc_pipeline.warehouse import connect
from tests.conftest import REPO, Pipeline, failure_messages

SEED_FIGURES = {
    "procedures_total": 1843,
    "procedures_level_2": 560,
    "procedures_level_3": 312,
    "procedures_level_4": 971,
    "procedures_level_3_pct": 16.93,
    "procedures_level_4_pct": 52.68,
    "procedures_online_full": 971,
    "procedures_online_partial": 312,
}
NEWEST = "procedures/tthc_20220430.json"
SILVER = dg.AssetKey(["silver", "procedures"])  # other feeds' gated tables report the same check names


def test_sample_reproduces_the_founding_report(sample_run: Pipeline) -> None:
    scorecard = sample_run.scorecard()
    for code, expected in SEED_FIGURES.items():
        # the report truncates 52.6858 % to 52.68 and rounds 16.929 % to 16.93: within 0.01 either way
        assert scorecard[code] == pytest.approx(expected, abs=0.01), code
    assert sample_run.query("select distinct as_of_date::varchar from gold.ioc_scorecard") == [("2022-04-30",)]


def test_every_bad_row_kind_is_quarantined_with_its_rule(sample_run: Pipeline) -> None:
    quarantined = sample_run.query("select rules, source_file, source_row, reason from quarantine.procedures")
    for rule in {rule for rule, _ in sample.BAD_ROWS}:
        expected = sum(1 for r, _ in sample.BAD_ROWS if r == rule)
        hits = [q for q in quarantined if rule in q[0]]
        assert len(hits) == expected, rule
        assert all(q[1] == NEWEST and q[2] >= 1 and rule in q[3] for q in hits)
    assert len(quarantined) == len(sample.BAD_ROWS)


def test_clean_plus_quarantined_equals_delivered(sample_run: Pipeline) -> None:
    delivered = len(json.loads((sample_run.landing / NEWEST).read_text(encoding="utf-8")))
    clean = sample_run.query("select count(*) from silver.procedures")[0][0]
    rejected = sample_run.query("select count(*) from quarantine.procedures")[0][0]
    assert clean + rejected == delivered
    rows = sample_run.query(
        "select source_row from silver.procedures union all select source_row from quarantine.procedures"
    )
    assert sorted(r[0] for r in rows) == list(range(1, delivered + 1))  # each row in exactly one place


def test_newest_snapshot_supersedes_and_both_stay_in_bronze(sample_run: Pipeline) -> None:
    bronze = sample_run.lake.read("bronze", "procedures")
    assert set(bronze["_source_file"].unique()) == {NEWEST, "procedures/tthc_20220331.xlsx"}
    assert sample_run.query("select distinct source_file from silver.procedures") == [(NEWEST,)]
    # the xlsx had title rows above the header: its first data row is sheet row 5
    xlsx = bronze.filter(bronze["_source_file"] == "procedures/tthc_20220331.xlsx")
    assert xlsx["_source_row"].min() == 5 and xlsx.height == 1790


def test_silver_types_and_online_class(sample_run: Pipeline) -> None:
    rows = dict(
        sample_run.query(
            "select online_class_source || '/' || service_level || '/' || online_class, count(*) "
            "from silver.procedures group by all"
        )
    )
    assert set(rows) <= {
        "derived/2/none",
        "derived/3/partial",
        "derived/4/full",
        "delivered/3/partial",
        "delivered/4/full",
    }
    assert rows["delivered/4/full"] > 0 and rows["derived/4/full"] > 0
    types = dict(
        sample_run.query(
            "select column_name, data_type from duckdb_columns() where table_name='procedures' and schema_name='silver'"
        )
    )
    assert types["service_level"] == "TINYINT" and types["tiers"] == "VARCHAR[]" and types["updated_on"] == "DATE"


def test_running_the_same_delivery_twice_changes_nothing(published: Pipeline) -> None:
    tables = ["silver.procedures", "quarantine.procedures", "gold.procedure_service_levels", "gold.ioc_scorecard"]
    before = {t: published.query(f"select * from {t} order by all") for t in tables}
    bronze_rows = published.lake.row_count("bronze", "procedures")
    result = published.run("refresh_procedures")
    assert result.success, failure_messages(result)
    assert published.lake.row_count("bronze", "procedures") == bronze_rows
    assert {t: published.query(f"select * from {t} order by all") for t in tables} == before
    bronze = result.asset_materializations_for_node("bronze__procedures")[0].metadata
    assert bronze["rows_loaded"].value == 0 and len(bronze["files_skipped_already_loaded"].value) == 2


BAD_FILES = {
    "invalid_json": ("tthc_20220515.json", b'[{"MaTTHC": "1.000001", ', "not valid JSON"),
    "broken_xlsx": ("tthc_20220515.xlsx", b"PK\x03\x04 this is no workbook", "not a readable .xlsx workbook"),
    "missing_column": (
        "tthc_20220515.json",
        json.dumps([{"MaTTHC": "1.000001", "TenTTHC": "x", "LinhVuc": "y", "CapThucHien": "Cấp xã"}]).encode(),
        "required column(s) missing: agency, service_level",
    ),
    "empty_file": ("tthc_20220515.json", b"", "the file is empty"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_file_is_refused_cleanly_and_nothing_published_changes(published: Pipeline, kind: str) -> None:
    """The bad file is refused by name (the step succeeds, its check `delivered_files_readable` fails) and
    leaves nothing in bronze; what was published stays."""
    name, content, problem = BAD_FILES[kind]
    before = published.scorecard()
    bronze_rows = published.lake.row_count("bronze", "procedures")
    bad = published.landing / "procedures" / name
    bad.write_bytes(content)
    result = published.run("refresh_procedures")
    assert result.success, failure_messages(result)
    bronze = result.asset_materializations_for_node("bronze__procedures")[0].metadata
    assert problem in bronze["files_refused"].value[f"procedures/{name}"]
    readable = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "delivered_files_readable" and c.asset_key == dg.AssetKey(["bronze", "procedures"])
    ]
    assert not readable[0].passed and f"procedures/{name}" in readable[0].description
    assert published.lake.row_count("bronze", "procedures") == bronze_rows
    assert published.scorecard() == before
    assert published.query("select count(*) from silver.procedures")[0][0] == 1843
    assert bad.read_bytes() == content  # the delivery stays in the landing zone, untouched
    assert (
        published.lake.read("silver", "procedures").height
        == published.query("select count(*) from silver.procedures")[0][0]
    )


def _deliver(pipeline: Pipeline, name: str, rows: list[dict]) -> None:
    (pipeline.landing / "procedures" / name).write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")


def _newest_rows(pipeline: Pipeline) -> list[dict]:
    return json.loads((pipeline.landing / NEWEST).read_text(encoding="utf-8"))


def test_a_collapsed_delivery_is_blocked_and_gold_stays(published: Pipeline) -> None:
    before = published.scorecard()
    _deliver(published, "tthc_20220531.json", _newest_rows(published)[:600])  # a third of the catalog
    result = published.run("refresh_procedures")
    assert result.success, failure_messages(result)  # blocked is a decision, not a failure: the others publish
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations() if e.asset_key == SILVER}
    assert checks == {"row_count_not_collapsed": False, "rejected_share_within_threshold": True}
    collapse = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == SILVER and e.check_name == "row_count_not_collapsed"
    )
    assert collapse.severity == dg.AssetCheckSeverity.ERROR
    assert "fewer than the minimum 921 (50 % of the 1,843 rows published before): blocked" in collapse.description
    assert published.scorecard() == before
    assert published.lake.read("silver", "procedures").height == 1843  # the published silver was kept
    assert published.lake.read("quarantine", "procedures")["source_file"].unique().to_list() == [
        "procedures/tthc_20220531.json"
    ]
    published_keys = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["publish", "warehouse"]) in published_keys  # every feed's last good data published


def test_a_mostly_rejected_delivery_is_blocked(published: Pipeline) -> None:
    rows = _newest_rows(published)
    for row in rows[:400]:
        row["MucDoDVC"] = "không rõ"
    _deliver(published, "tthc_20220531.json", rows)
    result = published.run("refresh_procedures")
    checks = {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == SILVER}
    assert checks["rejected_share_within_threshold"].passed is False
    refused = published.lake.read("quarantine", "procedures").height
    assert refused >= 400
    assert checks["rejected_share_within_threshold"].description == (
        f"procedures: {refused:,} of 1,859 rows ({refused / 1859 * 100:.1f} %) refused; "
        "policy blocks above 10 % and 10 rows: blocked"
    )
    assert result.success, failure_messages(result)
    assert published.scorecard()["procedures_total"] == 1843


def test_a_newer_snapshot_is_published(published: Pipeline) -> None:
    rows = _newest_rows(published)
    dropped = [r for r in rows if str(r.get("MucDoDVC")).endswith("2") and r["MaTTHC"][0] in "123"][:100]
    _deliver(published, "tthc_20220531.json", [r for r in rows if r not in dropped])
    result = published.run("refresh_procedures")
    assert result.success, failure_messages(result)
    latest = dict(
        published.query("select indicator_code, value from gold.ioc_scorecard where as_of_date = '2022-05-31'")
    )
    assert latest["procedures_level_2"] == 460 and latest["procedures_total"] == 1743
    history = published.query(
        "select value from gold.ioc_scorecard where indicator_code = 'procedures_total' order by as_of_date"
    )
    assert history == [(1843.0,), (1743.0,)]


ANALYST = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "quit":
        break
    try:
        total = con.execute("select value from gold.ioc_scorecard where indicator_code='procedures_total' "
                            "order by as_of_date desc limit 1").fetchone()[0]
        silver = con.execute("select count(*) from silver.procedures").fetchone()[0]
        print(f"{total} {silver}", flush=True)
    except Exception as error:
        print(f"error {type(error).__name__}: {error}", flush=True)
"""


@pytest.mark.slow  # an analyst process and `cli run` as a subprocess, reading across the swap
def test_an_open_analyst_connection_stays_consistent_during_a_refresh(published: Pipeline, tmp_path: Path) -> None:
    analyst = subprocess.Popen(
        [sys.executable, "-c", ANALYST, str(published.warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert analyst.stdout.readline().strip() == "ready"
    answers: list[str] = []
    done = threading.Event()

    def ask() -> None:
        while not done.is_set():
            analyst.stdin.write("q\n")
            analyst.stdin.flush()
            answers.append(analyst.stdout.readline().strip())
            done.wait(0.02)  # an analyst's pace, not a busy loop taking a core from the refresh

    rows = _newest_rows(published)
    _deliver(published, "tthc_20220531.json", [r for r in rows if not str(r.get("MucDoDVC")).endswith("2")][:1500])
    asker = threading.Thread(target=ask)
    asker.start()
    try:
        refresh = subprocess.run(
            [sys.executable, "-m", "ioc_pipeline.cli", "run", "--job", "refresh_procedures"],
            env={**_env(), **published.env()},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        done.set()
        asker.join()
        analyst.stdin.write("quit\n")
        analyst.stdin.flush()
        analyst.wait(timeout=30)
    assert refresh.returncode == 0, refresh.stderr[-3000:]
    assert len(answers) > 5
    assert set(answers) == {"1843.0 1843"}  # the snapshot it opened, whole, and no lock error
    with connect(str(published.warehouse), read_only=True) as fresh:
        assert fresh.execute("select count(*) from silver.procedures").fetchone()[0] < 1843


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("IOC_", "DAGSTER_HOME"))}


def test_the_committed_sample_is_the_generators_output(tmp_path: Path) -> None:
    sample.write(tmp_path, 20220517)
    committed = REPO / "data" / "landing" / NEWEST
    assert committed.read_bytes() == (tmp_path / NEWEST).read_bytes()
