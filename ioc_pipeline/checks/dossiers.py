"""Expectation suite of the one-stop-shop dossiers (landing-zone contract, feed 4), as code.

The rules read the current version of each dossier as `assets/public_service.typed_dossiers`
prepares it: typed values, and `*_unknown` / `*_unparsed` / `*_problem` columns that hold the
delivered text (or a description) where it could not be read. No column a rule shows holds
personal data: the applicant is only a pseudonym by the time the gate runs, and no rule reads it.
"""

from __future__ import annotations

from ioc_pipeline.checks.rules import flagged, present

RULES = [
    flagged(
        "record_readable",
        "parse_error",
        "the delivered line could not be read as a dossier record",
        "không đọc được dòng dữ liệu thành một bản ghi hồ sơ",
    ),
    present("dossier_code_required", "dossier_code", "MaHoSo is missing", "Thiếu MaHoSo"),
    present("agency_required", "agency", "DonViXuLy is missing", "Thiếu DonViXuLy"),
    present("channel_required", "channel_text", "KenhThucHien is missing", "Thiếu KenhThucHien"),
    flagged(
        "channel_known",
        "channel_unknown",
        "KenhThucHien is not 1/Trực tiếp, 2/Trực tuyến or 3/Bưu chính công ích",
        "KenhThucHien không phải 1/Trực tiếp, 2/Trực tuyến hoặc 3/Bưu chính công ích",
    ),
    present("status_required", "status_text", "TrangThaiHoSo is missing", "Thiếu TrangThaiHoSo"),
    flagged(
        "status_known",
        "status_unknown",
        "TrangThaiHoSo is not a national status code 1-10 or its name",
        "TrangThaiHoSo không phải mã trạng thái quốc gia 1-10 hoặc tên của mã đó",
    ),
    present("received_at_required", "received_at_text", "NgayTiepNhan is missing", "Thiếu NgayTiepNhan"),
    flagged(
        "received_at_datetime",
        "received_at_unparsed",
        "NgayTiepNhan is not a date-time",
        "NgayTiepNhan không phải ngày giờ hợp lệ",
    ),
    flagged(
        "received_in_range",
        "received_out_of_range",
        "NgayTiepNhan is before the first reported month",
        "NgayTiepNhan trước tháng báo cáo đầu tiên",
    ),
    present(
        "updated_at_datetime",
        "updated_at",
        "NgayCapNhat is missing or not a date-time",
        "Thiếu NgayCapNhat hoặc không phải ngày giờ hợp lệ",
    ),
    flagged(
        "datetimes_readable",
        "datetime_unparsed",
        "NgayHenTra, NgayKetThucXuLy or NgayTra is not a date-time",
        "NgayHenTra, NgayKetThucXuLy hoặc NgayTra không phải ngày giờ hợp lệ",
    ),
    flagged(
        "dates_in_order",
        "dates_problem",
        "dates out of order (received ≤ finished ≤ returned, due date not before receipt)",
        "các mốc thời gian sai thứ tự (tiếp nhận ≤ kết thúc xử lý ≤ trả kết quả, hạn trả không trước ngày tiếp nhận)",
    ),
    flagged(
        "unit_resolved",
        "unit_problem",
        "DonViHanhChinh does not resolve to one administrative unit",
        "DonViHanhChinh không xác định được một đơn vị hành chính duy nhất",
    ),
    flagged(
        "supplement_count_valid",
        "supplement_count_unparsed",
        "SoLanBoSung is not a whole number ≥ 0",
        "SoLanBoSung không phải số nguyên ≥ 0",
    ),
    flagged(
        "flags_readable",
        "flag_unparsed",
        "a yes/no field is not true/false, 1/0 or Có/Không",
        "một trường có/không không phải true/false, 1/0 hoặc Có/Không",
    ),
]
