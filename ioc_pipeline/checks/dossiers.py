"""Expectation suite of the one-stop-shop dossiers (landing-zone contract, feed 4), as code.

The rules read the current version of each dossier as `assets/public_service.typed_dossiers`
prepares it: typed values, and `*_unknown` / `*_unparsed` / `*_problem` columns that hold the
delivered text (or a description) where it could not be read. No column a rule shows holds
personal data: the applicant is only a pseudonym by the time the gate runs, and no rule reads it.
"""

from __future__ import annotations

import great_expectations as gx

from ioc_pipeline.gate import Rule

E = gx.expectations


def _null(name: str, column: str, message: str, show_value: bool = True) -> Rule:
    return Rule(name, E.ExpectColumnValuesToBeNull(column=column), message, show_value)


def _present(name: str, column: str, message: str) -> Rule:
    return Rule(name, E.ExpectColumnValuesToNotBeNull(column=column), message)


RULES = [
    _null("record_readable", "parse_error", "the delivered line could not be read as a dossier record"),
    _present("dossier_code_required", "dossier_code", "MaHoSo is missing"),
    _present("agency_required", "agency", "DonViXuLy is missing"),
    _present("channel_required", "channel_text", "KenhThucHien is missing"),
    _null("channel_known", "channel_unknown", "KenhThucHien is not 1/Trực tiếp, 2/Trực tuyến or 3/Bưu chính công ích"),
    _present("status_required", "status_text", "TrangThaiHoSo is missing"),
    _null("status_known", "status_unknown", "TrangThaiHoSo is not a national status code 1-10 or its name"),
    _present("received_at_required", "received_at_text", "NgayTiepNhan is missing"),
    _null("received_at_datetime", "received_at_unparsed", "NgayTiepNhan is not a date-time"),
    _null("received_in_range", "received_out_of_range", "NgayTiepNhan is before the first reported month"),
    _present("updated_at_datetime", "updated_at", "NgayCapNhat is missing or not a date-time"),
    _null("datetimes_readable", "datetime_unparsed", "NgayHenTra, NgayKetThucXuLy or NgayTra is not a date-time"),
    _null(
        "dates_in_order",
        "dates_problem",
        "dates out of order (received ≤ finished ≤ returned, due date not before receipt)",
    ),
    _null("unit_resolved", "unit_problem", "DonViHanhChinh does not resolve to one administrative unit"),
    _null("supplement_count_valid", "supplement_count_unparsed", "SoLanBoSung is not a whole number ≥ 0"),
    _null("flags_readable", "flag_unparsed", "a yes/no field is not true/false, 1/0 or Có/Không"),
]
