"""One-stop-shop dossiers end to end: the sample export, the gateway API (incremental, retries, a
refused token), hand-computed indicators, month partitions, and no personal data anywhere."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import shutil
import sqlite3
import unicodedata
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
import requests

from ioc_pipeline import automation, cli
from ioc_pipeline.assets import public_service
from ioc_pipeline.assets.public_service import CATALOG_CHECK
from ioc_pipeline.pii import SAMPLE_KEY, PiiKeyError, normalise_citizen_id, pseudonymise, resolve_key
from ioc_pipeline.sample import dossiers as sample
from ioc_pipeline.sample.__main__ import SEED
from ioc_pipeline.sample.gateway import Gateway, GatewayServer
from tests.conftest import LOCAL_INSTANCE, REPO, Pipeline, failure_messages, new_pipeline, succeeded

TOKEN = "test-token-0123456789"
MONTHS = ["2022-01", "2022-02", "2022-03", "2022-04"]


def _lines(landing: Path) -> list[tuple[str, int, str]]:
    out = []
    for path in sorted((landing / "public_service").glob("dossiers_*.ndjson")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            out.append((f"public_service/{path.name}", number, line))
    return out


def _records(landing: Path) -> list[dict]:
    records = []
    for _, _, line in _lines(landing):
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


# --------------------------------------------------------------------------------------------------
# the sample export (make run)
# --------------------------------------------------------------------------------------------------


def test_sample_publishes_every_month_and_the_scorecard(sample_run: Pipeline) -> None:
    months = sample_run.query("select strftime(month, '%Y-%m'), count(*) from silver.dossiers group by 1 order by 1")
    assert [m for m, _ in months] == MONTHS and all(n > 200 for _, n in months)
    assert sample_run.lake.partitions("silver", "dossiers") == [f"month={m}" for m in MONTHS]
    kpis = sample_run.query("select month::varchar, dossiers_received from gold.public_service_kpis_monthly order by 1")
    assert kpis == [(f"{m}-01", n) for m, n in months]
    scorecard = dict(
        sample_run.query(
            "select indicator_code, value from gold.ioc_scorecard "
            "where indicator_code like 'dossiers_%' and as_of_date = '2022-04-30'"
        )
    )
    assert set(scorecard) == {
        "dossiers_received",
        "dossiers_on_time_pct",
        "dossiers_online_pct",
        "dossiers_paid_online_pct",
        "dossiers_digitized_pct",
        "dossiers_e_result_pct",
    }
    assert scorecard["dossiers_received"] == months[-1][1]
    assert all(0 < v < 100 for k, v in scorecard.items() if k.endswith("_pct"))
    types = dict(
        sample_run.query(
            "select column_name, data_type from duckdb_columns() where schema_name='silver' and table_name='dossiers'"
        )
    )
    assert types["received_at"] == "TIMESTAMP" and types["status_code"] == "VARCHAR"  # Vietnam time; codes as text
    assert types["is_finished_on_time"] == "BOOLEAN" and types["received_month"] == "DATE"
    statuses = {s for (s,) in sample_run.query("select distinct status_code from silver.dossiers")}
    assert {"3", "4", "7", "8", "9", "10"} <= statuses
    assert {c for (c,) in sample_run.query("select distinct channel from silver.dossiers")} == {
        "in_person",
        "online",
        "postal",
    }


def test_every_bad_row_kind_is_quarantined_with_its_rule(sample_run: Pipeline) -> None:
    quarantined = sample_run.query("select rules, rule, source_file, source_row, reason from quarantine.dossiers")
    for rule in {rule for rule, _ in sample.BAD_ROWS}:
        expected = sum(1 for r, _ in sample.BAD_ROWS if r == rule)
        hits = [q for q in quarantined if q[1] == rule]
        assert len(hits) == expected, rule
        assert all(q[2].startswith("public_service/dossiers_2022") and q[3] >= 1 and rule in q[4] for q in hits)
    assert len(quarantined) == len(sample.BAD_ROWS)


def test_current_versions_end_in_exactly_one_place(sample_run: Pipeline) -> None:
    lines = _lines(sample_run.landing)
    codes = set()
    loose = 0  # a version without a key, or an unreadable line, is a row of its own
    for _, _, line in lines:
        try:
            code = (json.loads(line).get("MaHoSo") or "").strip()
        except ValueError:
            code = ""
        if code:
            codes.add(code)
        else:
            loose += 1
    silver = sample_run.query("select count(*), count(distinct dossier_code) from silver.dossiers")[0]
    rejected = sample_run.query("select count(*) from quarantine.dossiers")[0][0]
    assert silver[0] == silver[1]  # one row per dossier
    assert silver[0] + rejected == len(codes) + loose
    delivered = sample_run.lake.row_count("bronze", "dossiers")
    assert delivered == len(lines)  # bronze keeps every version


def _same_status(delivered: object, code: str, name: str) -> bool:
    """A delivered status is a national code (1-10, a number or its digits) or its name, in any case or Unicode form."""
    if isinstance(delivered, int) or str(delivered).strip().isdigit():
        return str(int(str(delivered).strip())) == code  # codes are text in silver
    return unicodedata.normalize("NFC", str(delivered)).strip().casefold() == name.casefold()


def test_the_newest_version_wins(sample_run: Pipeline) -> None:
    versions: dict[str, list[dict]] = {}
    for record in _records(sample_run.landing):
        versions.setdefault(record.get("MaHoSo"), []).append(record)
    silver = {
        code: (status_code, status, count)
        for code, status_code, status, count in sample_run.query(
            "select dossier_code, status_code, status, versions_delivered from silver.dossiers"
        )
    }
    checked = {"code": 0, "name": 0}
    for code, history in versions.items():
        if code not in silver or len(history) < 2:
            continue  # the quarantined ones are counted by test_current_versions_end_in_exactly_one_place
        status_code, status, count = silver[code]
        newest = history[-1]["TrangThaiHoSo"]  # the generator writes a dossier's versions in time order
        assert _same_status(newest, status_code, status), (code, newest, status_code, status)
        assert count == len(history), code
        checked["code" if str(newest).strip().isdigit() else "name"] += 1
    assert checked["code"] > 50 and checked["name"] > 50, checked  # both spellings of a status were compared


def test_unknown_procedure_codes_are_flagged_not_dropped(sample_run: Pipeline) -> None:
    kept = sample_run.query(
        "select count(*) from silver.dossiers where procedure_code in ("
        + ",".join(f"'{c}'" for c in sample.UNKNOWN_PROCEDURES)
        + ")"
    )[0][0]
    assert kept > 0
    with sample_run.environment(), dg.DagsterInstance.get() as instance:
        key = dg.AssetCheckKey(dg.AssetKey(["silver", "dossiers"]), CATALOG_CHECK)
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["dossiers_with_unknown_code"].value == kept


def _scan_text(path: Path) -> str:
    """Every text a file holds, decompressed: Parquet values, DuckDB and SQLite rows, or raw bytes."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        return "\n".join(str(v) for column in table.columns for v in column.to_pylist())
    head = path.read_bytes()[:16]
    if path.suffix == ".duckdb":
        with duckdb.connect(str(path), read_only=True) as con:
            tables = con.execute("select schema_name, table_name from duckdb_tables()").fetchall()
            return "\n".join(
                str(row)
                for schema, table in tables
                for row in con.execute(f"select * from {schema}.{table}").fetchall()
            )
    if head.startswith(b"SQLite format 3"):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
            return "\n".join(str(row) for name in names for row in con.execute(f'select * from "{name}"'))
        finally:
            con.close()
    return path.read_bytes().decode("utf-8", errors="replace")


def test_no_personal_data_anywhere(sample_run: Pipeline) -> None:
    needles: set[str] = set()
    for record in _records(sample_run.landing):
        applicant = record.get("ChuHoSo") or {}
        name, number, phone = applicant.get("HoTen"), applicant.get("SoGiayTo"), applicant.get("SoDienThoai")
        needles |= {unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)}
        needles |= {str(number), normalise_citizen_id(str(number))}
        needles |= {phone, "0" + phone[3:] if phone.startswith("+84") else phone}
        needles.add(applicant.get("DiaChi"))
    assert len(needles) > 2000
    scanned: dict[str, str] = {}
    for path in sorted(sample_run.root.rglob("*")):
        if path.is_file() and sample_run.landing not in path.parents and not path.name.endswith((".lock", ".wal")):
            scanned[str(path.relative_to(sample_run.root))] = _scan_text(path)
    kinds = {p.split("/")[0] for p in scanned}
    assert {"lake", "warehouse", "dagster_home", "dlt"} <= kinds
    assert any(p.startswith("lake/bronze/dossiers/") for p in scanned)
    assert any("compute_logs" in p or p.endswith((".out", ".err", ".complete")) for p in scanned)  # run logs
    assert "applicant_id" in scanned["warehouse/ioc.duckdb"] or any("applicant_id" in t for t in scanned.values())
    # one Aho-Corasick pass over every file's text (polars), then the names of the needles only where one was found
    words = sorted(n for n in needles if n)
    texts = pl.DataFrame({"path": list(scanned), "text": list(scanned.values())})
    hits = texts.filter(pl.col("text").str.contains_any(words))
    found = sorted((path, word) for path, text in hits.iter_rows() for word in words if word in text)
    assert hits.is_empty(), (hits["path"].to_list(), found[:10])


def test_the_committed_sample_is_the_generators_output(tmp_path: Path) -> None:
    paths = sample.write(tmp_path, SEED)
    total = 0
    for path in paths:
        committed = REPO / "data" / "landing" / "public_service" / path.name
        assert committed.read_bytes() == path.read_bytes(), path.name
        total += path.stat().st_size
    assert total < 2_000_000


def test_the_month_partitions_are_the_delivered_months_and_none_is_missing(sample_run: Pipeline) -> None:
    """What the UI shows after `make run`: the sample's four months, each materialized (not 60 months since
    2022-01 up to next month, 56 of them "missing")."""
    delivered = public_service.delivered_months(sample_run.lake)
    assert delivered == MONTHS  # the months bronze holds dossiers for
    with sample_run.environment(), dg.DagsterInstance.get() as instance:
        assert automation.partition_keys(public_service.MONTHS, instance) == delivered
        for key in (public_service.SILVER_KEY, public_service.QUARANTINE_KEY):
            assert instance.get_materialized_partitions(key) == {f"{m}|94" for m in delivered}, key  # month|province


# --------------------------------------------------------------------------------------------------
# hand-made delivery: every indicator by hand
# --------------------------------------------------------------------------------------------------

CATALOG = [
    {
        "MaTTHC": "1.000001",
        "TenTTHC": "A4",
        "LinhVuc": "X",
        "CapThucHien": "Cấp tỉnh",
        "CoQuanThucHien": "Sở A",
        "MucDoDVC": 4,
    },
    {
        "MaTTHC": "1.000002",
        "TenTTHC": "A3",
        "LinhVuc": "X",
        "CapThucHien": "Cấp tỉnh",
        "CoQuanThucHien": "Sở A",
        "MucDoDVC": 3,
    },
    {
        "MaTTHC": "1.000003",
        "TenTTHC": "B2",
        "LinhVuc": "X",
        "CapThucHien": "Cấp tỉnh",
        "CoQuanThucHien": "Sở B",
        "MucDoDVC": 2,
    },
    {
        "MaTTHC": "1.000004",
        "TenTTHC": "B2b",
        "LinhVuc": "X",
        "CapThucHien": "Cấp tỉnh",
        "CoQuanThucHien": "Sở B",
        "MucDoDVC": 2,
    },
]


def _v(code: str, agency: str, channel: object, received: str, status: object, updated: str, **more: object) -> dict:
    procedure = "1.000001" if agency == "Sở A" else "1.000003"
    record = {
        "MaHoSo": code,
        "MaTTHC": procedure,
        "DonViXuLy": agency,
        "DonViHanhChinh": "TP. Sóc Trăng",
        "KenhThucHien": channel,
        "NgayTiepNhan": received,
        "TrangThaiHoSo": status,
        "NgayCapNhat": updated,
        "ChuHoSo": {"HoTen": "Lê Văn Tám", "SoGiayTo": "094088000001", "SoDienThoai": "0901234567", "DiaChi": "Số 1"},
    }
    record.update(more)
    return record


HAND = {
    "dossiers_202201.ndjson": [
        # D1: Sở A, online, due 10/01 17:00, finished 07/01 10:00 -> on time; paid, digitised, e-result
        _v("D1", "Sở A", 2, "03/01/2022 08:00", 1, "03/01/2022 08:00", NgayHenTra="10/01/2022 17:00"),
        _v("D1", "Sở A", "2", "03/01/2022 08:00", 4, "03/01/2022 09:00", NgayHenTra="10/01/2022 17:00"),
        _v(
            "D1",
            "Sở A",
            "Trực tuyến",
            "03/01/2022 08:00",
            "Đã trả kết quả",
            "07/01/2022 15:00",
            NgayHenTra="10/01/2022 17:00",
            NgayKetThucXuLy="07/01/2022 10:00",
            NgayTra="07/01/2022 15:00",
            DuocThanhToanTrucTuyen=True,
            HoSoCoThanhPhanSoHoa="Có",
            CoKetQuaDienTu="1",
        ),
        # D2: Sở A, in person, due 06/01 17:00, finished 10/01 08:00 -> late; digitised
        _v(
            "D2",
            "Sở A",
            1,
            "04/01/2022 08:00",
            9,
            "10/01/2022 08:00",
            NgayHenTra="06/01/2022 17:00",
            NgayKetThucXuLy="10/01/2022 08:00",
            HoSoCoThanhPhanSoHoa=True,
            DuocThanhToanTrucTuyen="Không",
            CoKetQuaDienTu=False,
        ),
        # D3: Sở B, postal, finished before its due date but supplemented twice -> late; e-result
        _v(
            "D3",
            "Sở B",
            "Bưu chính công ích",
            "05/01/2022 08:00",
            10,
            "12/01/2022 09:00",
            NgayHenTra="20/01/2022 17:00",
            NgayKetThucXuLy="12/01/2022 08:00",
            NgayTra="12/01/2022 09:00",
            SoLanBoSung=2,
            CoKetQuaDienTu="true",
            HoSoCoThanhPhanSoHoa="false",
        ),
        # D4: Sở B, in person, still processing, due 12/01 17:00 -> open and overdue at the snapshot
        _v(
            "D4",
            "Sở B",
            "Trực tiếp",
            "06/01/2022 08:00",
            "Đang xử lý",
            "06/01/2022 09:00",
            NgayHenTra="12/01/2022 17:00",
        ),
        # D5: Sở A, online, withdrawn by the applicant -> neither finished nor open
        _v("D5", "Sở A", 2, "07/01/2022 08:00", 7, "08/01/2022 08:00", NgayHenTra="14/01/2022 17:00"),
    ],
    "dossiers_202202.ndjson": [
        # D2 again: the result handed back in February; it still counts in January, its month of receipt
        _v(
            "D2",
            "Sở A",
            1,
            "04/01/2022 08:00",
            10,
            "12/02/2022 08:00",
            NgayHenTra="06/01/2022 17:00",
            NgayKetThucXuLy="10/01/2022 08:00",
            NgayTra="12/02/2022 08:00",
            HoSoCoThanhPhanSoHoa=True,
            DuocThanhToanTrucTuyen="Không",
            CoKetQuaDienTu=False,
        ),
        # D6: Sở A, online, asked to supplement, due 28/02: open, not overdue at the snapshot; digitised
        _v(
            "D6",
            "Sở A",
            2,
            "01/02/2022 08:00",
            5,
            "15/02/2022 12:00",
            NgayHenTra="28/02/2022 17:00",
            SoLanBoSung=1,
            HoSoCoThanhPhanSoHoa="có",
        ),
        # D7: Sở B, in person, no due date, finished the next day -> on time
        _v(
            "D7",
            "Sở B",
            1,
            "02/02/2022 08:00",
            10,
            "03/02/2022 09:00",
            NgayKetThucXuLy="03/02/2022 08:00",
            NgayTra="03/02/2022 09:00",
        ),
        # D8: Sở B, online, refused at reception
        _v("D8", "Sở B", 2, "03/02/2022 08:00", "Không được tiếp nhận", "03/02/2022 10:00"),
    ],
}


def _deliver(pipeline: Pipeline, files: dict[str, list[dict]], delivered: str) -> None:
    """Write the export files as a department would, modified at `delivered` (Vietnam time)."""
    (pipeline.landing / "public_service").mkdir(parents=True, exist_ok=True)
    moment = dt.datetime.strptime(delivered, "%d/%m/%Y %H:%M").replace(tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    for name, records in files.items():
        path = pipeline.landing / "public_service" / name
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        os.utime(path, (moment.timestamp(), moment.timestamp()))


# Due dates that fall after the last change of their month: a quiet end of January, and February
# delivered on 10/02 12:00 with its newest change on 04/02.
AS_OF = {
    "dossiers_202201.ndjson": [
        # J1: open, due 31/01 17:00, last change 20/01 -> overdue at the end of January
        _v("J1", "Sở A", 1, "05/01/2022 08:00", 4, "20/01/2022 09:00", NgayHenTra="31/01/2022 17:00"),
        # J2: open, due 02/02 09:00: after the end of January -> not overdue for January
        _v("J2", "Sở A", 1, "20/01/2022 08:00", 4, "20/01/2022 10:00", NgayHenTra="02/02/2022 09:00"),
    ],
    "dossiers_202202.ndjson": [
        # F1: open, due 07/02 17:00, last change 04/02 (the newest of the data) -> overdue at the delivery 10/02
        _v("F1", "Sở A", 1, "01/02/2022 08:00", 4, "04/02/2022 10:00", NgayHenTra="07/02/2022 17:00"),
        # F2: open, due 20/02: after the delivery -> not overdue
        _v("F2", "Sở A", 1, "03/02/2022 08:00", 4, "03/02/2022 09:00", NgayHenTra="20/02/2022 17:00"),
        # F3: finished 03/02, due 10/02 -> on time
        _v(
            "F3",
            "Sở A",
            1,
            "02/02/2022 08:00",
            10,
            "03/02/2022 09:00",
            NgayHenTra="10/02/2022 17:00",
            NgayKetThucXuLy="03/02/2022 08:00",
            NgayTra="03/02/2022 09:00",
        ),
    ],
}


def test_open_dossiers_are_judged_at_the_end_of_the_month_or_at_the_extraction(tmp_path: Path) -> None:
    """Not at the newest change: J2 would count in January and F1 would not count in February."""
    pipeline = new_pipeline(tmp_path / "data", feeds=())
    _deliver(pipeline, AS_OF, "10/02/2022 12:00")
    results = pipeline.refresh()
    assert succeeded(results), failure_messages(results)
    rows = pipeline.query(
        "select month::varchar, dossiers_received, dossiers_finished, finished_on_time, open_overdue, on_time_pct, "
        "as_of::varchar from gold.public_service_kpis_monthly order by 1"
    )
    assert rows == [
        ("2022-01-01", 2, 0, 0, 1, 0.0, "2022-02-01 00:00:00"),  # J1 only; 0 on time of (0 finished + 1 overdue)
        ("2022-02-01", 3, 1, 1, 1, 50.0, "2022-02-10 12:00:00"),  # F1 only; 1 on time of (1 + 1)
    ]


def test_every_indicator_equals_the_hand_computed_value(tmp_path: Path) -> None:
    pipeline = new_pipeline(tmp_path / "data", feeds=())  # only the hand-made catalog and dossiers below
    (pipeline.landing / "procedures").mkdir(parents=True)
    catalog = [
        {**row, "DVCTrucTuyen": "", "NgayCapNhat": "01/01/2022"} for row in CATALOG
    ]  # the foundation needs every column
    (pipeline.landing / "procedures" / "tthc_20220131.json").write_text(json.dumps(catalog, ensure_ascii=False))
    _deliver(pipeline, HAND, "15/02/2022 12:30")
    results = pipeline.refresh()
    assert succeeded(results), failure_messages(results)

    # January is judged at its end: D4 (due 12/01) is overdue; February is not over at the delivery
    # (15/02/2022 12:30, the export's modification time): D6 (due 28/02) is not overdue.
    # January: D1..D5 received; finished D1, D2, D3; on time only D1 (D2 after its due date, D3 supplemented twice).
    # processing days: D1 07/01 10:00 - 03/01 08:00 = 4 d 2 h = 4.083333; D2 6.0; D3 7.0 -> mean 17.083333 / 3.
    # catalog: 4 procedures, 2 online (levels 4 and 3) -> 50 %; Sở A 2 of 2 -> 100 %, Sở B 0 of 2 -> 0 %.
    expected = {
        "2022-01-01": dict(
            dossiers_received=5,
            dossiers_finished=3,
            finished_on_time=1,
            finished_late=2,
            open_overdue=1,
            on_time_pct=100 * 1 / (3 + 1),
            online_pct=100 * 2 / 5,
            paid_online_pct=100 * 1 / 5,
            digitized_pct=100 * 2 / 5,
            e_result_pct=100 * 2 / 3,
            avg_processing_days=(4 + 2 / 24 + 6 + 7) / 3,
            catalog_online_pct=50.0,
        ),
        # February: D6, D7, D8; finished D7 (on time, no deadline, 1 day); online D6, D8; digitised D6.
        "2022-02-01": dict(
            dossiers_received=3,
            dossiers_finished=1,
            finished_on_time=1,
            finished_late=0,
            open_overdue=0,
            on_time_pct=100.0,
            online_pct=100 * 2 / 3,
            paid_online_pct=0.0,
            digitized_pct=100 * 1 / 3,
            e_result_pct=0.0,
            avg_processing_days=1.0,
            catalog_online_pct=50.0,
        ),
    }
    columns = list(expected["2022-01-01"])
    rows = pipeline.query(
        f"select month::varchar, {', '.join(columns)} from gold.public_service_kpis_monthly order by 1"
    )
    assert [r[0] for r in rows] == list(expected)
    for month, *values in rows:
        assert dict(zip(columns, values, strict=True)) == pytest.approx(expected[month]), month
    assert pipeline.query("select month::varchar, as_of::varchar from gold.public_service_kpis_monthly order by 1") == [
        ("2022-01-01", "2022-02-01 00:00:00"),  # Vietnam time in the warehouse
        ("2022-02-01", "2022-02-15 12:30:00"),
    ]

    # by agency, January: Sở A = D1, D2, D5 (finished D1, D2; on time D1; online D1, D5);
    # Sở B = D3, D4 (finished D3, late; D4 open overdue -> on time 0 / (1 + 1)).
    by_agency = {
        (m, a): (r, f, t, o, ot, c)
        for m, a, r, f, t, o, ot, c in pipeline.query(
            "select month::varchar, agency, dossiers_received, dossiers_finished, finished_on_time, open_overdue, "
            "on_time_pct, catalog_online_pct from gold.public_service_kpis_by_agency_monthly"
        )
    }
    assert by_agency[("2022-01-01", "Sở A")] == (3, 2, 1, 0, pytest.approx(100 * 1 / 2), 100.0)
    assert by_agency[("2022-01-01", "Sở B")] == (2, 1, 0, 1, 0.0, 0.0)

    # the latest complete month at 15/02 is January: the scorecard shows it, dated 31/01
    scorecard = dict(
        pipeline.query("select indicator_code, value from gold.ioc_scorecard where indicator_code like 'dossiers_%'")
    )
    assert scorecard == pytest.approx(
        {
            "dossiers_received": 5,
            "dossiers_on_time_pct": 25.0,
            "dossiers_online_pct": 40.0,
            "dossiers_paid_online_pct": 20.0,
            "dossiers_digitized_pct": 40.0,
            "dossiers_e_result_pct": 100 * 2 / 3,
        }
    )
    assert pipeline.query(
        "select distinct as_of_date::varchar from gold.ioc_scorecard where indicator_code like 'dossiers_%'"
    ) == [("2022-01-31",)]


# --------------------------------------------------------------------------------------------------
# the gateway API
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("delivery")
    sample.write(landing, SEED)
    return landing


@pytest.fixture
def served(delivery: Path):
    gateway = Gateway(TOKEN)
    gateway.add_landing(delivery)
    with GatewayServer(gateway) as server:
        yield gateway, server


def _api_pipeline(root: Path, url: str, token: str = TOKEN) -> Pipeline:
    pipeline = new_pipeline(root, feeds=("procedures",))  # the catalog; the network feeds add nothing here
    pipeline.extra_env = {
        "IOC_DOSSIER_API_URL": url,
        "IOC_DOSSIER_API_TOKEN": token,
        "IOC_DOSSIER_API_PAGE_SIZE": "300",
        "IOC_DOSSIER_API_BACKOFF_SECONDS": "0.01",
    }
    return pipeline


def _bronze_metadata(results: list[dg.ExecuteInProcessResult]) -> dict:
    events = results[0].asset_materializations_for_node("bronze__dossiers")
    return {k: v.value for k, v in events[0].metadata.items()}


def test_the_gateway_serves_the_contracts_pages(served) -> None:
    gateway, server = served
    headers = {"Authorization": f"Bearer {TOKEN}"}
    params = {"updated_from": "2022-01-01T00:00:00+07:00", "page_size": 1000}
    pages = [
        requests.get(f"{server.url}/dossiers", params={**params, "page": n}, headers=headers).json() for n in (1, 2, 3)
    ]
    assert [p["page"] for p in pages] == [1, 2, 3] and pages[0]["total_pages"] == 3
    assert sum(len(p["data"]) for p in pages) == pages[0]["total"] == len(gateway)
    late = requests.get(
        f"{server.url}/dossiers",
        params={**params, "updated_from": "2022-04-15T00:00:00+07:00", "page": 1},
        headers=headers,
    ).json()
    assert 0 < late["total"] < pages[0]["total"]
    refused = requests.get(
        f"{server.url}/dossiers", params={**params, "page": 1}, headers={"Authorization": "Bearer nope"}
    )
    assert refused.status_code == 401


def test_incremental_load_asks_only_for_changes_and_equals_a_full_reload(delivery: Path, tmp_path: Path) -> None:
    lines = {p.name: p.read_bytes().splitlines() for p in sorted((delivery / "public_service").glob("*.ndjson"))}
    gateway = Gateway(TOKEN)
    for name in ("dossiers_202201.ndjson", "dossiers_202202.ndjson", "dossiers_202203.ndjson"):
        gateway.add_lines(lines[name])
    with GatewayServer(gateway) as server:
        nightly = _api_pipeline(tmp_path / "nightly", server.url)
        first = nightly.refresh()
        assert succeeded(first), failure_messages(first)
        assert {r["updated_from"] for r in gateway.requests} == {"2022-01-01T00:00:00+07:00"}
        newest_before = max(k[0] for k in gateway._keys)

        # April's changes arrive: the next run asks only for what changed since the newest version it has
        gateway.requests.clear()
        april = gateway.add_lines(lines["dossiers_202204.ndjson"])
        second = nightly.refresh()
        assert succeeded(second), failure_messages(second)
        # since the newest version it has, less the look-back window (late backdated versions, 48 h by default)
        since = newest_before - timedelta(hours=48)
        assert {r["updated_from"] for r in gateway.requests} == {since.isoformat()}
        answered = sum(1 for k in gateway._keys if k[0] >= since)
        bronze = _bronze_metadata(second)
        assert bronze["versions_answered"] == answered < len(gateway) / 2
        # only the new versions are appended: those of the window were loaded before
        assert bronze["rows_loaded"] == april == sum(1 for k in gateway._keys if k[0] > newest_before)

        # an update to an old (January) dossier re-materializes January only
        january = next(json.loads(line) for line in lines["dossiers_202201.ndjson"] if b'"TrangThaiHoSo":4' in line)
        gateway.add_lines([json.dumps({**january, "TrangThaiHoSo": 8, "NgayCapNhat": "30/04/2022 23:59:00"}).encode()])
        third = nightly.refresh()
        assert succeeded(third), failure_messages(third)
        ranges = [r.dagster_run.tags.get(cli.RANGE_START) for r in third if r.job_def.name == "dossier_months"]
        assert ranges == ["2022-01|94"] and [r.dagster_run.tags[cli.RANGE_END] for r in third[1:2]] == ["2022-01|94"]
        status = nightly.query(f"select status_code from silver.dossiers where dossier_code = '{january['MaHoSo']}'")
        assert status == [("8",)]

        # a full reload from scratch, from the same gateway, gives the same silver
        reload = _api_pipeline(tmp_path / "reload", server.url)
        full = reload.refresh()
        assert succeeded(full), failure_messages(full)
    compare = "select * exclude (source_file, source_row) from silver.dossiers order by dossier_code"
    assert nightly.query(compare) == reload.query(compare)
    assert nightly.query("select count(*) from silver.dossiers")[0][0] > 900


def test_429_and_500_are_retried_and_the_run_succeeds(served, tmp_path: Path) -> None:
    gateway, server = served
    gateway.fail_429, gateway.fail_500 = 2, 2
    pipeline = _api_pipeline(tmp_path / "data", server.url)
    results = pipeline.refresh()
    assert succeeded(results), failure_messages(results)
    bronze = _bronze_metadata(results)
    assert bronze["retries"] == 4 and bronze["retried_statuses"] == {"429": 2, "500": 2}
    assert [r["status"] for r in gateway.requests[:5]] == [429, 429, 500, 500, 200]
    assert pipeline.query("select count(*) from silver.dossiers")[0][0] > 900


def test_a_wrong_token_fails_at_once_with_a_clear_message(served, tmp_path: Path) -> None:
    gateway, server = served
    pipeline = _api_pipeline(tmp_path / "data", server.url, token="not-the-token")
    results = pipeline.refresh()
    assert not succeeded(results)
    message = failure_messages(results)
    assert "refused the token (HTTP 401)" in message and "IOC_DOSSIER_API_TOKEN" in message
    assert "not-the-token" not in message
    assert [r["status"] for r in gateway.requests] == [401]  # not retried
    assert not pipeline.lake.exists("bronze", "dossiers")


def test_production_mode_refuses_to_start_without_a_key(published: Pipeline, capsys: pytest.CaptureFixture) -> None:
    published.extra_env = {"IOC_MODE": "production"}
    with published.environment():
        assert cli.run() == cli.EXIT_CONFIG
    assert "IOC_PII_KEY is not set" in capsys.readouterr().err
    results = published.refresh()  # the UI or a schedule would launch runs directly: the resource refuses too
    assert not succeeded(results)
    text = "\n".join(
        str(e.event_specific_data.error)
        for r in results
        for e in r.all_events
        if e.is_failure or e.is_engine_event
        if getattr(e.event_specific_data, "error", None)
    )
    assert "IOC_PII_KEY is not set" in text
    published.extra_env = {"IOC_MODE": "production", "IOC_PII_KEY": secrets.token_hex(32)}
    assert succeeded(published.refresh())


def test_the_pseudonym_production_computes_is_the_keyed_hmac_of_the_normalised_id() -> None:
    ids = pl.Series(["094088000001", "094 088 000 001", "94088000001", "094088000002", None, "không có"])
    one, other = pseudonymise(ids, b"a" * 16), pseudonymise(ids, b"b" * 16)
    expected = hmac.new(b"a" * 16, b"094088000001", hashlib.sha256).hexdigest()[:32]  # RFC 2104, by the stdlib
    assert one.to_list()[:3] == [expected] * 3  # spaces and a lost leading zero: the same person
    assert one[3] != expected and one[3] is not None
    assert one.to_list()[4:] == [None, None]
    assert other.to_list()[:3] != one.to_list()[:3] and other[0] is not None  # another key, another pseudonym
    assert not any("094088" in value or "94088" in value for value in one.drop_nulls().to_list())
    assert pseudonymise(ids, b"a" * 16).to_list() == one.to_list()  # stable (remembered IDs give the same)


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        (None, "is not set"),
        ("short-key", "too short"),
        (SAMPLE_KEY, "public sample key"),
        ("________________", "distinct characters"),
        ("aaaaaaaaaaaaaaaa", "distinct characters"),
        ("abababababababababababab", "distinct characters"),
    ],
)
def test_production_refuses_missing_sample_and_low_entropy_keys(key: str | None, rule: str) -> None:
    with pytest.raises(PiiKeyError, match=rule) as refused:
        resolve_key(key, "production")
    assert key is None or key not in str(refused.value)
    resolve_key(key if key and len(key) >= 16 else None, "sample")  # development keeps working


def test_a_random_key_is_accepted_in_production() -> None:
    key = secrets.token_hex(32)
    assert resolve_key(key, "production") == key.encode() == resolve_key(key, None)


def test_cli_run_of_the_months_job_on_a_fresh_dagster_home_registers_the_months_first(
    published: Pipeline, capsys: pytest.CaptureFixture
) -> None:
    """A new DAGSTER_HOME over a built lake knows no month: `cli run --job dossier_months` registers the
    delivered months before it targets one (the newest: none of this or last month was delivered)."""
    shutil.rmtree(published.home)
    published.home.mkdir()
    shutil.copy(LOCAL_INSTANCE, published.home / "dagster.yaml")
    with published.environment():
        assert cli.run("dossier_months") == cli.EXIT_OK, capsys.readouterr()
        with dg.DagsterInstance.get() as instance:
            assert automation.partition_keys(public_service.MONTHS, instance) == MONTHS
            (run,) = instance.get_runs()
            assert (run.tags[automation.RANGE_START], run.tags[automation.RANGE_END]) == ("2022-04|94", "2022-04|94")
            assert instance.get_materialized_partitions(public_service.SILVER_KEY) == {"2022-04|94"}
    assert "run dossier_months [2022-04|94..2022-04|94]" in capsys.readouterr().out
