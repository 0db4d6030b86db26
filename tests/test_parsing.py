"""The contract's spellings of numbers, dates, booleans and headers."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from ioc_pipeline import parsing
from ioc_pipeline.sources.files import DeliveryError, snapshot_of

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def _one(expr: pl.Expr, value: str | None) -> object:
    return pl.DataFrame({"v": [value]}, schema={"v": pl.String}).select(expr.alias("out"))["out"][0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("105,9712", 105.9712),
        ("105.97", 105.97),
        ("1.234,5", 1234.5),
        ("52,68%", 52.68),
        (" 9.6 ", 9.6),
        ("-", None),
        ("N/A", None),
        ("abc", None),
    ],
)
def test_decimal(text: str, expected: float | None) -> None:
    assert _one(parsing.decimal("v"), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.268", 1268), ("1,268", 1268), ("Mức độ 3", 3), ("DVC mức độ 4", 4), ("4", 4), ("1,5", None), ("", None)],
)
def test_integer(text: str, expected: int | None) -> None:
    assert _one(parsing.integer("v"), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30/04/2022", datetime(2022, 4, 30, tzinfo=HCM)),
        ("30/04/2022 13:05", datetime(2022, 4, 30, 13, 5, tzinfo=HCM)),
        ("30/04/2022 13:05:09", datetime(2022, 4, 30, 13, 5, 9, tzinfo=HCM)),
        ("2022-04-30T13:05:00", datetime(2022, 4, 30, 13, 5, tzinfo=HCM)),
        ("2022-04-30T13:05:00+07:00", datetime(2022, 4, 30, 13, 5, tzinfo=HCM)),
        ("2022-04-30T06:05:00Z", datetime(2022, 4, 30, 13, 5, tzinfo=HCM)),
        ("31/02/2022", None),
        ("N/A", None),
    ],
)
def test_datetime_local(text: str, expected: datetime | None) -> None:
    assert _one(parsing.datetime_local("v"), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("1", True),
        ("Có", True),
        (unicodedata.normalize("NFD", "Có"), True),
        ("KHÔNG", False),
        ("false", False),
        ("0", False),
        ("?", None),
        ("", None),
    ],
)
def test_boolean(text: str, expected: bool | None) -> None:
    assert _one(parsing.boolean("v"), text) == expected


def test_headers_fold_to_one_name() -> None:
    spellings = ["Mã trạm", "MA TRAM", "ma tram", unicodedata.normalize("NFD", "Mã trạm"), "\ufeffMã  trạm "]
    assert {parsing.fold_header(s) for s in spellings} == {"ma_tram"}
    assert parsing.fold_header("Xã/Phường/Thị trấn") == "xa_phuong_thi_tran"


def test_text_treats_missing_tokens_as_null_and_normalizes_nfd() -> None:
    frame = pl.DataFrame({"v": [" - ", "N/A", "", unicodedata.normalize("NFD", "Sóc Trăng")]})
    assert frame.select(parsing.text("v"))["v"].to_list() == [None, None, None, "Sóc Trăng"]


def test_snapshot_dates_come_from_file_names() -> None:
    assert snapshot_of("procedures/tthc_20220430.json") == "2022-04-30"
    assert snapshot_of("public_service/dossiers_202201.ndjson") == "2022-01-01"
    with pytest.raises(DeliveryError, match="no snapshot date"):
        snapshot_of("procedures/tthc.json")
    with pytest.raises(DeliveryError, match="not a date"):
        snapshot_of("procedures/tthc_20221340.json")


@pytest.mark.parametrize(
    "text",
    ["30/4/22", "30/04/22 13:05", "1/1/99", "22-04-30", "0022-04-30", "30/4/0022", "15/06/1850", "12/12/2150"],
)
def test_two_digit_and_implausible_years_are_unparsed_never_year_0022(text: str) -> None:
    assert _one(parsing.datetime_local("v"), text) is None
    assert _one(parsing.date("v"), text) is None


def test_a_two_digit_year_is_quarantined_by_the_date_rule_with_the_value() -> None:
    from ioc_pipeline import gate
    from ioc_pipeline.assets.procedures import typed_procedures
    from ioc_pipeline.checks.procedures import RULES
    from ioc_pipeline.sources.files import SNAPSHOT, SOURCE_FILE, SOURCE_ROW

    delivered = pl.DataFrame(
        {
            "procedure_code": ["1.000001", "1.000002"],
            "procedure_name": ["Cấp phép", "Đăng ký"],
            "sector": ["Đất đai", "Hộ tịch"],
            "agency": ["Sở A", "Sở B"],
            "tiers": ["Cấp tỉnh", "Cấp xã"],
            "service_level": ["3", "4"],
            "online_class": ["Toàn trình", "Một phần"],
            "updated_at": ["30/4/22", "30/04/2022"],
            SNAPSHOT: ["2022-05-17"] * 2,
            SOURCE_FILE: ["procedures/tthc_20220517.json"] * 2,
            SOURCE_ROW: [1, 2],
        }
    ).with_row_index(gate.ROW_ID)
    typed = typed_procedures(delivered)
    result = gate.split(typed, "procedures", [r for r in RULES if r.name == "updated_at_date"])
    assert result.clean.get_column("procedure_code").to_list() == ["1.000002"]
    assert result.clean.get_column("updated_on").to_list()[0].year == 2022
    (reason,) = result.rejected.get_column(gate.REJECT_REASON).to_list()
    assert "NgayCapNhat is not a date" in reason and "30/4/22" in reason
