"""One department's bad delivery never holds back the others (issue 10).

Real deliveries on a copy of the published sample, real Dagster runs through the CLI's own
`refresh`, the real warehouse: bad rows are quarantined and every feed publishes; a wholly broken
feed is blocked (with its numbers in ops.feed_status) while the warehouse keeps its last good rows;
a step that fails outright still lets the `publish` run publish the others; the policy is a file.
"""

from __future__ import annotations

import csv
import io
import json
import signal
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from openpyxl import load_workbook

from ioc_pipeline import cli, recovery
from ioc_pipeline.definitions import build_defs
from ioc_pipeline.progress import root_message
from tests.conftest import NEWEST_CATALOG, Pipeline, failure_messages, new_pipeline


def _status(pipeline: Pipeline) -> dict[str, dict]:
    rows = pipeline.query(
        "select feed, coalesce(carrier, ''), state, reason_en, reason_vi, last_published_snapshot from ops.feed_status"
    )
    return {
        (f"{feed}/{carrier}" if carrier else feed): {"state": s, "en": en, "vi": vi, "published": p}
        for feed, carrier, s, en, vi, p in rows
    }


def _rewrite_csv(source: Path, target: Path, change: dict[int, dict[str, str]]) -> int:
    """Copy a delivered CSV (same delimiter, BOM, header) changing some rows' cells; returns its data rows."""
    text = source.read_text(encoding="utf-8-sig")
    delimiter = ";" if text.splitlines()[0].count(";") > text.splitlines()[0].count(",") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header = rows[0]
    for index, cells in change.items():
        for column, value in cells.items():
            rows[index][header.index(column)] = value
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    target.write_text(out.getvalue(), encoding="utf-8-sig")
    return len(rows) - 1


def _run_cli(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    handlers = {sig: signal.getsignal(sig) for sig in recovery.STOP_SIGNALS}
    with pipeline.environment():
        code = cli.run()
    # the stop-on-signal handlers are the run's only: a process that goes on (this test's) gets its own back
    assert {sig: signal.getsignal(sig) for sig in recovery.STOP_SIGNALS} == handlers
    return code, capsys.readouterr().out


def test_a_few_bad_rows_in_two_feeds_are_quarantined_and_every_feed_publishes(
    published: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    bts = published.landing / "telecom" / "bts"
    bad_bts = {i: {"Kinh độ": "không rõ"} for i in (3, 7, 11, 15)}  # 4 stations with unreadable coordinates
    delivered_bts = _rewrite_csv(bts / "viettel_20220430.csv", bts / "viettel_20220531.csv", bad_bts)
    postal = published.landing / "postal"
    bad_points = {2: {"Loại điểm": "Ki-ốt"}, 5: {"Loại điểm": "Quầy"}}
    _rewrite_csv(postal / "service_points_20220430.csv", postal / "service_points_20220531.csv", bad_points)

    code, out = _run_cli(published, capsys)

    assert code == cli.EXIT_OK, out
    status = _status(published)
    assert status["bts_stations/viettel"]["published"] == date(2022, 5, 31)
    assert status["postal_service_points"]["published"] == date(2022, 5, 31)
    assert not [name for name, row in status.items() if row["state"] in ("blocked", "file_refused")]
    quarantined = published.lake.read("quarantine", "bts_stations")
    new_file = quarantined.filter(pl.col("source_file") == "telecom/bts/viettel_20220531.csv")
    assert {r + 1 for r in bad_bts} <= set(new_file["source_row"].to_list())  # csv line = header + index
    assert "Kinh độ không phải là số độ thập phân" in " ".join(new_file["reason_vi"].to_list())
    points = published.lake.read("quarantine", "postal_service_points")
    assert set(points.filter(pl.col("rule") == "point_type_known")["source_row"].to_list()) >= {3, 6}
    # every delivered row is in exactly one place, for every feed's batch in force
    for table, batch, delivered, clean, refused in published.query(
        "select feed, batch, delivered_rows, clean_rows, refused_rows from ops.gate_results"
    ):
        assert delivered == clean + refused, (table, batch)
        if table != "dossiers":
            assert published.query(f"select count(*) from quarantine.{table}")[0][0] == refused, table
    viettel = published.query(
        "select count(*) from silver.bts_stations where source_file = 'telecom/bts/viettel_20220531.csv'"
    )[0][0]
    viettel_refused = new_file.height
    assert viettel + viettel_refused == delivered_bts
    assert "feeds (ops.feed_status):" in out and "bts_stations/viettel" in out
    # the carrier's feedback workbook: its own refused rows, the reason in Vietnamese
    (feedback,) = [
        f
        for (files,) in published.query("select feedback_files from ops.gate_results")
        for f in files
        if "viettel_20220531" in f
    ]
    book = load_workbook(feedback, read_only=True)
    summary = {r[0]: r[1] for r in book["Tóm tắt"].iter_rows(values_only=True) if r and r[0]}
    assert summary["Số dòng đã đọc"] == delivered_bts and summary["Số dòng bị loại"] == viettel_refused
    refused_rows = list(book["Dòng bị loại"].iter_rows(values_only=True))[1:]
    assert {r[0] for r in refused_rows} >= {r + 1 for r in bad_bts}
    assert all(r[2] for r in refused_rows)  # a Vietnamese reason on every row


def test_a_wholly_broken_feed_is_blocked_and_the_others_publish(
    published: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = json.loads((published.landing / NEWEST_CATALOG).read_text(encoding="utf-8"))
    for row in catalog:
        row["MucDoDVC"] = "chưa xác định"
    (published.landing / "procedures" / "tthc_20220531.json").write_text(json.dumps(catalog, ensure_ascii=False))
    bts = published.landing / "telecom" / "bts"
    _rewrite_csv(bts / "viettel_20220430.csv", bts / "viettel_20220531.csv", {})  # a clean new register
    before = published.query("select * from silver.procedures order by procedure_code")

    code, out = _run_cli(published, capsys)

    assert code == cli.EXIT_PARTIAL, out
    status = _status(published)
    blocked = status["procedures"]
    assert blocked["state"] == "blocked"
    assert (
        "procedures: 1,859 of 1,859 rows (100.0 %) refused; policy blocks above 10 % and 10 rows: blocked"
        in (blocked["en"])
    )
    assert "the 2022-04-30 data stays published" in blocked["en"] and "bị chặn" in blocked["vi"]
    assert status["bts_stations/viettel"]["published"] == date(2022, 5, 31)  # the other feed went on
    assert published.query("select * from silver.procedures order by procedure_code") == before
    as_of = published.query("select max(as_of_date) from gold.ioc_scorecard where indicator_code = 'procedures_total'")[
        0
    ][0]
    assert as_of == date(2022, 4, 30)  # the last good figures keep their own date
    assert published.scorecard()["procedures_total"] == 1843
    assert "procedures" in out and "blocked" in out and "1,859 of 1,859 rows" in out
    alerts = published.query("select alert_id, message from ops.alerts where kind = 'batch_blocked'")
    assert len(alerts) == 1 and "1,859 of 1,859" in alerts[0][1]

    # the same blocked file on the next run: still blocked, not alerted again, the run still publishes
    code, _ = _run_cli(published, capsys)
    assert code == cli.EXIT_PARTIAL
    assert len(published.query("select * from ops.alerts where kind = 'batch_blocked'")) == 1


def test_a_blocked_first_delivery_leaves_the_feed_absent_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = new_pipeline(tmp_path / "data", feeds=("procedures", "postal"))
    newest = pipeline.landing / NEWEST_CATALOG
    catalog = json.loads(newest.read_text(encoding="utf-8"))
    for row in catalog[:500]:
        row["MaTTHC"] = "TTHC-" + row["MaTTHC"]
    newest.write_text(json.dumps(catalog, ensure_ascii=False), encoding="utf-8")

    code, out = _run_cli(pipeline, capsys)

    assert code == cli.EXIT_PARTIAL, out
    tables = {name for (name,) in pipeline.query("select schema_name || '.' || table_name from duckdb_tables()")}
    assert "silver.procedures" not in tables and "gold.procedure_service_levels" not in tables
    assert "silver.postal_enterprises" in tables  # the other feed is published
    status = _status(pipeline)
    assert status["procedures"]["state"] == "blocked" and "nothing published yet" in status["procedures"]["en"]
    assert status["bts_stations/viettel"]["state"] == "never_delivered"
    assert "procedures_total" not in pipeline.scorecard()


def test_the_quality_policy_is_a_file_with_warn_only_rules(
    published: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = json.loads((published.landing / NEWEST_CATALOG).read_text(encoding="utf-8"))
    for row in catalog[:300]:
        row["MucDoDVC"] = "1"  # level 1: outside the catalog's levels, 16 % of the snapshot
    (published.landing / "procedures" / "tthc_20220531.json").write_text(json.dumps(catalog, ensure_ascii=False))
    policy = tmp_path / "policy.toml"
    policy.write_text(
        "[default]\nmax_refused_share = 0.10\nmin_refused_rows = 10\nmin_row_ratio = 0.5\n\n"
        '[feeds.procedures]\nwarn_only = ["service_level_in_set"]\n',
        encoding="utf-8",
    )
    published.extra_env["IOC_QUALITY_POLICY"] = str(policy)

    code, out = _run_cli(published, capsys)

    assert code == cli.EXIT_OK, out
    refused = published.query("select rule, count(*) from quarantine.procedures group by rule")
    assert "service_level_in_set" not in dict(refused)  # it only warns now: the rows are published
    levels = dict(published.query("select service_level, count(*) from silver.procedures group by 1"))
    assert levels.get(1, 0) >= 290
    (result,) = published.query("select decision, batch from ops.gate_results where feed = 'procedures'")
    assert result == ("published", "2022-05-31")


def test_a_failing_step_does_not_keep_the_other_feeds_unpublished(
    published: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A feed's step that raises (here a mistyped policy of that feed) fails its province partition's run and
    skips what is downstream of it in that run; the CLI's later runs (and the `publish_after_failure` sensor,
    below, for a run that was to publish) still publish every other feed's new data."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[default]\n\n[feeds.bts_stations]\nmin_refused_rows = "ten"\n', encoding="utf-8")
    published.extra_env["IOC_QUALITY_POLICY"] = str(policy)
    catalog = json.loads((published.landing / NEWEST_CATALOG).read_text(encoding="utf-8"))
    (published.landing / "procedures" / "tthc_20220531.json").write_text(json.dumps(catalog[:1700]))

    code, out = _run_cli(published, capsys)

    assert code == cli.EXIT_PARTIAL, out
    assert "min_refused_rows = 'ten' is not a int" in out, out
    shown = " ".join(out.split())
    assert "failed: refresh_provinces" in shown and "skipped gold/telecom_coverage_gaps" in shown
    assert published.scorecard()["procedures_total"] < 1843  # the new catalog reached the warehouse
    assert published.query("select count(*) from silver.bts_stations")[0][0] > 0  # BTS kept its last good rows


def test_the_publish_after_failure_sensor_requests_the_publish_job(published: Pipeline, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[feeds.postal_enterprises]\nmax_refused_share = "a quarter"\n', encoding="utf-8")
    published.extra_env["IOC_QUALITY_POLICY"] = str(policy)
    cursor = published.tick("publish_after_failure").cursor
    failed = published.run("refresh_postal")
    causes = [root_message(e.event_specific_data.error) for e in failed.all_events if e.is_step_failure]
    assert not failed.success and any("max_refused_share = 'a quarter'" in c for c in causes), causes
    requests = published.tick("publish_after_failure", cursor).run_requests or []
    assert [r.run_key for r in requests] == [f"publish-after:{failed.run_id}"]
    assert build_defs().resolve_sensor_def("publish_after_failure").job_name == "publish"
    published.extra_env.pop("IOC_QUALITY_POLICY")
    publish = published.run("publish")
    assert publish.success, failure_messages(publish)


def test_a_feed_past_its_cadence_is_late_and_a_fresh_delivery_is_not(
    published: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    status = _status(published)
    assert status["postal_enterprises"]["state"] == "late"
    assert "late after 35 days" in status["postal_enterprises"]["en"]
    assert "Sở Thông tin và Truyền thông cần gửi bản mới" in status["postal_enterprises"]["vi"]
    published.deliver_catalog()
    code, out = _run_cli(published, capsys)
    assert code == cli.EXIT_OK, out
    status = _status(published)
    assert status["procedures"]["state"] == "published"
    assert status["procedures"]["published"] == date.today()
    assert status["postal_enterprises"]["state"] == "late"


@pytest.mark.slow  # `cli run` and `cli scorecard` as subprocesses, a gateway server
def test_run_and_scorecard_with_every_setting_from_the_environment(tmp_path: Path) -> None:
    """`cli run` then `cli scorecard` as a shell runs them, every variable of the README's table set
    (production mode, a real key, the dossiers through a gateway on 127.0.0.1): no EnvVar leaks."""
    import os
    import secrets
    import shutil
    import subprocess
    import sys

    from ioc_pipeline.sample.__main__ import FEEDS, SEED
    from ioc_pipeline.sample.gateway import Gateway, GatewayServer
    from tests.conftest import LOCAL_INSTANCE, REPO

    landing, home = tmp_path / "delivered", tmp_path / "home"
    home.mkdir()
    shutil.copy(LOCAL_INSTANCE, home / "dagster.yaml")
    for name in ("procedures", "telecom", "postal"):
        FEEDS[name](landing, SEED)
    exports = tmp_path / "exports"
    FEEDS["dossiers"](exports, SEED)
    gateway = Gateway("t0ken-" + secrets.token_hex(8))
    gateway.add_landing(exports)
    with GatewayServer(gateway) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("IOC_", "DAGSTER_"))},
            "IOC_DATA_DIR": str(tmp_path / "unused"),
            "IOC_LANDING_DIR": str(landing),
            "IOC_LAKE_DIR": str(tmp_path / "lake"),
            "IOC_DLT_DIR": str(tmp_path / "dlt"),
            "IOC_WAREHOUSE_PATH": str(tmp_path / "published" / "ioc.duckdb"),
            "DAGSTER_HOME": str(home),
            "IOC_MODE": "production",
            "IOC_PII_KEY": secrets.token_urlsafe(32),
            "IOC_DOSSIER_API_URL": server.url,
            "IOC_DOSSIER_API_TOKEN": gateway.token,
            "IOC_DOSSIER_API_PAGE_SIZE": "500",
            "IOC_DOSSIER_API_BACKOFF_SECONDS": "0.1",
            "IOC_DOSSIER_API_MAX_ATTEMPTS": "3",
            "IOC_DOSSIER_API_STEP_RETRIES": "1",
            "IOC_DOSSIER_API_TIMEOUT_SECONDS": "30",
            "IOC_DOSSIER_API_LOOKBACK_HOURS": "24",
            "IOC_DOSSIER_API_RECONCILE_DAYS": "1",
            "IOC_QUALITY_POLICY": str(REPO / "ioc_pipeline" / "checks" / "quality_policy.toml"),
            "IOC_ALERT_WEBHOOK_URL": "",
        }
        command = [sys.executable, "-m", "ioc_pipeline.cli"]
        ran = subprocess.run([*command, "run"], env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == cli.EXIT_OK, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "procedures_total" in ran.stdout and "1,843" in ran.stdout
    shown = subprocess.run([*command, "scorecard"], env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert str(tmp_path / "published" / "ioc.duckdb") in shown.stdout and "dossiers_received" in shown.stdout
    assert not (tmp_path / "unused").exists()
