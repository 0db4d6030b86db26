"""Feed 3 of the landing-zone contract: the postal network (enterprises and service points).

    landing/postal/enterprises_YYYYMMDD.xlsx    ──dlt──► bronze/postal_enterprises
    landing/postal/service_points_YYYYMMDD.csv  ──dlt──► bronze/postal_service_points

Both are registers: the newest snapshot of each is the one in force.
"""

from __future__ import annotations

from ioc_pipeline.sources.files import Feed, contract_feed

ENTERPRISES = contract_feed(
    Feed(
        table="postal_enterprises",
        patterns=("postal/enterprises_*.xlsx", "postal/enterprises_*.csv"),
        columns={
            "Tên doanh nghiệp": "enterprise_name",
            "Mã số thuế": "tax_code",
            "Số giấy phép": "licence_number",
            "Ngày cấp": "licence_date",
            "Phạm vi": "scope",
            "Trạng thái": "status",
        },
        required=("enterprise_name", "tax_code", "status"),
    )
)

SERVICE_POINTS = contract_feed(
    Feed(
        table="postal_service_points",
        patterns=("postal/service_points_*.csv", "postal/service_points_*.xlsx"),
        columns={
            "Mã điểm": "point_code",
            "Tên điểm phục vụ": "point_name",
            "Loại điểm": "point_type",
            "Mã số thuế DN": "enterprise_tax_code",
            "Địa chỉ": "address",
            "Xã/Phường/Thị trấn": "commune",
            "Huyện/Thị xã/Thành phố": "district",
            "Kinh độ": "longitude",
            "Vĩ độ": "latitude",
        },
        required=("point_code", "point_type", "enterprise_tax_code", "commune"),
    )
)
