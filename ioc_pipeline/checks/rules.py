"""The shapes of row rule every suite repeats, written once: a required field, a value the transform
flagged (unparsed, unknown), a unique key, and coordinates that must be numbers inside the province.

Rule names stay those of the contract's suites (quarantine rows carry them, dashboards count them).
"""

from __future__ import annotations

import great_expectations as gx

from ioc_pipeline.gate import Rule
from ioc_pipeline.units import province_bbox

E = gx.expectations
MIN_LON, MIN_LAT, MAX_LON, MAX_LAT = province_bbox()


def required(name: str, label: str, column: str | None = None, message: str | None = None) -> Rule:
    """`<name>_required`: the delivered field `label` (read from `column`, default `name`) is given."""
    return Rule(
        f"{name}_required", E.ExpectColumnValuesToNotBeNull(column=column or name), message or f"{label} is missing"
    )


def flagged(name: str, column: str, message: str) -> Rule:
    """A row fails when the transform put a value in `column` (text it could not read, a word outside
    the contract's vocabulary): the column holds exactly what was delivered, for the reason."""
    return Rule(name, E.ExpectColumnValuesToBeNull(column=column), message)


def unique(name: str, column: str, message: str) -> Rule:
    """Every copy of a duplicated key is held back: which one is right is unknown."""
    return Rule(name, E.ExpectColumnValuesToBeUnique(column=column), message)


def coordinates_numeric() -> list[Rule]:
    """Kinh độ / Vĩ độ, when given, read as decimal degrees (`parsing.decimal_checked` columns)."""
    return [
        flagged("longitude_numeric", "longitude_unparsed", "Kinh độ is not a decimal number of degrees"),
        flagged("latitude_numeric", "latitude_unparsed", "Vĩ độ is not a decimal number of degrees"),
    ]


def coordinates_in_province() -> list[Rule]:
    """Coordinates inside the province's bounding box (a swapped or mistyped pair lands outside)."""
    return [
        Rule(
            "longitude_in_province",
            E.ExpectColumnValuesToBeBetween(column="longitude", min_value=MIN_LON, max_value=MAX_LON),
            f"Kinh độ is outside the province ({MIN_LON} to {MAX_LON})",
        ),
        Rule(
            "latitude_in_province",
            E.ExpectColumnValuesToBeBetween(column="latitude", min_value=MIN_LAT, max_value=MAX_LAT),
            f"Vĩ độ is outside the province ({MIN_LAT} to {MAX_LAT})",
        ),
    ]
