"""Expectation suite of the procedure catalog (landing-zone contract, feed 1), as code.

Each rule reads columns the silver transform prepared: typed values, and `*_unparsed` columns
holding the delivered text where it could not be read as the type the contract asks for.
"""

from __future__ import annotations

import great_expectations as gx

from ioc_pipeline.gate import Rule

E = gx.expectations
CODE_PATTERN = r"^[123]\.\d{6}$"
LEVELS = [2, 3, 4]

RULES = [
    Rule("procedure_code_required", E.ExpectColumnValuesToNotBeNull(column="procedure_code"), "MaTTHC is missing"),
    Rule(
        "procedure_code_pattern",
        E.ExpectColumnValuesToMatchRegex(column="procedure_code", regex=CODE_PATTERN),
        f"MaTTHC does not match {CODE_PATTERN}",
    ),
    Rule(
        "procedure_code_unique",
        E.ExpectColumnValuesToBeUnique(column="procedure_code"),
        "MaTTHC appears more than once in the snapshot (every copy is held back: which one is right is unknown)",
    ),
    Rule("procedure_name_required", E.ExpectColumnValuesToNotBeNull(column="procedure_name"), "TenTTHC is missing"),
    Rule("sector_required", E.ExpectColumnValuesToNotBeNull(column="sector"), "LinhVuc is missing"),
    Rule("agency_required", E.ExpectColumnValuesToNotBeNull(column="agency"), "CoQuanThucHien is missing"),
    Rule("tiers_required", E.ExpectColumnValuesToNotBeNull(column="tiers_text"), "CapThucHien is missing"),
    Rule(
        "tiers_known",
        E.ExpectColumnValuesToBeNull(column="tier_unknown"),
        "CapThucHien names a tier other than Cấp tỉnh, Cấp huyện, Cấp xã",
    ),
    Rule(
        "service_level_required",
        E.ExpectColumnValuesToNotBeNull(column="service_level"),
        "MucDoDVC is missing or not a level number",
    ),
    Rule(
        "service_level_in_set",
        E.ExpectColumnValuesToBeInSet(column="service_level", value_set=LEVELS),
        "MucDoDVC is not 2, 3 or 4 (the catalog counts only procedures of at least level 2)",
    ),
    Rule(
        "online_class_known",
        E.ExpectColumnValuesToBeNull(column="online_class_unparsed"),
        "DVCTrucTuyen is neither Toàn trình nor Một phần",
    ),
    Rule(
        "updated_at_date",
        E.ExpectColumnValuesToBeNull(column="updated_at_unparsed"),
        "NgayCapNhat is not a date",
    ),
]
