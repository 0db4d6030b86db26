"""Expectation suites of the postal network (landing-zone contract, feed 3), as code.

Enterprises: name, tax code (format, unique), licence for licensed scopes, scope and status in
the contract's vocabularies. Service points: code (unique per enterprise), type, the operating
enterprise among the published enterprises, commune resolved, coordinates (optional) usable.
"""

from __future__ import annotations

import great_expectations as gx

from ioc_pipeline.checks.units import UNIT_RULES
from ioc_pipeline.gate import Rule
from ioc_pipeline.units import province_bbox

E = gx.expectations
TAX_CODE_PATTERN = r"^\d{10}(?:-\d{3})?$"
MIN_LON, MIN_LAT, MAX_LON, MAX_LAT = province_bbox()

ENTERPRISE_RULES = [
    Rule(
        "enterprise_name_required",
        E.ExpectColumnValuesToNotBeNull(column="enterprise_name"),
        "Tên doanh nghiệp is missing",
    ),
    Rule("tax_code_required", E.ExpectColumnValuesToNotBeNull(column="tax_code"), "Mã số thuế is missing"),
    Rule(
        "tax_code_pattern",
        E.ExpectColumnValuesToMatchRegex(column="tax_code", regex=TAX_CODE_PATTERN),
        "Mã số thuế is neither 10 digits nor 10 digits-3 digits",
    ),
    Rule(
        "tax_code_unique",
        E.ExpectColumnValuesToBeUnique(column="tax_code"),
        "Mã số thuế appears more than once in the snapshot (every copy is held back)",
    ),
    Rule(
        "licence_required",
        E.ExpectColumnValuesToBeNull(column="licence_missing"),
        "Số giấy phép is missing for an enterprise with a licensed scope",
    ),
    Rule(
        "licence_date_date",
        E.ExpectColumnValuesToBeNull(column="licence_date_unparsed"),
        "Ngày cấp is not a date",
    ),
    Rule(
        "scope_known",
        E.ExpectColumnValuesToBeNull(column="scope_unknown"),
        "Phạm vi names a scope other than Nội tỉnh, Liên tỉnh, Quốc tế",
    ),
    Rule("status_required", E.ExpectColumnValuesToNotBeNull(column="status_text"), "Trạng thái is missing"),
    Rule(
        "status_known",
        E.ExpectColumnValuesToBeNull(column="status_unknown"),
        "Trạng thái is none of Đang hoạt động, Tạm ngừng, Đã thu hồi",
    ),
]

SERVICE_POINT_RULES = [
    Rule("point_code_required", E.ExpectColumnValuesToNotBeNull(column="point_code"), "Mã điểm is missing"),
    Rule(
        "point_code_unique",
        E.ExpectColumnValuesToBeUnique(column="point_key"),
        "Mã điểm appears more than once for the enterprise in the snapshot (every copy is held back)",
    ),
    Rule("point_type_required", E.ExpectColumnValuesToNotBeNull(column="point_type_text"), "Loại điểm is missing"),
    Rule(
        "point_type_known",
        E.ExpectColumnValuesToBeNull(column="point_type_unknown"),
        "Loại điểm is none of the contract's six types",
    ),
    Rule(
        "enterprise_tax_code_required",
        E.ExpectColumnValuesToNotBeNull(column="enterprise_tax_code"),
        "Mã số thuế DN is missing",
    ),
    Rule(
        "enterprise_exists",
        E.ExpectColumnValuesToBeNull(column="enterprise_unknown"),
        "Mã số thuế DN matches no enterprise of the published enterprise register",
    ),
    *UNIT_RULES,
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
        "coordinates_complete",
        E.ExpectColumnValuesToBeNull(column="coordinate_alone"),
        "only one of Kinh độ and Vĩ độ is given",
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
]
