"""Expectation suite of the BTS station registers (landing-zone contract, feed 2), as code.

Rules read the columns the silver transform prepared: typed values, `*_unparsed` columns holding
delivered text that could not be read as its type, and the resolver's verdict on the commune.
"""

from __future__ import annotations

from ioc_pipeline.checks.rules import (
    coordinates_in_province,
    coordinates_numeric,
    date_readable,
    flagged,
    required,
    unique,
)
from ioc_pipeline.checks.units import UNIT_RULES

RULES = [
    required("station_code", "Mã trạm"),
    unique(
        "station_code_unique",
        "station_key",
        "Mã trạm appears more than once for the carrier in the snapshot (every copy is held back)",
        "Mã trạm bị trùng trong cùng doanh nghiệp và bản danh sách (mọi bản trùng đều bị giữ lại)",
    ),
    flagged(
        "carrier_known",
        "carrier_unknown",
        "Doanh nghiệp (or the file name) names none of viettel, vinaphone, mobifone, vietnamobile",
        "Doanh nghiệp (hoặc tên tệp) không phải viettel, vinaphone, mobifone, vietnamobile",
    ),
    flagged(
        "carrier_matches_file",
        "carrier_mismatch",
        "Doanh nghiệp names another carrier than the file it was delivered in",
        "Doanh nghiệp khác với doanh nghiệp của tệp đã gửi",
    ),
    required("longitude", "Kinh độ", "longitude_text"),
    required("latitude", "Vĩ độ", "latitude_text"),
    *coordinates_numeric(),
    *coordinates_in_province(),
    required(
        "technologies",
        "Công nghệ",
        "technologies_text",
        "Công nghệ is missing (at least one of 2G, 3G, 4G, 5G)",
        "Thiếu Công nghệ (ít nhất một trong 2G, 3G, 4G, 5G)",
    ),
    flagged(
        "technology_known",
        "technology_unknown",
        "Công nghệ names a technology other than 2G, 3G, 4G, 5G",
        "Công nghệ có giá trị khác 2G, 3G, 4G, 5G",
    ),
    *UNIT_RULES,
    date_readable("on_air_date_date", "on_air_date_unparsed", "Ngày phát sóng"),
]
