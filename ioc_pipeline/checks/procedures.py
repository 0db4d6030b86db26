"""Expectation suite of the procedure catalog (landing-zone contract, feed 1), as code.

Each rule reads columns the silver transform prepared: typed values, and `*_unparsed` columns
holding the delivered text where it could not be read as the type the contract asks for.
"""

from __future__ import annotations

from ioc_pipeline.checks.rules import date_readable, flagged, required, unique
from ioc_pipeline.gate import E, Rule

CODE_PATTERN = r"^[123]\.\d{6}$"
LEVELS = [2, 3, 4]

RULES = [
    required("procedure_code", "MaTTHC"),
    Rule(
        "procedure_code_pattern",
        E.ExpectColumnValuesToMatchRegex(column="procedure_code", regex=CODE_PATTERN),
        f"MaTTHC does not match {CODE_PATTERN}",
        f"MaTTHC không đúng mẫu {CODE_PATTERN} (ví dụ 1.001234)",
    ),
    unique(
        "procedure_code_unique",
        "procedure_code",
        "MaTTHC appears more than once in the snapshot (every copy is held back: which one is right is unknown)",
        "MaTTHC bị trùng trong cùng một bản danh mục (mọi bản trùng đều bị giữ lại vì không rõ bản nào đúng)",
    ),
    required("procedure_name", "TenTTHC"),
    required("sector", "LinhVuc"),
    required("agency", "CoQuanThucHien"),
    required("tiers", "CapThucHien", "tiers_text"),
    flagged(
        "tiers_known",
        "tier_unknown",
        "CapThucHien names a tier other than Cấp tỉnh, Cấp huyện, Cấp xã",
        "CapThucHien có cấp khác Cấp tỉnh, Cấp huyện, Cấp xã",
    ),
    required(
        "service_level",
        "MucDoDVC",
        message="MucDoDVC is missing or not a level number",
        vi="Thiếu MucDoDVC hoặc không phải là số mức độ",
    ),
    Rule(
        "service_level_in_set",
        E.ExpectColumnValuesToBeInSet(column="service_level", value_set=LEVELS),
        "MucDoDVC is not 2, 3 or 4 (the catalog counts only procedures of at least level 2)",
        "MucDoDVC không phải 2, 3 hoặc 4 (danh mục chỉ tính TTHC từ mức độ 2)",
    ),
    flagged(
        "online_class_known",
        "online_class_unparsed",
        "DVCTrucTuyen is neither Toàn trình nor Một phần",
        "DVCTrucTuyen không phải Toàn trình hoặc Một phần",
    ),
    date_readable("updated_at_date", "updated_at_unparsed", "NgayCapNhat"),
]
