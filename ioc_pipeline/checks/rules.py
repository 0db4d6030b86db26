"""The shapes of row rule every suite repeats, written once: a field that must be present, a value the
transform flagged (unparsed, unknown), a unique key, and coordinates that must be numbers inside the
province. Every rule carries its sentence in English and in Vietnamese (the rule catalogue).

Rule names stay those of the contract's suites (quarantine rows carry them, dashboards count them).
"""

from __future__ import annotations

from ioc_pipeline.gate import E, Rule
from ioc_pipeline.units import province_bbox

MIN_LON, MIN_LAT, MAX_LON, MAX_LAT = province_bbox()  # the legacy province's (Sóc Trăng, 94)


def present(name: str, column: str, message: str, vi: str) -> Rule:
    """A row fails when `column` is empty (missing, or not readable as its type)."""
    return Rule(name, E.ExpectColumnValuesToNotBeNull(column=column), message, vi)


def required(
    name: str, label: str, column: str | None = None, message: str | None = None, vi: str | None = None
) -> Rule:
    """`<name>_required`: the delivered field `label` (read from `column`, default `name`) is given."""
    return present(f"{name}_required", column or name, message or f"{label} is missing", vi or f"Thiếu {label}")


def flagged(name: str, column: str, message: str, vi: str, show_value: bool = True) -> Rule:
    """A row fails when the transform put a value in `column` (text it could not read, a word outside
    the contract's vocabulary): the column holds exactly what was delivered, for the reason."""
    return Rule(name, E.ExpectColumnValuesToBeNull(column=column), message, vi, show_value)


def unique(name: str, column: str, message: str, vi: str) -> Rule:
    """Every copy of a duplicated key is held back: which one is right is unknown."""
    return Rule(name, E.ExpectColumnValuesToBeUnique(column=column), message, vi)


def date_readable(name: str, column: str, label: str) -> Rule:
    """`<name>`: the delivered date `label` is a date (dd/mm/yyyy or ISO 8601, four-digit year)."""
    return flagged(name, column, f"{label} is not a date", f"{label} không phải là ngày hợp lệ (dd/mm/yyyy)")


def coordinates_numeric() -> list[Rule]:
    """Kinh độ / Vĩ độ, when given, read as decimal degrees (`parsing.decimal_checked` columns)."""
    return [
        flagged(
            "longitude_numeric",
            "longitude_unparsed",
            "Kinh độ is not a decimal number of degrees",
            "Kinh độ không phải là số độ thập phân",
        ),
        flagged(
            "latitude_numeric",
            "latitude_unparsed",
            "Vĩ độ is not a decimal number of degrees",
            "Vĩ độ không phải là số độ thập phân",
        ),
    ]


def coordinates_in_province(province: str | None = None) -> list[Rule]:
    """Coordinates inside the former province's bounding box (a swapped or mistyped pair lands outside);
    default the legacy province's, `for_province` swaps in another's when its batch is gated."""
    MIN_LON, MIN_LAT, MAX_LON, MAX_LAT = province_bbox(province) if province else province_bbox()  # noqa: N806
    return [
        Rule(
            "longitude_in_province",
            E.ExpectColumnValuesToBeBetween(column="longitude", min_value=MIN_LON, max_value=MAX_LON),
            f"Kinh độ is outside the province ({MIN_LON} to {MAX_LON})",
            f"Kinh độ nằm ngoài địa bàn tỉnh (từ {MIN_LON} đến {MAX_LON})",
        ),
        Rule(
            "latitude_in_province",
            E.ExpectColumnValuesToBeBetween(column="latitude", min_value=MIN_LAT, max_value=MAX_LAT),
            f"Vĩ độ is outside the province ({MIN_LAT} to {MAX_LAT})",
            f"Vĩ độ nằm ngoài địa bàn tỉnh (từ {MIN_LAT} đến {MAX_LAT})",
        ),
    ]


COORDINATE_RULES = ("longitude_in_province", "latitude_in_province")


def for_province(rules: list[Rule], province: str) -> list[Rule]:
    """`rules` as they judge former province `province`'s batch: its own bounding box for the coordinates."""
    if not any(r.name in COORDINATE_RULES for r in rules):
        return rules
    own = {r.name: r for r in coordinates_in_province(province)}
    return [own.get(r.name, r) if r.name in COORDINATE_RULES else r for r in rules]
