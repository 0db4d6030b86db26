"""Reading the departments' spellings: headers, Vietnamese numbers, dates and booleans.

Departments deliver what their spreadsheets export (landing-zone contract, "General rules"):
headers in any case and accent form, `1.268` for a thousand and `105,97` for a decimal,
`dd/mm/yyyy` beside ISO 8601, `Có`/`Không` beside `true`/`false`. Everything that turns
those strings into typed values lives here, as polars expressions so that a million rows
parse in one vectorised pass.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, cast

import polars as pl
import pyarrow.compute as pc

if TYPE_CHECKING:
    from polars._typing import PolarsTemporalType

TIMEZONE = "Asia/Ho_Chi_Minh"
MISSING_TOKENS = ("", "-", "n/a", "na", "null", "none")


def fold(text: str) -> str:
    """ASCII, lower-case, single-spaced form used to compare names written in any spelling."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", stripped).strip().lower()


def fold_header(header: str) -> str:
    """`Mã trạm`, `MA TRAM`, ` ma  tram ` -> `ma_tram` (also the name of an unknown extra column)."""
    folded = fold(header.lstrip("\ufeff"))
    return re.sub(r"[^a-z0-9]+", "_", folded).strip("_") or "column"


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def text(col: str | pl.Expr) -> pl.Expr:
    """Trimmed NFC text, with the contract's missing tokens as null."""
    expr = pl.col(col) if isinstance(col, str) else col
    cleaned = expr.cast(pl.String).map_batches(_nfc, return_dtype=pl.String).str.strip_chars()
    return pl.when(~cleaned.str.to_lowercase().is_in(MISSING_TOKENS)).then(cleaned)


def _nfc(values: pl.Series) -> pl.Series:
    """NFC, normalising each distinct value once (Arrow's normaliser; polars' is ~10× slower per value):
    delivered columns repeat few values, and NFD ones are rare."""
    if values.dtype == pl.String and not values.str.contains(r"[^\x00-\x7F]").any():
        return values  # ASCII text is always NFC (dates, codes, numbers: most columns)
    distinct = values.unique().drop_nulls()
    normal = cast(pl.Series, pl.from_arrow(pc.utf8_normalize(distinct.to_arrow(), form="NFC")))
    changed = distinct != normal
    if not changed.any():
        return values
    return values.replace(distinct.filter(changed), normal.filter(changed))


def folded(expr: pl.Expr) -> pl.Expr:
    """`fold()` as a polars expression: no accents, `đ` as `d`, lower case, single spaces."""
    return (
        expr.str.normalize("NFD")
        .str.replace_all(r"\p{Mn}", "")
        .str.to_lowercase()
        .str.replace_all("đ", "d", literal=True)
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def decimal(col: str) -> pl.Expr:
    """A decimal number in Vietnamese (`105,9712`, `1.234,5`, `52,68%`) or international (`105.97`) form.

    A comma is always the decimal mark; a dot is the decimal mark unless a comma is present too.
    """
    raw = text(col).str.replace_all(r"[\s%]", "")
    has_comma = raw.str.contains(",", literal=True)
    vietnamese = raw.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True)
    return pl.when(has_comma).then(vietnamese).otherwise(raw).cast(pl.Float64, strict=False)


def decimal_checked(col: str) -> list[pl.Expr]:
    """`col` as a double, `<col>_text` as delivered, and `<col>_unparsed`: the text when it is no number
    (what a gate rule reads to refuse `105°58'E` rather than take it as missing)."""
    given = text(col)
    value = decimal(col)
    return [
        value.alias(col),
        given.alias(f"{col}_text"),
        pl.when(given.is_not_null() & value.is_null()).then(given).alias(f"{col}_unparsed"),
    ]


def integer(col: str) -> pl.Expr:
    """A whole number where `.` or `,` may group thousands (`1.268`, `1,268`), or a label with one
    number in it (`Mức độ 3`, `DVC mức độ 4`)."""
    number = text(col).str.extract(r"^[^\d-]*(-?\d{1,3}(?:[.,]\d{3})+|-?\d+)[^\d]*$", 1)
    return number.str.replace_all(r"[.,]", "").cast(pl.Int64, strict=False)


_DATETIME_FORMATS = (
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)
# A register's dates lie between these years. Outside them a value is unparsed (null, then quarantined by
# the feed's date rule with the text as delivered): `30/4/22` or `1/1/99` (two-digit years are ambiguous
# in a register and are refused, never read as the year 0022) and typing slips such as `2202` or `1022`.
YEAR_RANGE = (1900, 2100)


def datetime_local(col: str) -> pl.Expr:
    """Any contract date or datetime as a timestamp in Asia/Ho_Chi_Minh.

    Naive values are local time; ISO values with an offset or `Z` are converted to local time.
    Years must have four digits and lie in `YEAR_RANGE`: anything else is unparsed (null).
    The cleaned text is computed once per batch (`map_batches`) and then tried against each format:
    as one expression, polars re-evaluated the text cleaning for every format (35× slower).
    """
    return text(col).map_batches(_datetimes, return_dtype=pl.Datetime("us", TIMEZONE))


def _datetimes(raw: pl.Series) -> pl.Series:
    parsed = _any_datetimes(raw.cast(pl.String))
    first, last = YEAR_RANGE
    in_range = parsed.dt.year().is_between(first, last).fill_null(False)
    return parsed.zip_with(in_range, pl.repeat(None, len(parsed), dtype=parsed.dtype, eager=True)).alias(raw.name)


def _any_datetimes(values: pl.Series) -> pl.Series:
    offset = values.str.contains(r"(Z|[+-]\d{2}:?\d{2})$").fill_null(False)
    naive = _first_format(
        values
        if not offset.any()
        else values.zip_with(~offset, pl.repeat(None, len(values), dtype=pl.String, eager=True)),
        pl.Datetime("us"),
        _DATETIME_FORMATS,
    ).dt.replace_time_zone(TIMEZONE, ambiguous="earliest", non_existent="null")
    if not offset.any():
        return naive
    with_offset = (
        values.zip_with(offset, pl.repeat(None, len(values), dtype=pl.String, eager=True))
        .str.replace(r"Z$", "+00:00")
        .str.replace(r"([+-]\d{2})(\d{2})$", "$1:$2")
    )
    aware = _first_format(
        with_offset,
        pl.Datetime("us", "UTC"),
        ("%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%:z", "%Y-%m-%d %H:%M:%S%.f%:z"),
    ).dt.convert_time_zone(TIMEZONE)
    return naive.zip_with(~offset, aware)


def _first_format(values: pl.Series, dtype: PolarsTemporalType, formats: tuple[str, ...]) -> pl.Series:
    """Each value parsed by the first of `formats` that reads it (what `pl.coalesce` over the formats
    gives), but each format tried only on the values the formats before it left unparsed: a column
    comes in one or two formats, and trying all nine on every value cost a third of the pipeline."""
    parsed = values.str.strptime(dtype, formats[0], strict=False, exact=True)
    for fmt in formats[1:]:
        left = (parsed.is_null() & values.is_not_null()).arg_true()
        if left.is_empty():
            break
        parsed = parsed.scatter(left, values.gather(left).str.strptime(dtype, fmt, strict=False, exact=True))
    return parsed


def date(col: str) -> pl.Expr:
    return datetime_local(col).dt.date()


_TRUE = ("true", "1", "co", "yes", "x", "y")
_FALSE = ("false", "0", "khong", "no", "n")


def boolean(col: str) -> pl.Expr:
    """`true`/`false`, `1`/`0`, `Có`/`Không` (any case or accent form); anything else is null."""
    value = folded(text(col))
    flag = pl.when(value.is_in(_TRUE)).then(True).when(value.is_in(_FALSE)).then(False)
    return flag.alias(col)
