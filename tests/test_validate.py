"""`cli validate`: a department checks its file offline with the pipeline's own readers and rules.

Real files (the committed sample, and broken copies of it), the real CLI (one subprocess for the
exit codes as a shell sees them), workbooks opened with openpyxl; nothing is written to the lake.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

from ioc_pipeline import cli
from tests.conftest import REPO

SAMPLE = REPO / "data" / "landing"


def _validate(paths: list[Path], out: Path) -> int:
    with pytest.raises(SystemExit) as ended:
        cli.main(["validate", *map(str, paths), "--out", str(out)])
    return int(ended.value.code)


def _sheet(path: Path, name: str) -> list[tuple]:
    return list(load_workbook(path, read_only=True)[name].iter_rows(values_only=True))


def test_a_clean_register_would_be_published(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    register = SAMPLE / "telecom" / "bts" / "mobifone_20220430.csv"
    assert _validate([register], tmp_path) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "Kết quả: Sẽ được công bố" in out and "mobifone_20220430.csv" in out
    summary = dict((r[0], r[1]) for r in _sheet(tmp_path / "mobifone_20220430.csv.phan_hoi.xlsx", "Tóm tắt") if r[0])
    lines = register.read_text(encoding="utf-8-sig").strip().splitlines()
    assert summary["Số dòng đã đọc"] == len(lines) - 1
    assert summary["Số dòng được chấp nhận"] + summary["Số dòng bị loại"] == summary["Số dòng đã đọc"]


def test_a_mostly_wrong_catalog_would_be_blocked_with_vietnamese_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = json.loads((SAMPLE / "procedures" / "tthc_20220430.json").read_text(encoding="utf-8"))
    for row in rows[:400]:
        row["MucDoDVC"] = "không rõ"
    bad = tmp_path / "in" / "tthc_20220531.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    assert _validate([bad], tmp_path / "out") == cli.EXIT_PARTIAL  # 3: would be blocked
    out = capsys.readouterr().out
    assert "Sẽ bị chặn" in out and "trên 1.859 dòng" in out
    refused = _sheet(tmp_path / "out" / "tthc_20220531.json.phan_hoi.xlsx", "Dòng bị loại")
    header, body = refused[0], refused[1:]
    assert header[:3] == ("Dòng", "Quy tắc", "Lý do")
    assert len(body) >= 400
    assert any("Thiếu MucDoDVC hoặc không phải là số mức độ" in str(r[2]) for r in body)
    assert not (tmp_path / "in" / "lake").exists()


def test_unreadable_or_unknown_files_would_be_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "tthc_20220531.json"
    broken.write_text('[{"MaTTHC": ', encoding="utf-8")
    assert _validate([broken], tmp_path) == cli.EXIT_REFUSED
    assert "not valid JSON" in capsys.readouterr().out
    stranger = tmp_path / "bao_cao_thang.csv"
    stranger.write_text("a,b\n1,2\n", encoding="utf-8")
    assert _validate([stranger], tmp_path) == cli.EXIT_REFUSED
    assert "không khớp" in capsys.readouterr().out


def test_service_points_are_checked_against_the_enterprises_given_with_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    points = SAMPLE / "postal" / "service_points_20220430.csv"
    enterprises = SAMPLE / "postal" / "enterprises_20220430.xlsx"
    _validate([points], tmp_path / "alone")
    alone = capsys.readouterr().out
    assert "enterprise_exists" in alone and "Chưa kiểm tra" in alone
    _validate([points, enterprises], tmp_path / "both")
    both = capsys.readouterr().out
    assert "Chưa kiểm tra" not in both
    rules = {r[0] for r in _sheet(tmp_path / "both" / "service_points_20220430.csv.phan_hoi.xlsx", "Tóm tắt")}
    assert "enterprise_exists" in rules  # the sample's points of unknown enterprises are caught with the register


def test_a_dossier_export_is_validated_without_personal_data(tmp_path: Path) -> None:
    export = SAMPLE / "public_service" / "dossiers_202201.ndjson"
    code = _validate([export], tmp_path)
    assert code in (cli.EXIT_OK, cli.EXIT_PARTIAL)
    book = tmp_path / "dossiers_202201.ndjson.phan_hoi.xlsx"
    text = " ".join(str(c) for name in ("Tóm tắt", "Dòng bị loại") for r in _sheet(book, name) for c in r if c)
    first = json.loads(export.read_text(encoding="utf-8").splitlines()[0])["ChuHoSo"]
    for secret in (first["HoTen"], first["SoGiayTo"], first["SoDienThoai"]):
        assert secret not in text


def test_the_exit_codes_as_a_shell_sees_them(tmp_path: Path) -> None:
    good = tmp_path / "vinaphone_20220430.xlsx"
    shutil.copy(SAMPLE / "telecom" / "bts" / "vinaphone_20220430.xlsx", good)
    env = {**os.environ, "IOC_DATA_DIR": str(tmp_path / "nowhere")}
    done = subprocess.run(
        [sys.executable, "-m", "ioc_pipeline.cli", "validate", str(good)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "vinaphone_20220430.xlsx.phan_hoi.xlsx").exists()
    assert not (tmp_path / "nowhere").exists()  # nothing of the lake or the warehouse was touched
