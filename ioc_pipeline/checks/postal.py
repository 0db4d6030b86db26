"""Expectation suites of the postal network (landing-zone contract, feed 3), as code.

Enterprises: name, tax code (format, unique), licence for licensed scopes, scope and status in
the contract's vocabularies. Service points: code (unique per enterprise), type, the operating
enterprise among the published enterprises, commune resolved, coordinates (optional) usable.
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
from ioc_pipeline.gate import E, Rule

TAX_CODE_PATTERN = r"^\d{10}(?:-\d{3})?$"

ENTERPRISE_RULES = [
    required("enterprise_name", "Tên doanh nghiệp"),
    required("tax_code", "Mã số thuế"),
    Rule(
        "tax_code_pattern",
        E.ExpectColumnValuesToMatchRegex(column="tax_code", regex=TAX_CODE_PATTERN),
        "Mã số thuế is neither 10 digits nor 10 digits-3 digits",
        "Mã số thuế không gồm 10 chữ số hoặc 10 chữ số-3 chữ số",
    ),
    unique(
        "tax_code_unique",
        "tax_code",
        "Mã số thuế appears more than once in the snapshot (every copy is held back)",
        "Mã số thuế bị trùng trong bản danh sách (mọi bản trùng đều bị giữ lại)",
    ),
    flagged(
        "licence_required",
        "licence_missing",
        "Số giấy phép is missing for an enterprise with a licensed scope",
        "Thiếu Số giấy phép cho doanh nghiệp có phạm vi phải cấp phép",
    ),
    date_readable("licence_date_date", "licence_date_unparsed", "Ngày cấp"),
    flagged(
        "scope_known",
        "scope_unknown",
        "Phạm vi names a scope other than Nội tỉnh, Liên tỉnh, Quốc tế",
        "Phạm vi có giá trị khác Nội tỉnh, Liên tỉnh, Quốc tế",
    ),
    required("status", "Trạng thái", "status_text"),
    flagged(
        "status_known",
        "status_unknown",
        "Trạng thái is none of Đang hoạt động, Tạm ngừng, Đã thu hồi",
        "Trạng thái không phải Đang hoạt động, Tạm ngừng hoặc Đã thu hồi",
    ),
]

SERVICE_POINT_RULES = [
    required("point_code", "Mã điểm"),
    unique(
        "point_code_unique",
        "point_key",
        "Mã điểm appears more than once for the enterprise in the snapshot (every copy is held back)",
        "Mã điểm bị trùng trong cùng doanh nghiệp (mọi bản trùng đều bị giữ lại)",
    ),
    required("point_type", "Loại điểm", "point_type_text"),
    flagged(
        "point_type_known",
        "point_type_unknown",
        "Loại điểm is none of the contract's six types",
        "Loại điểm không thuộc sáu loại theo quy định",
    ),
    required("enterprise_tax_code", "Mã số thuế DN"),
    flagged(
        "enterprise_exists",
        "enterprise_unknown",
        "Mã số thuế DN matches no enterprise of the published enterprise register",
        "Mã số thuế DN không khớp doanh nghiệp nào trong danh sách doanh nghiệp đã công bố",
    ),
    *UNIT_RULES,
    *coordinates_numeric(),
    flagged(
        "coordinates_complete",
        "coordinate_alone",
        "only one of Kinh độ and Vĩ độ is given",
        "chỉ có một trong hai giá trị Kinh độ, Vĩ độ",
    ),
    *coordinates_in_province(),
]
