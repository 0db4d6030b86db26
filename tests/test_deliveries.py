"""Every delivered file is read right, refused cleanly, or ignored with a reason (issues 10 and 11).

Real files in temp landing zones, real pipeline runs of one feed's job: odd encodings, broken CSVs,
ambiguous and two-row headers, unknown columns, lock files, links, `.xls`, a file still being written
and one re-delivered under the same name, `.json` dossier exports, refused files on later runs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import unicodedata
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from openpyxl import Workbook, load_workbook

from ioc_pipeline import alerts
from ioc_pipeline.parsing import fold_header
from ioc_pipeline.sample import telecom as sample
from ioc_pipeline.sources import fates
from ioc_pipeline.sources.files import SOURCE_FILE
from tests.conftest import Pipeline, failure_messages, new_pipeline

BTS = "telecom/bts"
BRONZE = dg.AssetKey(["bronze", "bts_stations"])
OLD = time.time() - 3600  # a modification time well past any settle interval


@pytest.fixture
def telecom(tmp_path: Path) -> Pipeline:
    """The telecom sample, published (its own landing zone, lake and instance)."""
    pipeline = new_pipeline(tmp_path / "data", feeds=("telecom",))
    result = pipeline.run("refresh_telecom")
    assert result.success, failure_messages(result)
    return pipeline


def sample_rows(pipeline: Pipeline, carrier: str) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a carrier's sample register (CSV or xlsx), as text."""
    path = pipeline.landing / sample.NEWEST_FILES[carrier]
    if path.suffix == ".csv":
        text = path.read_text(encoding="utf-8-sig")
        delimiter = ";" if text.splitlines()[0].count(";") > text.splitlines()[0].count(",") else ","
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if any(r)]
    else:
        book = load_workbook(path, read_only=True)
        rows = [["" if c is None else str(c) for c in r] for r in book.worksheets[0].iter_rows(values_only=True)]
        book.close()
        rows = [r for r in rows if any(c.strip() for c in r)]
        rows = rows[next(i for i, r in enumerate(rows) if sum(1 for c in r if c.strip()) > 3) :]
    return [h.strip() for h in rows[0]], rows[1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ";") -> str:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows([header, *rows])
    return buffer.getvalue()


def cp1258(text: str) -> bytes:
    """Text as Windows-1258 writes Vietnamese: base letters (with ă â ê ô ơ ư) plus combining tone marks."""
    tones = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}
    out = []
    for char in text:
        parts = unicodedata.normalize("NFD", char)
        base = unicodedata.normalize("NFC", parts[0] + "".join(m for m in parts[1:] if m not in tones))
        out.append(base + "".join(m for m in parts[1:] if m in tones))
    return "".join(out).encode("cp1258")


def merged_header_xlsx(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """A register whose header takes two rows: `Tọa độ` over `Kinh độ | Vĩ độ`, the other headers merged down,
    plus an unknown `Ghi chú` column."""
    book = Workbook()
    sheet = book.active
    sheet.append(["DANH SÁCH TRẠM BTS"])
    folded = [fold_header(h) for h in header]
    lon, lat = folded.index("kinh_do"), folded.index("vi_do")
    assert lat == lon + 1
    top = [*header, "Ghi chú"]
    top[lon], top[lat] = "Tọa độ", None
    sheet.append(top)
    sheet.append([None] * lon + ["Kinh độ", "Vĩ độ"] + [None] * (len(top) - lat - 1))
    for column in range(1, len(top) + 1):
        if column - 1 == lon:
            sheet.merge_cells(start_row=2, start_column=column, end_row=2, end_column=column + 1)
        elif column - 1 != lat:
            sheet.merge_cells(start_row=2, start_column=column, end_row=3, end_column=column)
    for row in rows:
        sheet.append([*row, "đã kiểm tra"])
    book.save(path)


def landing_files(pipeline: Pipeline, feed: str = "bts_stations") -> dict[str, dict]:
    table = fates.read_table(pipeline.lake, fates.LANDING_FILES)
    assert table.columns == list(fates.LANDING_FILES_SCHEMA)
    return {row["path"]: row for row in table.filter(pl.col("feed") == feed).to_dicts()}


def check(result: dg.ExecuteInProcessResult, name: str, key: dg.AssetKey = BRONZE) -> dg.AssetCheckEvaluation:
    return next(c for c in result.get_asset_check_evaluations() if c.check_name == name and c.asset_key == key)


def bronze_metadata(result: dg.ExecuteInProcessResult, node: str = "bronze__bts_stations") -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_every_delivered_file_is_read_refused_or_ignored_with_its_reason(telecom: Pipeline) -> None:
    folder = telecom.landing / BTS
    viettel_header, viettel = sample_rows(telecom, "viettel")
    mobifone_header, mobifone = sample_rows(telecom, "mobifone")
    vinaphone_header, vinaphone = sample_rows(telecom, "vinaphone")
    vietnamobile_header, vietnamobile = sample_rows(telecom, "vietnamobile")
    # an unclosed quote on data row 10 (line 11): the rest of the file would become one station name
    broken = write_csv(folder, viettel_header, viettel).splitlines(keepends=True)
    broken[10] = broken[10].replace(";", ';"', 1)
    (folder / "viettel_20220531.csv").write_text("".join(broken), encoding="utf-8-sig")
    # Excel's "Unicode text": UTF-16 with a BOM, tab-separated, upper-case extension, one unknown column
    (folder / "mobifone_20220531.CSV").write_text(
        write_csv(folder, [*mobifone_header, "Người cập nhật"], [[*r, "Lan"] for r in mobifone], "\t"),
        encoding="utf-16",
    )
    # `Mã trạm` twice: which one holds the station codes is anyone's guess
    ambiguous = ["Mã trạm" if fold_header(h) == "ten_tram" else h for h in mobifone_header]
    (folder / "mobifone_20220520.csv").write_text(write_csv(folder, ambiguous, mobifone, ","), encoding="utf-8")
    merged_header_xlsx(folder / "vinaphone_20220531.xlsx", vinaphone_header, vinaphone)
    (folder / "vietnamobile_20220531.csv").write_bytes(cp1258(write_csv(folder, vietnamobile_header, vietnamobile)))
    (folder / "~$vinaphone_20220531.xlsx").write_bytes(b"\x00lock")  # Excel's lock file while it is open
    (folder / "viettel_20220515.xls").write_bytes(b"\xd0\xcf\x11\xe0 an old workbook")
    (folder / "readme.txt").write_text("giao dữ liệu hằng tháng", encoding="utf-8")
    (folder / "latest.csv").symlink_to(folder / "viettel_20220430.csv")
    for path in folder.iterdir():
        os.utime(path, (OLD, OLD), follow_symlinks=False)

    result = telecom.run("refresh_telecom")
    assert result.success, failure_messages(result)  # refused files no longer fail the step
    files = landing_files(telecom)
    fate = {path.rsplit("/", 1)[-1]: row["fate"] for path, row in files.items()}
    assert fate == {
        "latest.csv": "ignored",
        "mobifone_20220430.csv": "already_loaded",
        "mobifone_20220520.csv": "refused",
        "mobifone_20220531.CSV": "loaded",
        "readme.txt": "ignored",
        "vietnamobile_20220430.xlsx": "already_loaded",
        "vietnamobile_20220531.csv": "loaded",
        "viettel_20220131.xlsx": "already_loaded",
        "viettel_20220430.csv": "already_loaded",
        "viettel_20220515.xls": "refused",
        "viettel_20220531.csv": "refused",
        "vinaphone_20220430.xlsx": "already_loaded",
        "vinaphone_20220531.xlsx": "loaded",
        "~$vinaphone_20220531.xlsx": "ignored",
    }
    reason = {path.rsplit("/", 1)[-1]: row["reason"] for path, row in files.items()}
    assert "line 11" in reason["viettel_20220531.csv"] and "quote" in reason["viettel_20220531.csv"]
    assert "ambiguous" in reason["mobifone_20220520.csv"] and "station_code" in reason["mobifone_20220520.csv"]
    assert "save the file as .xlsx" in reason["viettel_20220515.xls"]
    assert "symbolic link" in reason["latest.csv"] and "lock file" in reason["~$vinaphone_20220531.xlsx"]
    assert all(r["reason_vi"] for r in files.values() if r["fate"] in ("refused", "ignored"))
    assert "lưu lại dưới dạng .xlsx" in files[f"{BTS}/viettel_20220515.xls"]["reason_vi"]

    # nothing of a refused file reaches bronze; every row of a loaded file does, whatever its shape
    bronze = telecom.lake.read("bronze", "bts_stations")
    assert not bronze.filter(pl.col(SOURCE_FILE).str.contains("20220520|20220515|viettel_20220531")).height
    metadata = bronze_metadata(result)
    expected_rows = {
        f"{BTS}/mobifone_20220531.CSV": len(mobifone),
        f"{BTS}/vinaphone_20220531.xlsx": len(vinaphone),
        f"{BTS}/vietnamobile_20220531.csv": len(vietnamobile),
    }
    assert metadata["rows_by_file"] == expected_rows
    assert {p: files[p]["rows"] for p in expected_rows} == expected_rows
    assert dict(bronze.group_by(SOURCE_FILE).len().iter_rows()).items() >= expected_rows.items()
    assert metadata["encodings"] == {
        f"{BTS}/mobifone_20220531.CSV": "utf-16",
        f"{BTS}/vietnamobile_20220531.csv": "cp1258",
    }
    assert set(metadata["files_refused"]) == {
        f"{BTS}/{n}" for n in ("mobifone_20220520.csv", "viettel_20220515.xls", "viettel_20220531.csv")
    }
    assert check(result, "delivered_rows_accounted").passed
    readable = check(result, "delivered_files_readable")
    assert not readable.passed and readable.severity == dg.AssetCheckSeverity.ERROR
    assert readable.description.startswith(f"{BTS}/viettel_20220531.csv: line 11")  # only the newest viettel file

    # unknown columns are kept in bronze (folded names) and ignored later; the two-row header was read
    new = bronze.filter(pl.col(SOURCE_FILE).is_in(list(expected_rows)))
    assert {"nguoi_cap_nhat", "ghi_chu"} <= set(bronze.columns)
    assert new.filter(pl.col(SOURCE_FILE).str.contains("vinaphone")).get_column("longitude").null_count() == 0
    silver = telecom.lake.read("silver", "bts_stations")
    by_file = dict(silver.group_by("source_file").len().iter_rows())
    assert set(expected_rows) <= set(by_file) and f"{BTS}/viettel_20220430.csv" in by_file
    # Windows-1258 text (decomposed tone marks) reads as the same names as the UTF-8 original
    names = silver.filter(pl.col("source_file") == f"{BTS}/vietnamobile_20220531.csv").get_column("station_name")
    name_column = [fold_header(h) for h in vietnamobile_header].index("ten_tram")
    originals = {unicodedata.normalize("NFC", r[name_column]) for r in vietnamobile}
    assert set(names.drop_nulls().to_list()) <= originals and names.drop_nulls().len() > len(vietnamobile) * 0.8

    # recorded once, alerted once: the next run skips the refused files with a warning and still succeeds
    refused = fates.read_table(telecom.lake, fates.REFUSED_FILES)
    assert sorted(refused.get_column("path").to_list()) == sorted(metadata["files_refused"])
    refusal_alerts = alerts.read(telecom.lake).filter(pl.col("kind") == "file_refused")
    assert refusal_alerts.height == 3
    again = telecom.run("refresh_telecom")
    assert again.success, failure_messages(again)
    files = landing_files(telecom)
    assert files[f"{BTS}/viettel_20220531.csv"]["reason"].startswith("refused earlier: line 11")
    assert fates.read_table(telecom.lake, fates.REFUSED_FILES).height == 3
    assert alerts.read(telecom.lake).filter(pl.col("kind") == "file_refused").height == 3
    assert not check(again, "delivered_files_readable").passed  # still red until a readable file arrives

    # the corrected file under the same name is new content: read, loaded, and the check turns green
    (folder / "viettel_20220531.csv").write_text("".join(broken[:10] + broken[11:]), encoding="utf-8-sig")
    os.utime(folder / "viettel_20220531.csv", (OLD, OLD))
    fixed = telecom.run("refresh_telecom")
    assert fixed.success and check(fixed, "delivered_files_readable").passed
    assert landing_files(telecom)[f"{BTS}/viettel_20220531.csv"]["fate"] == "loaded"
    assert bronze_metadata(fixed)["rows_by_file"] == {f"{BTS}/viettel_20220531.csv": len(viettel) - 1}


def test_a_file_still_being_written_is_deferred_then_loaded(telecom: Pipeline) -> None:
    telecom.extra_env["IOC_LANDING_SETTLE_SECONDS"] = "300"
    header, rows = sample_rows(telecom, "viettel")
    rows = rows[:-1]  # the May register: one station fewer than April's (new content)
    complete = write_csv(telecom.landing, header, rows)
    target = telecom.landing / BTS / "viettel_20220531.csv"
    target.write_text(complete[: len(complete) * 3 // 10], encoding="utf-8-sig")  # 30 % written, just now
    result = telecom.run("refresh_telecom")
    assert result.success, failure_messages(result)
    assert landing_files(telecom)[f"{BTS}/viettel_20220531.csv"]["fate"] == "deferred"
    assert f"{BTS}/viettel_20220531.csv" in bronze_metadata(result)["files_deferred"]
    assert not telecom.lake.read("bronze", "bts_stations").filter(pl.col(SOURCE_FILE).str.contains("0531")).height
    target.write_text(complete, encoding="utf-8-sig")
    os.utime(target, (OLD, OLD))  # finished, and quiet for longer than the settle interval
    result = telecom.run("refresh_telecom")
    assert result.success and landing_files(telecom)[f"{BTS}/viettel_20220531.csv"]["fate"] == "loaded"
    assert bronze_metadata(result)["rows_by_file"] == {f"{BTS}/viettel_20220531.csv": len(rows)}


def test_new_content_under_the_same_name_replaces_its_earlier_load(telecom: Pipeline) -> None:
    header, rows = sample_rows(telecom, "viettel")
    rows = rows[:-1]  # the May register: one station fewer than April's (new content)
    target = telecom.landing / BTS / "viettel_20220531.csv"
    partial = rows[: len(rows) * 3 // 10]
    target.write_text(write_csv(telecom.landing, header, partial), encoding="utf-8-sig")
    assert telecom.run("refresh_telecom").success
    target.write_text(write_csv(telecom.landing, header, rows), encoding="utf-8-sig")
    result = telecom.run("refresh_telecom")
    assert result.success, failure_messages(result)
    bronze = telecom.lake.read("bronze", "bts_stations").filter(pl.col(SOURCE_FILE) == f"{BTS}/viettel_20220531.csv")
    assert bronze.height == len(partial) + len(rows)  # both loads stay in bronze (raw data is never rewritten)
    silver = telecom.lake.read("silver", "bts_stations").filter(pl.col("source_file") == f"{BTS}/viettel_20220531.csv")
    quarantine = telecom.lake.read("quarantine", "bts_stations").filter(
        pl.col("source_file") == f"{BTS}/viettel_20220531.csv"
    )
    assert silver.height + quarantine.height == len(rows)  # only the newest load counts: no duplicates
    assert "station_code_unique" not in quarantine.get_column("rule").to_list()


def test_json_dossier_exports_are_read_like_ndjson(tmp_path: Path) -> None:
    pipeline = new_pipeline(tmp_path / "data", feeds=("dossiers",))
    folder = pipeline.landing / "public_service"
    ndjson = folder / "dossiers_202204.ndjson"
    lines = [line for line in ndjson.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    ndjson.unlink()
    (folder / "dossiers_202204.JSON").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    result = pipeline.run("refresh_public_service")
    assert result.success, failure_messages(result)
    metadata = bronze_metadata(result, "bronze__dossiers")
    assert metadata["rows_by_file"]["public_service/dossiers_202204.JSON"] == len(records)
    files = landing_files(pipeline, "dossiers")
    assert files["public_service/dossiers_202204.JSON"]["fate"] == "loaded"
    assert files["public_service/dossiers_202204.JSON"]["encoding"] == "utf-8"
    assert {r["fate"] for r in files.values()} == {"loaded"} and len(files) == 4
    assert check(result, "delivered_rows_accounted", dg.AssetKey(["bronze", "dossiers"])).passed


def _read(tmp_path: Path, name: str, content: bytes):
    from ioc_pipeline.lake import Landing
    from ioc_pipeline.sources.files import read_delivery
    from ioc_pipeline.sources.telecom import FEED

    path = tmp_path / BTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    landing = Landing(str(tmp_path))
    (file,) = landing.matching(FEED.patterns)
    return read_delivery(landing, file, FEED)


HEADER = "Mã trạm,Tên trạm,Kinh độ,Vĩ độ,Xã/Phường/Thị trấn,Công nghệ\n"


def test_a_quoted_value_swallowing_rows_is_refused_but_a_two_line_address_is_not(tmp_path: Path) -> None:
    from ioc_pipeline.sources.files import DeliveryError

    rows = [f"VT{i:03d},Trạm {i},105.97,9.60,Phường 2,4G\n" for i in range(12)]
    swallowing = HEADER + "".join(rows[:3]) + 'VT900,"Trạm mở' + "".join(rows[3:9]) + 'VT901,đóng",105.9,9.6,P2,4G\n'
    with pytest.raises(DeliveryError, match=r"line 5: a quoted value runs over 7 lines") as refused:
        _read(tmp_path / "a", "viettel_20220531.csv", swallowing.encode())
    assert "dòng 5" in refused.value.problem_vi
    address = HEADER + "".join(rows[:2]) + 'VT902,"Trạm Ấp 3,\nPhường 2",105.9,9.6,Phường 2,4G\n'
    table, encoding = _read(tmp_path / "b", "viettel_20220531.csv", address.encode())
    assert table.num_rows == 3 and encoding == "utf-8"
    assert table.column("station_name")[2].as_py() == "Trạm Ấp 3,\nPhường 2"
    assert table.column("_source_row").to_pylist() == [2, 3, 4]


def test_utf8_is_preferred_and_nfd_headers_fold_like_nfc(tmp_path: Path) -> None:
    text = unicodedata.normalize("NFD", HEADER) + "VT001,Trạm Mỹ Xuyên,105.97,9.60,Thị trấn Mỹ Xuyên,4G\n"
    table, encoding = _read(tmp_path, "viettel_20220531.csv", text.encode("utf-8"))
    assert encoding == "utf-8" and {"station_code", "commune", "technologies"} <= set(table.column_names)
