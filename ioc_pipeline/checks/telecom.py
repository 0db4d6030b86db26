"""Expectation suite of the BTS station registers (landing-zone contract, feed 2), as code.

Rules read the columns the silver transform prepared: typed values, `*_unparsed` columns holding
delivered text that could not be read as its type, and the resolver's verdict on the commune.
"""

from __future__ import annotations

import great_expectations as gx

from ioc_pipeline.checks.units import UNIT_RULES
from ioc_pipeline.gate import Rule
from ioc_pipeline.units import province_bbox

E = gx.expectations
TECHNOLOGIES = ("2G", "3G", "4G", "5G")
MIN_LON, MIN_LAT, MAX_LON, MAX_LAT = province_bbox()

RULES = [
    Rule("station_code_required", E.ExpectColumnValuesToNotBeNull(column="station_code"), "Mã trạm is missing"),
    Rule(
        "station_code_unique",
        E.ExpectColumnValuesToBeUnique(column="station_key"),
        "Mã trạm appears more than once for the carrier in the snapshot (every copy is held back)",
    ),
    Rule(
        "carrier_known",
        E.ExpectColumnValuesToBeNull(column="carrier_unknown"),
        "Doanh nghiệp (or the file name) names none of viettel, vinaphone, mobifone, vietnamobile",
    ),
    Rule(
        "carrier_matches_file",
        E.ExpectColumnValuesToBeNull(column="carrier_mismatch"),
        "Doanh nghiệp names another carrier than the file it was delivered in",
    ),
    Rule("longitude_required", E.ExpectColumnValuesToNotBeNull(column="longitude_text"), "Kinh độ is missing"),
    Rule("latitude_required", E.ExpectColumnValuesToNotBeNull(column="latitude_text"), "Vĩ độ is missing"),
    Rule(
        "longitude_numeric",
        E.ExpectColumnValuesToBeNull(column="longitude_unparsed"),
        "Kinh độ is not a decimal number of degrees",
    ),
    Rule(
        "latitude_numeric",
        E.ExpectColumnValuesToBeNull(column="latitude_unparsed"),
        "Vĩ độ is not a decimal number of degrees",
    ),
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
    Rule(
        "technologies_required",
        E.ExpectColumnValuesToNotBeNull(column="technologies_text"),
        "Công nghệ is missing (at least one of 2G, 3G, 4G, 5G)",
    ),
    Rule(
        "technology_known",
        E.ExpectColumnValuesToBeNull(column="technology_unknown"),
        "Công nghệ names a technology other than 2G, 3G, 4G, 5G",
    ),
    *UNIT_RULES,
    Rule(
        "on_air_date_date",
        E.ExpectColumnValuesToBeNull(column="on_air_date_unparsed"),
        "Ngày phát sóng is not a date",
    ),
]
